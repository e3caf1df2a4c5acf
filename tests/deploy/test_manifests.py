"""Kubernetes manifests, verified offline: every overlay renders with kustomize,
every object validates against the Kubernetes API schemas (kubernetes-validate),
and the objects are wired to each other and to the mtlsdemo CLI."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from mtlsdemo.cli import build_parser
from mtlsdemo.commands.flags import env_name
from support.tools import require_binary

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["kind", "minikube"]
# The documented minimum (native sidecars are on by default from 1.29) and the version
# the clusters are pinned to (kind's node image, minikube's --kubernetes-version).
K8S_MIN = "1.29"
K8S_PINNED = "1.35"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}  # no schema offline; checked structurally below
# Every feature the manifests use beyond the core, with the release from which it is
# usable without feature gates (GA, or beta and on by default).
FEATURES = {
    "native sidecar (initContainers[].restartPolicy: Always)": "1.29",  # beta on 1.29, GA 1.33
    "Pod Security Admission namespace labels": "1.25",
    "Job ttlSecondsAfterFinished": "1.23",
    "downward API env (fieldRef metadata.namespace / metadata.uid)": "1.0",
}


def version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def render(path: Path) -> list[dict]:
    kubectl = require_binary("kubectl")
    r = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


@pytest.fixture(scope="module", params=[*OVERLAYS, "kind+workload-api", "kind+post-quantum"])
def objects(request, tmp_path_factory) -> list[dict]:
    """Each overlay, and kind with each optional component (MTLSDEMO_IDENTITIES=
    workload-api, MTLSDEMO_KEY_TYPE=ml-dsa-65): every check below holds for each."""
    if "+" in request.param:
        overlay, component = request.param.split("+")
        return with_component(tmp_path_factory, f"../overlays/{overlay}", component)
    return render(K8S / "overlays" / request.param)


def with_component(tmp_path_factory, resource: str, component: str) -> list[dict]:
    d = tmp_path_factory.mktemp(component)
    shutil.copytree(K8S, d / "k8s")
    shutil.copytree(ROOT / "deploy" / "prometheus", d / "prometheus")
    shutil.copytree(ROOT / "deploy" / "grafana", d / "grafana")
    (d / "k8s" / "check").mkdir()
    (d / "k8s" / "check" / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{resource}]\ncomponents: [../components/{component}]\n"
    )
    return render(d / "k8s" / "check")


@pytest.fixture(scope="module")
def with_operator(tmp_path_factory) -> list[dict]:
    """The base plus the prometheus-operator component."""
    return with_component(tmp_path_factory, "../base", "prometheus-operator")


def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def pod_specs(objs: list[dict]) -> list[tuple[str, dict]]:
    out = []
    for o in objs:
        spec = o.get("spec", {})
        if o["kind"] in ("Deployment", "StatefulSet", "Job"):
            out.append((o["metadata"]["name"], spec["template"]["spec"]))
        elif o["kind"] == "CronJob":
            out.append((o["metadata"]["name"], spec["jobTemplate"]["spec"]["template"]["spec"]))
    return out


def all_containers(pod: dict) -> list[dict]:
    return [*pod.get("initContainers", []), *pod["containers"]]


@pytest.mark.parametrize("k8s", [K8S_MIN, K8S_PINNED])
def test_every_object_validates_against_the_api_schema(objects: list[dict], k8s: str) -> None:
    checked = 0
    for o in objects:
        if o["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(o, f"{k8s}.0", strict=True)
        checked += 1
    assert checked == len(objects) >= 25


def features_used(objs: list[dict]) -> set[str]:
    used = set()
    for _name, pod in pod_specs(objs):
        if any(c.get("restartPolicy") == "Always" for c in pod.get("initContainers", [])):
            used.add("native sidecar (initContainers[].restartPolicy: Always)")
        if any(
            "fieldRef" in e.get("valueFrom", {})
            for c in all_containers(pod)
            for e in c.get("env", [])
        ):
            used.add("downward API env (fieldRef metadata.namespace / metadata.uid)")
    for o in objs:
        if o["kind"] == "Namespace" and any(
            k.startswith("pod-security.kubernetes.io/") for k in o["metadata"].get("labels", {})
        ):
            used.add("Pod Security Admission namespace labels")
        if o["kind"] == "Job" and "ttlSecondsAfterFinished" in o["spec"]:
            used.add("Job ttlSecondsAfterFinished")
    return used


def test_every_feature_used_is_on_by_default_at_the_minimum_version(objects: list[dict]) -> None:
    used = features_used(objects + smoke_job())
    assert "native sidecar (initContainers[].restartPolicy: Always)" in used
    unknown = used - FEATURES.keys()
    assert not unknown, f"add these to FEATURES with the release they are on by default: {unknown}"
    for feature in used:
        assert version(FEATURES[feature]) <= version(K8S_MIN), feature
    assert version(K8S_MIN) <= version(K8S_PINNED)


def test_clusters_are_pinned_to_the_tested_version() -> None:
    kind = yaml.safe_load((K8S / "overlays" / "kind" / "kind-cluster.yaml").read_text())
    (node,) = kind["nodes"]
    image, _, digest = node["image"].partition("@")
    assert image.startswith(f"kindest/node:v{K8S_PINNED}."), image
    assert digest.startswith("sha256:") and len(digest) == 71, "pin the node image by digest too"
    up = (K8S / "up.sh").read_text()
    assert f"MINIKUBE_K8S_VERSION=v{image.split(':v')[1]}" in up  # minikube runs the same release
    assert "--kubernetes-version=" in up and "--context" in up


def test_operator_component_validates_and_selects_metrics_services(with_operator) -> None:
    for o in with_operator:
        if o["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(o, f"{K8S_PINNED}.0", strict=True)
    (sm,) = by_kind(with_operator, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert (
        sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    )  # kube-prometheus-stack's selector
    assert check_service_ports(with_operator) >= 7  # the metrics Services' admin ports are numbers
    (rule,) = by_kind(with_operator, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rules_file = yaml.safe_load(
        (ROOT / "deploy" / "prometheus" / "rules" / "mtlsdemo.yml").read_text()
    )
    assert rule["spec"]["groups"] == rules_file["groups"], "stale: run `make prometheusrule`"
    selected = [
        s
        for s in by_kind(with_operator, "Service")
        if all(
            s["metadata"].get("labels", {}).get(k) == v
            for k, v in sm["spec"]["selector"]["matchLabels"].items()
        )
    ]
    assert {s["metadata"]["name"] for s in selected} == {"ledger-metrics", "gateway-metrics"}
    for svc in selected:
        names = {p["name"] for p in svc["spec"]["ports"]}
        assert {e["port"] for e in sm["spec"]["endpoints"]} <= names


def test_everything_lands_in_the_mtlsdemo_namespace(objects: list[dict]) -> None:
    for o in objects:
        if o["kind"] != "Namespace":
            assert o["metadata"].get("namespace") == "mtlsdemo", o["metadata"]["name"]


def job_services(objs: list[dict]) -> set[str]:
    (job,) = by_kind(objs, "Job")
    env = {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    return set(env["MTLSDEMO_SERVICE"].split(","))


def test_references_resolve(objects: list[dict]) -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    # Secrets are written by the Job at run time: they must be ones it issues.
    job_secrets = {f"mtlsdemo-{s}-tls" for s in job_services(objects)} | {"mtlsdemo-crl"}
    for name, pod in pod_specs(objects):
        sa = pod.get("serviceAccountName")
        if sa:
            assert ("ServiceAccount", sa) in names, (name, sa)
        for v in pod.get("volumes", []):
            if "secret" in v:
                assert v["secret"]["secretName"] in job_secrets, (name, v)
            if "configMap" in v:
                assert ("ConfigMap", v["configMap"]["name"]) in names, (name, v)
            if "persistentVolumeClaim" in v:
                pytest.fail(f"{name}: use volumeClaimTemplates, not a pre-made PVC")
        mounts = {m["name"] for c in all_containers(pod) for m in c.get("volumeMounts", [])}
        declared = {v["name"] for v in pod.get("volumes", [])}
        templates = set()
        for o in objects:
            if o["metadata"]["name"] == name and o["kind"] == "StatefulSet":
                templates = {
                    t["metadata"]["name"] for t in o["spec"].get("volumeClaimTemplates", [])
                }
        assert mounts <= declared | templates, (name, mounts - declared - templates)
    for rb in by_kind(objects, "RoleBinding"):
        assert ("Role", rb["roleRef"]["name"]) in names
        for subj in rb["subjects"]:
            assert ("ServiceAccount", subj["name"]) in names


def workload_pods(objs: list[dict]) -> list[tuple[dict, dict]]:
    """(pod template labels, pod spec) of every long-running workload."""
    return [
        (o["spec"]["template"]["metadata"]["labels"], o["spec"]["template"]["spec"])
        for o in objs
        if o["kind"] in ("Deployment", "StatefulSet")
    ]


def selected(objs: list[dict], selector: dict) -> list[dict]:
    return [
        pod
        for labels, pod in workload_pods(objs)
        if all(labels.get(k) == v for k, v in selector.items())
    ]


def assert_port_resolves(port: int | str, pods: list[dict], where: str) -> None:
    """The rule real clusters apply, not the API's: a *named* port in a Service
    targetPort or a NetworkPolicy is looked up in spec.containers only (EndpointSlices
    before 1.33, kube-network-policies, Calico before 2024), so it must be there on
    every selected pod; a number must be a port some container of the pod opens."""
    assert pods, f"{where}: selects no pod"
    for pod in pods:
        if isinstance(port, str):
            regular = {p["name"] for c in pod["containers"] for p in c.get("ports", [])}
            init = {p["name"] for c in pod.get("initContainers", []) for p in c.get("ports", [])}
            assert port in regular, (
                f"{where}: named port {port!r} is not on a regular container"
                + (" (it is on an init container: use its number)" if port in init else "")
            )
        else:
            numbers = {p["containerPort"] for c in all_containers(pod) for p in c.get("ports", [])}
            assert port in numbers, f"{where}: no container opens port {port}"


def check_service_ports(objs: list[dict]) -> int:
    n = 0
    for svc in by_kind(objs, "Service"):
        pods = selected(objs, svc["spec"]["selector"])
        for p in svc["spec"]["ports"]:
            assert_port_resolves(p["targetPort"], pods, f"Service {svc['metadata']['name']}")
            n += 1
    return n


def test_probe_and_service_ports_exist(objects: list[dict]) -> None:
    for name, pod in pod_specs(objects):
        for c in all_containers(pod):
            # the kubelet resolves a probe's named port in the probe's own container
            ports = {p["name"] for p in c.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                p = c.get(probe)
                if p and "httpGet" in p:
                    assert p["httpGet"]["port"] in ports, (name, c["name"], probe)
    assert check_service_ports(objects) >= 4
    (ledger_svc,) = [s for s in by_kind(objects, "Service") if s["metadata"]["name"] == "ledger"]
    assert [(p["name"], p["targetPort"]) for p in ledger_svc["spec"]["ports"]] == [("mtd", 8443)]


def test_networkpolicy_ports_resolve_on_the_pods_they_select(objects: list[dict]) -> None:
    n = 0
    for pol in by_kind(objects, "NetworkPolicy"):
        sel = pol["spec"]["podSelector"].get("matchLabels", {})
        pods = selected(objects, sel)
        for rule in pol["spec"].get("ingress", []):
            for p in rule.get("ports", []):
                # every selected pod must open the port, except for the shared metrics
                # policy, whose ports each belong to one of the pods it selects
                if pol["metadata"]["name"] == "metrics-from-prometheus":
                    assert any(
                        assert_port_resolves(p["port"], [pod], "x") is None
                        for pod in pods
                        if _opens(pod, p["port"])
                    ), p
                    assert isinstance(p["port"], int)
                else:
                    assert_port_resolves(
                        p["port"], pods, f"NetworkPolicy {pol['metadata']['name']}"
                    )
                n += 1
    assert n >= 6


def _opens(pod: dict, port: int | str) -> bool:
    return any(
        p.get("containerPort") == port or p.get("name") == port
        for c in all_containers(pod)
        for p in c.get("ports", [])
    )


def test_yesterdays_named_ports_would_be_caught() -> None:
    """The rule above fails on the manifests as they were (targetPort: mtd on the
    native sidecar), so it can tell a working mesh from one that serves nothing."""
    pod = {
        "initContainers": [{"name": "sidecar", "ports": [{"name": "mtd", "containerPort": 8443}]}],
        "containers": [{"name": "ledger", "ports": [{"name": "metrics", "containerPort": 9101}]}],
    }
    with pytest.raises(AssertionError, match="init container: use its number"):
        assert_port_resolves("mtd", [pod], "Service ledger")
    assert_port_resolves(8443, [pod], "Service ledger")
    assert_port_resolves("metrics", [pod], "Service ledger-metrics")


def env_twins(argv: list[str]) -> set[str]:
    """The MTLSDEMO_* twins of every flag of the command and of the parsers above it
    (`client --identity-dir` applies to `client open`)."""
    parser, out = build_parser(), set()
    while True:
        out |= {
            env_name(s) for a in parser._actions for s in a.option_strings if s.startswith("--")
        }
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or not argv or argv[0] not in subs[0].choices:
            return out
        parser, argv = subs[0].choices[argv[0]], argv[1:]


def test_every_command_is_a_real_subcommand_and_every_env_var_a_flag_twin(
    objects: list[dict],
) -> None:
    seen = 0
    for name, pod in pod_specs(objects):
        for c in all_containers(pod):
            if c["image"].split(":")[0] != "mtlsdemo":
                continue
            args = c.get("args", [])
            build_parser().parse_args(args)  # SystemExit if not a real command line
            twins = env_twins(args)
            envs = {e["name"] for e in c.get("env", [])} - set(DOWNWARD_API)
            assert envs <= twins, (name, c["name"], envs - twins)
            assert_env_references_resolve(c, f"{name}/{c['name']}")
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                cmd = (c.get(probe) or {}).get("exec", {}).get("command")
                if cmd:
                    assert cmd[0] == "mtlsdemo"
                    build_parser().parse_args(cmd[1:])
            seen += 1
    assert seen >= 6  # job, cronjob, ledger + sidecar, gateway + sidecar


# Helper variables the kubelet fills from the pod itself (not mtlsdemo flags): the
# SPIFFE IDs are built from them so they follow whatever namespace kustomize sets.
DOWNWARD_API = {"POD_NAMESPACE": "metadata.namespace", "POD_UID": "metadata.uid"}


def assert_env_references_resolve(c: dict, where: str) -> None:
    """$(VAR) in env values and args expands only from variables defined earlier in
    the same container (else the kubelet leaves the text as it is)."""
    import re

    defined: set[str] = set()
    for e in c.get("env", []):
        for ref in re.findall(r"\$\((\w+)\)", e.get("value", "")):
            assert ref in defined, f"{where}: {e['name']} uses $({ref}) before it is defined"
        if e["name"] in DOWNWARD_API:
            assert e["valueFrom"]["fieldRef"]["fieldPath"] == DOWNWARD_API[e["name"]], where
        defined.add(e["name"])
    for arg in c.get("args", []):
        for ref in re.findall(r"\$\((\w+)\)", arg):
            assert ref in defined, f"{where}: args use $({ref}), not defined in env"


def test_namespace_flows_from_one_place_into_spiffe_ids_and_scrape_config(tmp_path) -> None:
    """Deploy into another namespace with kustomize alone: the Job issues
    ns/<it>/sa/... (from its pod), and the allow-lists and routes must expect the same."""
    d = tmp_path / "k8s"
    shutil.copytree(K8S, d)
    shutil.copytree(ROOT / "deploy" / "prometheus", tmp_path / "prometheus")
    shutil.copytree(ROOT / "deploy" / "grafana", tmp_path / "grafana")
    (d / "shop").mkdir()
    (d / "shop" / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "namespace: shop\nresources: [../overlays/kind]\n"
    )
    objs = render(d / "shop")
    text = yaml.safe_dump_all(objs)
    assert "ns/mtlsdemo" not in text and "names: [mtlsdemo]" not in text
    assert all(o["metadata"].get("namespace") == "shop" for o in objs if o["kind"] != "Namespace")
    (job,) = by_kind(objs, "Job")
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": "MTLSDEMO_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    } in env


def smoke_job() -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / "smoke" / "smoke-job.yaml").read_text()) if d]


def test_smoke_job_calls_through_the_mesh_with_the_cli_identity(objects: list[dict]) -> None:
    (job,) = smoke_job()
    kubernetes_validate.validate(job, f"{K8S_MIN}.0", strict=True)
    pod = job["spec"]["template"]["spec"]
    steps = [c["args"][:2] for c in all_containers(pod)]
    assert steps == [
        ["client", "open"],
        ["client", "open"],
        ["client", "deposit"],
        ["client", "transfer"],
        ["client", "balance"],
    ]
    assert job["spec"]["backoffLimit"] == 0  # a failed call fails the Job, loudly
    assert pod["volumes"] == [
        {"name": "identity", "secret": {"secretName": "mtlsdemo-cli-tls", "defaultMode": 0o440}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
    ]
    assert pod["securityContext"]["fsGroup"] == 10001  # or the 0440 files are unreadable
    assert "cli" in job_services(objects)  # the Secret is one the bootstrap writes
    for c in all_containers(pod):
        build_parser().parse_args(c["args"])
        assert {e["name"] for e in c["env"]} - set(DOWNWARD_API) <= env_twins(c["args"])
        assert_env_references_resolve(c, c["name"])
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
    # the gateway's public policy admits the smoke pod: no podSelector on its port
    (pol,) = [
        p
        for p in by_kind(objects, "NetworkPolicy")
        if p["metadata"]["name"] == "gateway-public-api"
    ]
    assert "from" not in pol["spec"]["ingress"][0]


def test_render_script_deploys_exactly_the_image_it_is_given() -> None:
    require_binary("kubectl")
    touched = {d: d.stat().st_mtime_ns for d in (K8S, K8S / "overlays", K8S / "overlays" / "kind")}
    r = subprocess.run(
        [str(K8S / "render.sh"), "kind", "mtlsdemo:sha-0123456789ab"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    objs = [d for d in yaml.safe_load_all(r.stdout) if d]
    images = {
        c["image"]
        for _n, pod in pod_specs(objs)
        for c in all_containers(pod)
        if c["image"].startswith("mtlsdemo")
    }
    assert images == {"mtlsdemo:sha-0123456789ab"}
    # nothing written in the checkout, not even for a moment (a read-only one renders)
    assert {d: d.stat().st_mtime_ns for d in touched} == touched
    bad = subprocess.run(
        [str(K8S / "render.sh"), "nosuch", "mtlsdemo:x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: no overlay 'nosuch'")


@pytest.mark.parametrize("target", ["kind", "minikube"])
def test_render_script_switches_identities_to_the_workload_api(target: str) -> None:
    """MTLSDEMO_IDENTITIES=workload-api: an agent in each workload pod, the same image;
    a value it does not know is one line and exit 2."""
    require_binary("kubectl")

    def render_with(identities: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(K8S / "render.sh"), target, "mtlsdemo:sha-0123456789ab"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "MTLSDEMO_IDENTITIES": identities},
        )

    r = render_with("workload-api")
    assert r.returncode == 0, r.stderr
    pods = dict(pod_specs([d for d in yaml.safe_load_all(r.stdout) if d]))
    for name in ("gateway", "ledger"):
        agent = pods[name]["initContainers"][0]
        assert (agent["name"], agent["image"]) == ("agent", "mtlsdemo:sha-0123456789ab")
    bad = render_with("spire")
    assert bad.returncode == 2
    assert bad.stderr == (
        "error: MTLSDEMO_IDENTITIES=spire: give files (the default) or workload-api\n"
    )


def test_render_script_renders_the_post_quantum_mesh_or_says_why_not() -> None:
    """MTLSDEMO_KEY_TYPE=ml-dsa-65: the bootstrap issues ML-DSA, the gateway's sidecar
    takes its callers; another key type, or both switches at once, is one line, exit 2."""
    require_binary("kubectl")

    def render_with(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(K8S / "render.sh"), "kind", "mtlsdemo:sha-0123456789ab"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, **env},
        )

    r = render_with(MTLSDEMO_KEY_TYPE="ml-dsa-65")
    assert r.returncode == 0, r.stderr
    objs = [d for d in yaml.safe_load_all(r.stdout) if d]
    pods = dict(pod_specs(objs))
    boot = {e["name"]: e.get("value") for e in pods["cert-bootstrap"]["containers"][0]["env"]}
    assert boot["MTLSDEMO_KEY_TYPE"] == "ml-dsa-65"
    sidecar = {e["name"]: e.get("value") for e in pods["gateway"]["initContainers"][0]["env"]}
    assert sidecar["MTLSDEMO_INBOUND_LISTEN"] == "0.0.0.0:50052"
    (svc,) = [o for o in by_kind(objs, "Service") if o["metadata"]["name"] == "gateway"]
    assert svc["spec"]["ports"][0]["targetPort"] == 50052
    bad = render_with(MTLSDEMO_KEY_TYPE="rsa-2048")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("error: MTLSDEMO_KEY_TYPE=rsa-2048: give ecdsa-p256")
    both = render_with(MTLSDEMO_KEY_TYPE="ml-dsa-65", MTLSDEMO_IDENTITIES="workload-api")
    assert both.returncode == 2 and "drop MTLSDEMO_IDENTITIES=workload-api" in both.stderr


def test_verify_script_names_objects_that_exist(objects: list[dict]) -> None:
    script = (K8S / "verify-on-cluster.sh").read_text()
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for kind, name in (
        ("Job", "cert-bootstrap"),
        ("CronJob", "cert-renew"),
        ("StatefulSet", "ledger"),
        ("Deployment", "gateway"),
        ("Deployment", "prometheus"),
        ("Service", "ledger"),
    ):
        assert (kind, name) in names
    pods = dict(pod_specs(objects))
    assert "sidecar" in [c["name"] for c in pods["ledger"]["initContainers"]]  # `-c sidecar`
    assert pods["gateway"]["containers"][0]["name"] == "gateway"  # `exec deploy/gateway -c gateway`
    for needle in (
        "ledger-0 sidecar 9902",
        "-c gateway",
        "cronjob cert-renew",
        "job_done cert-bootstrap",
        "deploy/prometheus",
        "8443",
        "9902",
        "MTLSDEMO_FORCE",
    ):
        assert needle in script, needle
    (cron,) = [c for c in by_kind(objects, "CronJob") if c["metadata"]["name"] == "cert-renew"]
    env = {
        e["name"]
        for e in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert "MTLSDEMO_SERVICE" in env


def secret_names(volume: dict) -> list[str]:
    """The Secrets a volume holds: its own, or each of a projected volume's sources."""
    if "secret" in volume:
        return [volume["secret"]["secretName"]]
    sources = volume.get("projected", {}).get("sources", [])
    return [src["secret"]["name"] for src in sources if "secret" in src]


