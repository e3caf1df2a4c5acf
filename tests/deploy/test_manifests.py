"""Kubernetes manifests, verified offline: every overlay renders with kustomize,
every object validates against the Kubernetes API schemas (kubernetes-validate),
and the objects are wired to each other and to the mtlsdemo CLI."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from conftest import require_binary
from mtlsdemo.cli import build_parser
from mtlsdemo.flags import env_name

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["kind", "minikube"]
K8S_VERSION = "1.30.0"  # native sidecars need >= 1.29
CRD_KINDS = {"ServiceMonitor"}  # no schema offline; checked structurally below


def render(path: Path) -> list[dict]:
    kubectl = require_binary("kubectl")
    r = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request) -> list[dict]:
    return render(K8S / "overlays" / request.param)


@pytest.fixture(scope="module")
def with_operator(tmp_path_factory) -> list[dict]:
    """The base plus the prometheus-operator component."""
    d = tmp_path_factory.mktemp("operator")
    shutil.copytree(K8S, d / "k8s")
    shutil.copytree(ROOT / "deploy" / "prometheus", d / "prometheus")
    shutil.copytree(ROOT / "deploy" / "grafana", d / "grafana")
    (d / "k8s" / "check").mkdir()
    (d / "k8s" / "check" / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [../base]\ncomponents: [../components/prometheus-operator]\n")
    return render(d / "k8s" / "check")


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


def test_every_object_validates_against_the_api_schema(objects: list[dict]) -> None:
    checked = 0
    for o in objects:
        if o["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(o, K8S_VERSION, strict=True)
        checked += 1
    assert checked == len(objects) >= 25


def test_operator_component_validates_and_selects_metrics_services(with_operator) -> None:
    for o in with_operator:
        if o["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(o, K8S_VERSION, strict=True)
    (sm,) = by_kind(with_operator, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    selected = [s for s in by_kind(with_operator, "Service")
                if all(s["metadata"].get("labels", {}).get(k) == v
                       for k, v in sm["spec"]["selector"]["matchLabels"].items())]
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
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    return set(env["MTLSDEMO_SERVICE"].split(","))


def test_references_resolve(objects: list[dict]) -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    # Secrets are written by the Job at run time: they must be ones it issues.
    job_secrets = {f"mtlsdemo-{s}-tls" for s in job_services(objects)}
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
                templates = {t["metadata"]["name"] for t in o["spec"].get("volumeClaimTemplates", [])}
        assert mounts <= declared | templates, (name, mounts - declared - templates)
    for rb in by_kind(objects, "RoleBinding"):
        assert ("Role", rb["roleRef"]["name"]) in names
        for subj in rb["subjects"]:
            assert ("ServiceAccount", subj["name"]) in names


def test_probe_and_service_ports_exist(objects: list[dict]) -> None:
    pods_by_label = {}
    for name, pod in pod_specs(objects):
        ports = {p["name"] for c in all_containers(pod) for p in c.get("ports", [])}
        for c in all_containers(pod):
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                p = c.get(probe)
                if p and "httpGet" in p:
                    assert p["httpGet"]["port"] in ports, (name, c["name"], probe)
        for o in objects:
            if o["metadata"]["name"] == name and o["kind"] in ("Deployment", "StatefulSet"):
                pods_by_label[tuple(sorted(o["spec"]["selector"]["matchLabels"].items()))] = ports
    for svc in by_kind(objects, "Service"):
        sel = tuple(sorted(svc["spec"]["selector"].items()))
        assert sel in pods_by_label, svc["metadata"]["name"]
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in pods_by_label[sel], (svc["metadata"]["name"], p)
    (ledger_svc,) = [s for s in by_kind(objects, "Service") if s["metadata"]["name"] == "ledger"]
    assert [p["name"] for p in ledger_svc["spec"]["ports"]] == ["mtd"]  # only the sidecar port


def _subparser(argv: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    parser = build_parser()
    path = []
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or not argv or argv[0] not in subs[0].choices:
            return parser, path
        path.append(argv[0])
        parser = subs[0].choices[argv[0]]
        argv = argv[1:]


def test_every_command_is_a_real_subcommand_and_every_env_var_a_flag_twin(objects: list[dict]) -> None:
    seen = 0
    for name, pod in pod_specs(objects):
        for c in all_containers(pod):
            if c["image"].split(":")[0] != "mtlsdemo":
                continue
            args = c.get("args", [])
            build_parser().parse_args(args)  # SystemExit if not a real command line
            parser, _path = _subparser(args)
            twins = {env_name(s) for a in parser._actions for s in a.option_strings
                     if s.startswith("--")}
            envs = {e["name"] for e in c.get("env", [])}
            assert envs <= twins, (name, c["name"], envs - twins)
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                cmd = (c.get(probe) or {}).get("exec", {}).get("command")
                if cmd:
                    assert cmd[0] == "mtlsdemo"
                    build_parser().parse_args(cmd[1:])
            seen += 1
    assert seen >= 6  # job, cronjob, ledger + sidecar, gateway + sidecar


def test_only_the_bootstrap_touches_the_ca(objects: list[dict]) -> None:
    for name, pod in pod_specs(objects):
        for v in pod.get("volumes", []):
            assert v.get("secret", {}).get("secretName") != "mtlsdemo-ca", name
    (role,) = [r for r in by_kind(objects, "Role") if r["metadata"]["name"] == "cert-bootstrap"]
    named = [r for r in role["rules"] if "resourceNames" in r]
    assert "mtlsdemo-ca" in named[0]["resourceNames"]
    assert set(named[0]["verbs"]) == {"get", "update", "patch"}
    unnamed = [r for r in role["rules"] if "resourceNames" not in r]
    assert [set(r["verbs"]) for r in unnamed] == [{"create"}]
    for rb in by_kind(objects, "RoleBinding"):
        if rb["roleRef"]["name"] == "cert-bootstrap":
            assert [s["name"] for s in rb["subjects"]] == ["cert-bootstrap"]


def test_each_pod_mounts_only_its_own_identity(objects: list[dict]) -> None:
    for name, pod in pod_specs(objects):
        secrets = [v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v]
        if name in ("ledger", "gateway"):
            assert secrets == [f"mtlsdemo-{name}-tls"]
            assert pod["serviceAccountName"] == name  # the SPIFFE ID's sa/<name>
        else:
            assert secrets == []


def test_security_context_is_restricted(objects: list[dict]) -> None:
    for name, pod in pod_specs(objects):
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["seccompProfile"]["type"] == "RuntimeDefault", name
        for c in all_containers(pod):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (name, c["name"])
            res = c["resources"]
            assert res["requests"] and res["limits"], (name, c["name"])


def test_sidecars_are_native_and_apps_bind_loopback_behind_them(objects: list[dict]) -> None:
    pods = dict(pod_specs(objects))
    for name in ("ledger", "gateway"):
        (sidecar,) = pods[name]["initContainers"]
        assert sidecar["restartPolicy"] == "Always" and sidecar["args"] == ["sidecar"]
    ledger_env = {e["name"]: e.get("value") for e in pods["ledger"]["containers"][0]["env"]}
    assert ledger_env["MTLSDEMO_LISTEN"].startswith("127.0.0.1:")
    sidecar_env = {e["name"]: e.get("value") for e in pods["ledger"]["initContainers"][0]["env"]}
    assert sidecar_env["MTLSDEMO_INBOUND_TARGET"] == ledger_env["MTLSDEMO_LISTEN"]
    assert sidecar_env["MTLSDEMO_ALLOW_ID"] == "spiffe://mtls-demo.local/ns/mtlsdemo/sa/gateway"
    gw_env = {e["name"]: e.get("value") for e in pods["gateway"]["containers"][0]["env"]}
    route = {e["name"]: e.get("value") for e in pods["gateway"]["initContainers"][0]["env"]}["MTLSDEMO_ROUTE"]
    assert route.startswith(gw_env["MTLSDEMO_LEDGER_ADDR"] + "=ledger:8443@")
    assert route.endswith("/ns/mtlsdemo/sa/ledger")


def test_only_gateway_pods_reach_the_ledger_sidecar(objects: list[dict]) -> None:
    pols = {p["metadata"]["name"]: p for p in by_kind(objects, "NetworkPolicy")}
    deny = pols["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    ledger_rules = [p["spec"] for p in pols.values()
                    if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "ledger"]
    assert len(ledger_rules) == 1
    (rule,) = ledger_rules[0]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": "mtd"}]
    # the metrics policy opens only metrics/admin ports, never mtd
    metrics = pols["metrics-from-prometheus"]["spec"]["ingress"][0]["ports"]
    assert {p["port"] for p in metrics} == {"metrics", "admin"}


def test_scrape_annotations_point_at_admin_ports(objects: list[dict]) -> None:
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["name"] in ("ledger", "gateway"):
            tmpl = o["spec"]["template"]
            port = int(tmpl["metadata"]["annotations"]["prometheus.io/port"])
            ports = {p["containerPort"] for c in all_containers(tmpl["spec"]) for p in c.get("ports", [])}
            assert port in ports


def test_prometheus_and_grafana_get_the_repo_config(objects: list[dict]) -> None:
    cms = {c["metadata"]["name"].rsplit("-", 1)[0]: c for c in by_kind(objects, "ConfigMap")}
    prom = yaml.safe_load(cms["prometheus-config"]["data"]["prometheus.yml"])
    assert prom == yaml.safe_load((ROOT / "deploy/prometheus/prometheus-k8s.yml").read_text())
    assert cms["prometheus-rules"]["data"]["mtlsdemo.yml"] == \
        (ROOT / "deploy/prometheus/rules/mtlsdemo.yml").read_text()
    assert cms["grafana-dashboards"]["data"]["mtls-handshakes.json"] == \
        (ROOT / "deploy/grafana/dashboards/mtls-handshakes.json").read_text()


def test_rendered_object_counts(objects: list[dict], record_property) -> None:
    record_property("objects", len(objects))
    print(f"\n{len(objects)} objects rendered")
    kinds = {o["kind"] for o in objects}
    assert {"Job", "CronJob", "StatefulSet", "Deployment", "NetworkPolicy", "Role",
            "RoleBinding", "ServiceAccount", "Service", "ConfigMap", "Namespace"} <= kinds