def test_only_the_bootstrap_and_the_agents_touch_the_ca(objects: list[dict]) -> None:
    """The CA's key is read by the bootstrap through the API (its Role) and, in
    workload-api mode, mounted into each pod's agent container (which signs), never
    into a workload's own containers."""
    agents = 0
    for name, pod in pod_specs(objects):
        ca_volumes = {v["name"] for v in pod.get("volumes", []) if "mtlsdemo-ca" in secret_names(v)}
        for c in all_containers(pod):
            mounted = {m["name"] for m in c.get("volumeMounts", [])} & ca_volumes
            if mounted:
                assert c["name"] == "agent" and c["args"] == ["agent"], (name, c["name"])
                assert all(m["readOnly"] for m in c["volumeMounts"] if m["name"] in mounted)
                agents += 1
    assert agents == (2 if identities(objects) else 0)  # the gateway and the ledger pods
    (role,) = [r for r in by_kind(objects, "Role") if r["metadata"]["name"] == "cert-bootstrap"]
    named = [r for r in role["rules"] if "resourceNames" in r]
    assert "mtlsdemo-ca" in named[0]["resourceNames"]
    assert set(named[0]["verbs"]) == {"get", "update"}  # what the Secret sink calls, nothing more
    unnamed = [r for r in role["rules"] if "resourceNames" not in r]
    assert [set(r["verbs"]) for r in unnamed] == [{"create"}]
    for rb in by_kind(objects, "RoleBinding"):
        if rb["roleRef"]["name"] == "cert-bootstrap":
            assert [s["name"] for s in rb["subjects"]] == ["cert-bootstrap"]


def post_quantum(objects: list[dict]) -> bool:
    """True when the mesh is on ML-DSA with the gateway behind its sidecar."""
    return any(
        o["metadata"].get("labels", {}).get("mtlsdemo/key-type") == "ml-dsa-65" for o in objects
    )


def identities(objects: list[dict]) -> bool:
    """True when the workloads take SVIDs from an agent (components/workload-api)."""
    return any(
        o["metadata"].get("labels", {}).get("mtlsdemo/identities") == "workload-api"
        for o in objects
    )


def test_each_pod_mounts_only_its_own_identity(objects: list[dict]) -> None:
    agent_mode = identities(objects)
    for name, pod in pod_specs(objects):
        secrets = [s for v in pod.get("volumes", []) if "secret" in v for s in secret_names(v)]
        if name in ("gateway", "ledger"):
            # its own identity (files), and the CA's published CRL (public): the sidecar
            # checks peers against it, and the gateway its native callers
            assert secrets == ([] if agent_mode else [f"mtlsdemo-{name}-tls"]) + ["mtlsdemo-crl"]
            assert pod["serviceAccountName"] == name  # the SPIFFE ID's sa/<name>
            # who holds an identity: the sidecar, and the gateway serving its callers'
            # TLS itself (not when it serves plaintext behind its sidecar: post-quantum)
            users = [
                c
                for c in all_containers(pod)
                if c["name"] in ("gateway", "sidecar") and "--plaintext" not in c["args"]
            ]
            for c in users:
                env = {e["name"]: e.get("value") for e in c["env"]}
                mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
                assert env["MTLSDEMO_CRL"] == mounts["crl"] + "/crl.pem", c["name"]
                # a CRL that vanishes fails closed; the CRLs in force outlive a restart
                assert env["MTLSDEMO_CRL_REQUIRED"] == "true", c["name"]
                state = Path(env["MTLSDEMO_CRL_STATE"])
                assert mounts.get("tmp") == str(state.parent), c["name"]
                if agent_mode:
                    assert_serves_its_own_svid(pod, name, env, mounts)
                else:
                    assert env["MTLSDEMO_IDENTITY_DIR"] == mounts["identity"], c["name"]
            behind = name == "gateway" and post_quantum(objects)
            assert len(users) == (2 if name == "gateway" and not behind else 1)
            for c in all_containers(pod):
                if "--plaintext" in c["args"]:  # on loopback only, nothing of the identity
                    env = {e["name"]: e.get("value") for e in c["env"]}
                    assert env["MTLSDEMO_LISTEN"].startswith("127.0.0.1:"), c["name"]
                    assert not {"identity", "crl"} & {m["name"] for m in c["volumeMounts"]}
        else:
            assert secrets == []


def assert_serves_its_own_svid(pod: dict, name: str, env: dict, mounts: dict) -> None:
    """The socket a container asks is its own pod's agent's, for its own workload,
    in a volume nothing outside the pod reaches."""
    (agent,) = [c for c in pod["initContainers"] if c["name"] == "agent"]
    assert pod["initContainers"].index(agent) == 0  # up before anything that asks it
    agent_env = {e["name"]: e.get("value") for e in agent["env"]}
    assert agent_env["MTLSDEMO_WORKLOAD"] == name
    volume = {m["mountPath"]: m["name"] for m in agent["volumeMounts"]}[
        agent_env["MTLSDEMO_SOCKET_DIR"]
    ]
    assert {v["name"]: v for v in pod["volumes"]}[volume].keys() == {"name", "emptyDir"}
    socket = f"unix://{mounts[volume]}/{name}/agent.sock"
    assert env["MTLSDEMO_SPIFFE_ENDPOINT_SOCKET"] == socket
    assert "MTLSDEMO_IDENTITY_DIR" not in env and "identity" not in mounts


def test_security_context_is_restricted(objects: list[dict]) -> None:
    for name, pod in pod_specs(objects):
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["seccompProfile"]["type"] == "RuntimeDefault", (
            name
        )
        for c in all_containers(pod):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (name, c["name"])
            res = c["resources"]
            assert res["requests"] and res["limits"], (name, c["name"])


def test_sidecars_are_native_and_apps_bind_loopback_behind_them(objects: list[dict]) -> None:
    pods = dict(pod_specs(objects))
    sidecars = {}
    for name in ("ledger", "gateway"):
        # the mTLS sidecar, after the pod's Workload API agent in workload-api mode
        *agent, sidecar = pods[name]["initContainers"]
        assert [c["name"] for c in agent] == (["agent"] if identities(objects) else [])
        for c in [*agent, sidecar]:
            assert c["restartPolicy"] == "Always" and c["args"] == [c["name"]]
        sidecars[name] = sidecar
    ledger_env = {e["name"]: e.get("value") for e in pods["ledger"]["containers"][0]["env"]}
    assert ledger_env["MTLSDEMO_LISTEN"].startswith("127.0.0.1:")
    sidecar_env = {e["name"]: e.get("value") for e in sidecars["ledger"]["env"]}
    assert sidecar_env["MTLSDEMO_INBOUND_TARGET"] == ledger_env["MTLSDEMO_LISTEN"]
    assert (
        sidecar_env["MTLSDEMO_ALLOW_ID"]
        == "spiffe://mtls-demo.local/ns/$(POD_NAMESPACE)/sa/gateway"
    )
    gw_env = {e["name"]: e.get("value") for e in pods["gateway"]["containers"][0]["env"]}
    route = {e["name"]: e.get("value") for e in sidecars["gateway"]["env"]}["MTLSDEMO_ROUTE"]
    assert route.startswith(gw_env["MTLSDEMO_LEDGER_ADDR"] + "=ledger:8443@")
    assert route.endswith("/ns/$(POD_NAMESPACE)/sa/ledger")


def test_only_gateway_pods_reach_the_ledger_sidecar(objects: list[dict]) -> None:
    pols = {p["metadata"]["name"]: p for p in by_kind(objects, "NetworkPolicy")}
    deny = pols["default-deny-ingress"]["spec"]
    assert (
        deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    )
    ledger_rules = [
        rule
        for p in pols.values()
        if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "ledger"
        for rule in p["spec"]["ingress"]
    ]
    # the console's rule (observability) opens the ledger's admin ports, never 8443
    opening_8443 = [r for r in ledger_rules if {"protocol": "TCP", "port": 8443} in r["ports"]]
    assert len(opening_8443) == 1
    (rule,) = opening_8443
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8443}]
    assert all(
        {p["port"] for p in r["ports"]} <= {9101, 9102, 9901, 9902}
        for r in ledger_rules
        if r is not rule
    )
    # the metrics policy opens only metrics/admin ports, never the sidecar's 8443
    ingress = pols["metrics-from-prometheus"]["spec"]["ingress"][0]
    assert {p["port"] for p in ingress["ports"]} == {9101, 9102, 9901, 9902}
    # Prometheus in this namespace, or an operator's in a namespace its owner labelled
    assert {"namespaceSelector": {"matchLabels": {"mtlsdemo/scrape": "true"}}} in ingress["from"]


def test_the_console_reaches_the_admin_and_metrics_ports_of_every_pod_and_nothing_else(
    objects: list[dict],
) -> None:
    """Egress: each rule's ports are opened by the pods it names, plus cluster DNS;
    ingress on those pods admits the console on the same ports; the headless
    Services (one A record per pod) name ports the pods open."""
    pols = {p["metadata"]["name"]: p["spec"] for p in by_kind(objects, "NetworkPolicy")}
    egress = pols["console-egress"]
    assert egress["policyTypes"] == ["Egress"]
    allowed: dict[str, set[int]] = {}
    dns = [rule for rule in egress["egress"] if "to" not in rule]
    # DNS to any destination on port 53 only: GKE's node-local cache (169.254.20.10) and
    # Cloud DNS (169.254.169.254) are no kube-dns pod a selector could name
    assert len(dns) == 1 and {p["port"] for p in dns[0]["ports"]} == {53}
    assert {p["protocol"] for p in dns[0]["ports"]} == {"UDP", "TCP"}
    for rule in egress["egress"]:
        if rule in dns:
            continue
        (to,) = rule["to"]
        ports = {p["port"] for p in rule["ports"]}
        name = to["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        pods = selected(objects, {"app.kubernetes.io/name": name})
        assert pods and all(_opens(pod, port) for pod in pods for port in ports), (name, ports)
        allowed[name] = ports
    assert allowed == {"gateway": {9901, 9102}, "ledger": {9902, 9101}}
    for name, ports in allowed.items():
        (rule,) = pols[f"{name}-admin-from-console"]["ingress"]
        assert rule["from"] == [
            {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "console"}}}
        ]
        assert {p["port"] for p in rule["ports"]} == ports
    services = {s["metadata"]["name"]: s["spec"] for s in by_kind(objects, "Service")}
    for name, ports in allowed.items():
        svc = services[f"{name}-pods"]
        assert svc["clusterIP"] == "None" and svc["publishNotReadyAddresses"] is True
        assert {p["targetPort"] for p in svc["ports"]} == ports
    (console,) = [o for o in by_kind(objects, "Deployment") if o["metadata"]["name"] == "console"]
    env = {
        e["name"]: e["value"] for e in console["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    discovered = {
        tuple(x.split(":"))
        for k in ("MTLSDEMO_DISCOVER_SIDECAR_ADMIN", "MTLSDEMO_DISCOVER_METRICS")
        for x in env[k].split(",")
    }
    assert discovered == {(f"{n}-pods", str(p)) for n, ports in allowed.items() for p in ports}


def test_scrape_annotations_point_at_admin_ports(objects: list[dict]) -> None:
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["name"] in (
            "ledger",
            "gateway",
        ):
            tmpl = o["spec"]["template"]
            port = int(tmpl["metadata"]["annotations"]["prometheus.io/port"])
            ports = {
                p["containerPort"] for c in all_containers(tmpl["spec"]) for p in c.get("ports", [])
            }
            assert port in ports


def test_prometheus_and_grafana_get_the_repo_config(objects: list[dict]) -> None:
    cms = {c["metadata"]["name"].rsplit("-", 1)[0]: c for c in by_kind(objects, "ConfigMap")}
    prom = yaml.safe_load(cms["prometheus-config"]["data"]["prometheus.yml"])
    assert prom == yaml.safe_load((ROOT / "deploy/prometheus/prometheus-k8s.yml").read_text())
    assert (
        cms["prometheus-rules"]["data"]["mtlsdemo.yml"]
        == (ROOT / "deploy/prometheus/rules/mtlsdemo.yml").read_text()
    )
    assert (
        cms["grafana-dashboards"]["data"]["mtls-handshakes.json"]
        == (ROOT / "deploy/grafana/dashboards/mtls-handshakes.json").read_text()
    )


def test_rendered_object_counts(objects: list[dict], record_property) -> None:
    record_property("objects", len(objects))
    print(f"\n{len(objects)} objects rendered")
    kinds = {o["kind"] for o in objects}
    assert {
        "Job",
        "CronJob",
        "StatefulSet",
        "Deployment",
        "NetworkPolicy",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "Service",
        "ConfigMap",
        "Namespace",
    } <= kinds


def jobs_applied_by_scripts() -> list[dict]:
    """What up.sh renders besides the overlay: the smoke Job and a rotate-ca stage."""
    out = []
    for args in (["smoke", "mtlsdemo:sha-0"], ["rotate-ca", "mtlsdemo:sha-0", "plan"]):
        r = subprocess.run(
            [str(K8S / "render.sh"), *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert r.returncode == 0, r.stderr
        out += [d for d in yaml.safe_load_all(r.stdout) if d]
    return out


def unreadable_secret_mounts(pod: dict) -> list[str]:
    """The kubelet writes Secret (and ConfigMap) files root:root with their mode and
    changes the group to the pod's fsGroup only when there is one: a pod whose
    containers run as a non-root user must then either set fsGroup or give the
    files other-read, or it cannot read its own volume."""
    sc = pod.get("securityContext", {})
    if sc.get("fsGroup") is not None:
        return []
    users = {
        c.get("securityContext", {}).get("runAsUser", sc.get("runAsUser"))
        for c in all_containers(pod)
    }
    if users <= {0}:
        return []
    bad = []
    for v in pod.get("volumes", []):
        src = v.get("secret") or v.get("configMap") or v.get("projected")
        if src is None:
            continue
        modes = [src.get("defaultMode", 0o644)] + [
            i["mode"] for i in src.get("items", []) if "mode" in i
        ]
        if any(m & 0o004 == 0 for m in modes):
            bad.append(f"volume {v['name']} (mode {oct(min(modes))}, no fsGroup)")
    return bad


def test_a_non_root_pod_can_read_its_secret_volumes(objects: list[dict]) -> None:
    for name, pod in [*pod_specs(objects), *pod_specs(jobs_applied_by_scripts())]:
        assert not unreadable_secret_mounts(pod), f"{name}: {unreadable_secret_mounts(pod)}"


def test_yesterdays_smoke_job_would_be_caught() -> None:
    pod = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001},
        "containers": [{"name": "balance"}],
        "volumes": [{"name": "identity", "secret": {"secretName": "x", "defaultMode": 0o440}}],
    }
    assert unreadable_secret_mounts(pod) == ["volume identity (mode 0o440, no fsGroup)"]
    pod["securityContext"]["fsGroup"] = 10001
    assert unreadable_secret_mounts(pod) == []


def test_read_only_roots_get_a_writable_tmp(objects: list[dict]) -> None:
    """Python's tempfile (used by the clients' diagnosis and the handshake trace) needs
    one; the smoke Job had none."""
    for name, pod in [*pod_specs(objects), *pod_specs(jobs_applied_by_scripts())]:
        for c in all_containers(pod):
            if not c.get("securityContext", {}).get("readOnlyRootFilesystem"):
                continue
            # the roles that can make temporary files (diagnosis, traces, the console's
            # in-memory handshakes); the sidecar and the bootstrap never do
            if not c["image"].startswith("mtlsdemo") or c.get("args", [""])[0] not in (
                "client",
                "serve",
                "console",
            ):
                continue
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{name}/{c['name']}: read-only root and no /tmp"


def test_cronjobs_cannot_be_blocked_by_one_stuck_run(objects: list[dict]) -> None:
    for cron in by_kind(objects, "CronJob"):
        spec = cron["spec"]
        if spec.get("concurrencyPolicy") != "Forbid":
            continue
        assert spec.get("startingDeadlineSeconds"), cron["metadata"]["name"]
        active = spec["jobTemplate"]["spec"].get("activeDeadlineSeconds")
        assert active, f"{cron['metadata']['name']}: a stuck Job would block every later run"
        if cron["metadata"]["name"] == "cert-status-refresh":  # staples are valid 1 h
            assert 2 * 15 * 60 + active < 3600


def test_http_probes_allow_a_loaded_laptop(objects: list[dict]) -> None:
    for name, pod in pod_specs(objects):
        for c in all_containers(pod):
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = c.get(kind)
                if probe and "httpGet" in probe and kind != "startupProbe":
                    assert probe.get("timeoutSeconds", 1) >= 3, f"{name}/{c['name']} {kind}"


def test_the_authz_configmap_decides_as_the_allow_id_lists_and_is_mounted(
    objects: list[dict],
) -> None:
    """The policy the pods re-read (ConfigMap mtlsdemo-authz) parses against the mesh's
    methods and gives exactly the decisions of the MTLSDEMO_ALLOW_ID lists beside it,
    for every identity x workload x method; each container that names it mounts it."""
    from mtlsdemo.policyfile import parse
    from mtlsdemo.rpc.methods import all_methods, mesh_methods
    from mtlsdemo.trust.authz import PolicySet, Request

    (cm,) = [o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"] == "mtlsdemo-authz"]
    ns = cm["metadata"]["namespace"]
    policy = parse(cm["data"]["policy.yaml"], "mtlsdemo-authz", all_methods())
    lists: dict[str, PolicySet] = {}
    for name, pod in pod_specs(objects):
        for c in all_containers(pod):
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            if "MTLSDEMO_AUTHZ_POLICY" not in env:
                continue
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            vol = mounts[str(Path(env["MTLSDEMO_AUTHZ_POLICY"]).parent)]
            (v,) = [v for v in pod["volumes"] if v["name"] == vol]
            assert v["configMap"]["name"] == "mtlsdemo-authz", c["name"]
            # the pod's one list: the gateway's own, or its sidecar's when it takes the
            # callers (post-quantum)
            (allow,) = {
                e["value"]
                for other in all_containers(pod)
                for e in other.get("env", [])
                if e["name"] == "MTLSDEMO_ALLOW_ID"
            }
            lists[name] = PolicySet.allow_ids([allow.replace("$(POD_NAMESPACE)", ns)], name)
    assert set(lists) == {"gateway", "ledger"}, lists
    for workload, allow_ids in lists.items():
        for caller in ("cli", "gateway", "ledger", "intruder"):
            who = f"spiffe://mtls-demo.local/ns/{ns}/sa/{caller}"
            for method in (None, *mesh_methods()[workload]):
                req = Request(who, workload, method)
                assert policy.evaluate(req).allowed == allow_ids.evaluate(req).allowed, req


def datasource_refs(node: object) -> set[tuple[str, str]]:
    """Every (type, uid) a dashboard's panels and targets name as their datasource."""
    if isinstance(node, list):
        return set().union(*(datasource_refs(v) for v in node))
    if not isinstance(node, dict):
        return set()
    own = node.get("datasource")
    found = {(own["type"], own["uid"])} if isinstance(own, dict) else set()
    return found.union(*(datasource_refs(v) for v in node.values()))


def test_grafana_reads_the_provisioning_where_the_pinned_version_looks(
    objects: list[dict],
) -> None:
    """Grafana is not run here (a public image): what its pinned version reads is
    checked instead. Provisioning files in apiVersion 1 under the default
    paths.provisioning (/etc/grafana/provisioning/{datasources,dashboards}); the
    dashboard provider's path is where the dashboards ConfigMap is mounted, in a named
    folder; every datasource reference in the dashboard is a provisioned uid and type;
    the datasource URL is the rendered Prometheus Service; data on a writable volume."""
    (grafana,) = [o for o in by_kind(objects, "Deployment") if o["metadata"]["name"] == "grafana"]
    pod = grafana["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"].startswith("grafana/grafana:11.")
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    cms = {o["metadata"]["name"]: o for o in by_kind(objects, "ConfigMap")}

    def files_at(path: str) -> dict[str, str]:
        return cms[volumes[mounts[path]]["configMap"]["name"]]["data"]

    (sources,) = [
        yaml.safe_load(t) for t in files_at("/etc/grafana/provisioning/datasources").values()
    ]
    (providers,) = [
        yaml.safe_load(t) for t in files_at("/etc/grafana/provisioning/dashboards").values()
    ]
    assert sources["apiVersion"] == providers["apiVersion"] == 1
    uids = {(d["type"], d["uid"]) for d in sources["datasources"]}
    assert [d["isDefault"] for d in sources["datasources"]].count(True) == 1
    (prom,) = sources["datasources"]
    svc = {o["metadata"]["name"]: o for o in by_kind(objects, "Service")}["prometheus"]
    assert prom["url"] == f"http://prometheus:{svc['spec']['ports'][0]['port']}"
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["folder"]
    dashboards = files_at(provider["options"]["path"])
    assert dashboards, "the provider's path holds no dashboard"
    for name, text in dashboards.items():
        refs = datasource_refs(json.loads(text))
        assert refs and refs <= uids, (name, refs - uids)
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert "emptyDir" in volumes[mounts[env["GF_PATHS_DATA"]]]  # grafana.db, writable
