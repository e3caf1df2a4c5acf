"""What `make kind-up` applies, run as pods on Docker with the kubelet's rules
(kubelet.py says what is emulated and what is not): the kind overlay rendered by
deploy/k8s/render.sh with the content tag up.sh gives the image, then the
scenario a user runs — bootstrap Job, ledger, gateways, console, the smoke Job,
a CA rollover stage, a forced renewal — every pod taken from the rendered YAML.

Secrets: the cert-bootstrap Job runs as rendered, with the official client and
its in-cluster config, against an API server stand-in (apiserver_standin.py)
that enforces the rendered Role; Secret volumes are projected from what it stored.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import urllib.request

import pytest
import yaml
from kubelet import Cluster, Pod, PodFailed, find, load_rendered
from mtlsdemo.waiting import wait_until
from rendered import K8S, apply_together, foreign_ca_check, render, running
from support.metrics import metric_value

pytestmark = pytest.mark.pods


@pytest.fixture(scope="module")
def cluster(tag: str, tmp_path_factory: pytest.TempPathFactory):
    with running(render("kind", tag), tmp_path_factory.mktemp("cluster"), tag) as c:
        yield c


class Mesh:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        # everything at once, as `kubectl apply` starts it: the workloads' pods wait
        # for the Secrets the bootstrap Job writes (ContainerCreating), and whatever
        # mounts the optional CRL volume before the Job publishes it starts without one
        self.bootstrap, self.ledger, self.gateways, self.console = apply_together(
            cluster,
            ("Job", "cert-bootstrap"),
            ("StatefulSet", "ledger"),
            ("Deployment", "gateway"),
            ("Deployment", "console"),
        )

    def status(self, pod: Pod, port: int) -> dict:
        with urllib.request.urlopen(f"http://{pod.ip}:{port}/status", timeout=5) as r:
            return json.load(r)


@pytest.fixture(scope="module")
def mesh(cluster: Cluster) -> Mesh:
    return Mesh(cluster)


def job_named(objects: list[dict], name: str) -> dict:
    return find(objects, "Job", name)


def run_job(cluster: Cluster, job: dict) -> Pod:
    try:
        return cluster.run_job(job)
    except PodFailed as e:
        pytest.fail(f"Job {job['metadata']['name']}: {e}\n{getattr(e, 'logs', '')}")


def test_bootstrap_job_writes_every_secret_through_the_api_its_role_allows(mesh: Mesh) -> None:
    stored = sorted(p.stem for p in (mesh.cluster.workdir / "apiserver/secrets/mtlsdemo").iterdir())
    assert stored == [
        "mtlsdemo-ca",
        "mtlsdemo-cli-tls",
        "mtlsdemo-crl",
        "mtlsdemo-gateway-tls",
        "mtlsdemo-ledger-tls",
    ]
    role = find(mesh.cluster.objects, "Role", "cert-bootstrap")
    named = {n for r in role["rules"] for n in r.get("resourceNames", [])}
    assert set(stored) == named  # every Secret it writes is one its Role names


def test_every_sidecar_holds_the_crl_the_bootstrap_published(mesh: Mesh) -> None:
    """Started with the Job, a pod may mount the optional CRL volume before the Job
    publishes mtlsdemo-crl: its sidecar refuses peers (status_missing, fail closed)
    until the kubelet's sync projects the CRL, then follows it with no restart."""
    for pod, port in [(mesh.ledger[0], 9902), *((g, 9901) for g in mesh.gateways)]:
        crl = wait_until(
            lambda pod=pod, port=port: (
                (c := mesh.status(pod, port)["crl"])["missing"] is False and c
            ),
            timeout=30,
            interval=0.5,
            ignore=(OSError,),
            what=f"{pod.name}'s sidecar to hold the CRL",
        )
        assert crl["required"] is True and crl["last_error"] is None, crl
        assert pod.containers["sidecar"].restarts == 0, pod.all_logs()[-2000:]


def test_services_route_to_the_sidecar_and_app_ports_of_ready_pods(mesh: Mesh) -> None:
    (ledger,) = mesh.ledger
    assert mesh.cluster.endpoints("ledger") == {"8443": [f"{ledger.ip}:8443"]}
    gw = mesh.cluster.endpoints("gateway")["50052"]  # targetPort: grpc, a named port
    assert sorted(gw) == sorted(f"{p.ip}:50052" for p in mesh.gateways)


def test_smoke_job_as_rendered_completes(mesh: Mesh, tag: str) -> None:
    (job,) = render("smoke", tag)
    pod = run_job(mesh.cluster, job)
    # every step ran, in order, on the accounts named from the pod's own uid ($(POD_UID))
    assert pod.logs("balance").strip() == f"smoke-b-{pod.uid} (smoke-b): 2.50"
    # verify-on-cluster's next checks: the ledger's sidecar counted the gateway's
    # handshakes, and the gateway pod reaches ledger:8443 through the Service
    (ledger,) = mesh.ledger
    with urllib.request.urlopen(f"http://{ledger.ip}:9902/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert metric_value(metrics, "mtls_handshakes_total", role="server", result="success") >= 1
    code = "import socket; socket.create_connection(('ledger', 8443), timeout=5)"
    r2 = subprocess.run(
        ["docker", "exec", mesh.gateways[0].containers["gateway"].docker_id, "python3", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r2.returncode == 0, r2.stderr


def test_yesterdays_smoke_job_fails_here_as_it_did_on_kind(mesh: Mesh, tag: str) -> None:
    """The runner refuses what the kubelet refuses: without fsGroup the 0440 Secret
    files stay root:root and uid 10001 cannot read them."""
    (job,) = render("smoke", tag)
    job["metadata"]["name"] = "smoke-without-fsgroup"
    del job["spec"]["template"]["spec"]["securityContext"]["fsGroup"]
    with pytest.raises(PodFailed) as e:
        mesh.cluster.run_job(job)
    assert e.value.reason == "BackoffLimitExceeded"
    assert "cannot read identity files: Permission denied" in e.value.detail


def test_the_rotate_ca_file_applied_raw_is_an_image_pull_backoff(cluster: Cluster) -> None:
    """`kubectl apply -f deploy/k8s/jobs/rotate-ca-job.yaml`, as the docs said:
    `image: mtlsdemo` is docker.io/library/mtlsdemo:latest, which no node has."""
    (job,) = load_rendered((K8S / "jobs" / "rotate-ca-job.yaml").read_text())
    job["metadata"]["namespace"] = "mtlsdemo"
    with pytest.raises(PodFailed) as e:
        cluster.run_job(job)
    assert e.value.reason == "ImagePullBackOff"
    assert "docker.io/library/mtlsdemo:latest" in e.value.detail


def test_the_status_refresh_cronjob_template_runs(mesh: Mesh) -> None:
    cron = find(mesh.cluster.objects, "CronJob", "cert-status-refresh")
    job = {"kind": "Job", "metadata": {"name": "refresh-now", "namespace": "mtlsdemo"}}
    run_job(mesh.cluster, {**job, "spec": cron["spec"]["jobTemplate"]["spec"]})


def test_a_foreign_ca_client_is_refused_by_the_ledger_sidecar(mesh: Mesh) -> None:
    r = foreign_ca_check(mesh.gateways[0])
    assert r.returncode == 1 and "unknown_ca" in r.stdout + r.stderr, r.stdout + r.stderr


def test_a_forced_renewal_reaches_the_running_sidecar_without_a_restart(
    mesh: Mesh, tag: str
) -> None:
    (ledger,) = mesh.ledger
    before = mesh.status(ledger, 9902)["certificate"]["serial"]
    restarts = {n: c.restarts for n, c in ledger.containers.items()}
    cron = find(mesh.cluster.objects, "CronJob", "cert-renew")
    spec = json.loads(json.dumps(cron["spec"]["jobTemplate"]["spec"]))
    c = spec["template"]["spec"]["containers"][0]
    c["env"] = [e for e in c["env"] if e["name"] != "MTLSDEMO_SERVICE"] + [
        {"name": "MTLSDEMO_SERVICE", "value": "ledger"},
        {"name": "MTLSDEMO_FORCE", "value": "true"},
    ]
    run_job(mesh.cluster, {"kind": "Job", "metadata": {"name": "renew-now"}, "spec": spec})
    after = wait_until(
        lambda: (s := mesh.status(ledger, 9902)["certificate"]["serial"]) != before and s,
        timeout=60,
        interval=0.5,
        ignore=(OSError,),  # a read that timed out while the sidecar reloads: not yet
        what="the ledger sidecar to serve the renewed certificate",
        describe=lambda: (mesh.status(ledger, 9902), ledger.all_logs()[-3000:]),
    )
    assert after != before
    now = {n: c.restarts for n, c in ledger.containers.items()}
    assert now == restarts, (now, ledger.all_logs()[-3000:])
    # and the mesh still serves with it
    (smoke,) = render("smoke", tag)
    smoke["metadata"]["name"] = "smoke-after-renewal"
    run_job(mesh.cluster, smoke)


def test_an_edited_authz_configmap_reaches_the_running_sidecar(mesh: Mesh) -> None:
    """The policy is a ConfigMap: an edit is projected into the volume by the
    kubelet's sync and the ledger's sidecar follows it without a restart."""
    (ledger,) = mesh.ledger
    cm = find(mesh.cluster.objects, "ConfigMap", "mtlsdemo-authz")
    before = cm["data"]["policy.yaml"]
    status = mesh.status(ledger, 9902)["authz_policy"]
    assert status["policies"] == ["ledger-callers", "gateway-callers"], status
    restarts = {n: c.restarts for n, c in ledger.containers.items()}
    try:
        cm["data"]["policy.yaml"] = before.replace("ledger-callers", "ledger-callers-v2")
        wait_until(
            lambda: "ledger-callers-v2" in mesh.status(ledger, 9902)["authz_policy"]["policies"],
            timeout=60,
            interval=0.5,
            ignore=(OSError,),
            what="the ledger's sidecar to follow the edited ConfigMap",
            describe=lambda: mesh.status(ledger, 9902)["authz_policy"],
        )
    finally:
        cm["data"]["policy.yaml"] = before
    wait_until(
        lambda: mesh.status(ledger, 9902)["authz_policy"]["policies"][0] == "ledger-callers",
        timeout=60,
        interval=0.5,
        ignore=(OSError,),
        what="the ledger's sidecar back on the original policy",
    )
    assert {n: c.restarts for n, c in ledger.containers.items()} == restarts


def test_the_console_sees_every_sidecar_and_the_edge(mesh: Mesh) -> None:
    (console,) = mesh.console

    def seen() -> dict | None:
        with urllib.request.urlopen(f"http://{console.ip}:8080/api/mesh", timeout=5) as r:
            m = json.load(r)
        admins = [s for s in m["sources"] if s["kind"] == "sidecar admin" and s["up"]]
        edge = [
            e
            for e in m["edges"]
            if e["client"].endswith("/sa/gateway")
            and e["server"].endswith("/sa/ledger")
            and e["ok"]
        ]
        return m if len(admins) == 3 and edge else None

    wait_until(seen, timeout=60, interval=1, what="the console to see 3 sidecars and the edge")


def prom_time(text: str) -> dt.datetime:
    """Prometheus's RFC 3339 times (nanoseconds) as datetimes."""
    head, _, frac = text.rstrip("Z").partition(".")
    return dt.datetime.fromisoformat(f"{head}.{(frac or '0')[:6]:0<6}+00:00")


def pod_discovery_over_http_sd(cluster: Cluster, prom: dict) -> None:
    """Debian's Prometheus (the image's stand-in) is built without Kubernetes
    discovery: its rendered `kubernetes_sd_configs` (role pod, its own namespace)
    becomes HTTP SD from the API stand-in, which finds the same targets with the same
    labels for a ServiceAccount whose Role may list pods. The relabeling, the rules
    and everything else stay as rendered."""
    (vol,) = [v for v in prom["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"]
    cm = find(cluster.objects, "ConfigMap", vol["configMap"]["name"])
    config = yaml.safe_load(cm["data"]["prometheus.yml"])
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    for job in config["scrape_configs"]:
        (sd,) = job.pop("kubernetes_sd_configs")
        assert sd == {"role": "pod", "namespaces": {"own_namespace": True}}, sd
        job["http_sd_configs"] = [
            {
                "url": f"https://{cluster.apiserver_ip}:6443/prometheus-sd/namespaces/"
                f"{cluster.default_namespace}/pods",
                "refresh_interval": "5s",
                "authorization": {"type": "Bearer", "credentials_file": f"{sa}/token"},
                "tls_config": {"ca_file": f"{sa}/ca.crt"},
            }
        ]
    cm["data"]["prometheus.yml"] = yaml.safe_dump(config)


def test_prometheus_as_rendered_scrapes_every_pod_and_no_alert_fires(
    mesh: Mesh, prometheus_image: str
) -> None:
    """The observability half: the rendered Prometheus pod (its config and rules
    ConfigMaps mounted one inside the other, as the kubelet mounts them) finds the
    pods through the API (its Role), scrapes every sidecar and service, and its rules
    raise nothing on a healthy mesh."""
    prom = find(mesh.cluster.objects, "Deployment", "prometheus")
    pod_discovery_over_http_sd(mesh.cluster, prom)
    mesh.cluster.load_substitute(
        prom["spec"]["template"]["spec"]["containers"][0]["image"], prometheus_image
    )
    (pod,) = mesh.cluster.rollout(prom)

    def api(path: str) -> dict:
        with urllib.request.urlopen(f"http://{pod.ip}:9090/api/v1/{path}", timeout=5) as r:
            return json.load(r)["data"]

    workloads = [*mesh.gateways, *mesh.ledger]
    expected = {(c, p.name) for p in workloads for c in ("sidecar", p.name.split("-")[0])}

    def all_up() -> list[dict] | None:
        active = api("targets")["activeTargets"]
        seen = {(t["labels"]["component"], t["labels"]["pod"]) for t in active}
        return active if seen >= expected and all(t["health"] == "up" for t in active) else None

    active = wait_until(
        all_up,
        timeout=90,
        interval=1,
        ignore=(OSError, KeyError),
        what="Prometheus to scrape every sidecar and service",
        describe=lambda: (api("targets"), pod.all_logs()[-2000:]),
    )
    scraped = max(prom_time(t["lastScrape"]) for t in active)

    def evaluated() -> list[dict] | None:  # every rule group ran after those scrapes
        groups = api("rules")["groups"]
        return (
            groups
            if groups and all(prom_time(g["lastEvaluation"]) > scraped for g in groups)
            else None
        )

    groups = wait_until(
        evaluated, timeout=60, interval=1, ignore=(OSError,), what="a rule evaluation"
    )
    assert sum(len(g["rules"]) for g in groups) >= 10
    firing = [a for a in api("alerts")["alerts"] if a["state"] == "firing"]
    assert firing == [], firing


def test_a_job_that_fails_every_time_crash_loops_before_the_job_fails(mesh: Mesh, tag: str) -> None:
    """`rotate-ca switch` before `prepare` fails at once, every time; with
    restartPolicy OnFailure the kubelet restarts it in place after a back-off that
    doubles (10 s, 20 s, …), so the Job says Failed only after backoffLimit, about ten
    minutes later: what up.sh reports at once is the CrashLoopBackOff. Bounded here
    by an activeDeadlineSeconds of 25 s: one restart fits, not a second."""
    (job,) = render("rotate-ca", tag, "switch")
    job["metadata"]["name"] = "switch-too-early"
    job["spec"]["activeDeadlineSeconds"] = 25
    with pytest.raises(PodFailed) as e:
        mesh.cluster.run_job(job)
    assert e.value.reason == "DeadlineExceeded"
    (pod,) = [p for p in mesh.cluster.pods if p.name.startswith("switch-too-early-")]
    (state,) = [s for s in pod.containers.values() if s.kind == "main"]
    assert state.restarts == 1 and state.waiting == "CrashLoopBackOff", state
    assert "`prepare` comes first" in pod.all_logs()


def test_ca_rollover_stages_run_as_up_sh_applies_them(mesh: Mesh, tag: str) -> None:
    """Last: `prepare` changes every bundle. The Job is rendered as
    `deploy/k8s/up.sh kind rotate-ca STAGE` renders it (the deployed image)."""
    (plan,) = render("rotate-ca", tag, "plan")
    out = run_job(mesh.cluster, plan).logs("cert-bootstrap")
    assert out.startswith("stage: none") and "next: `prepare`" in out, out
    (prepare,) = render("rotate-ca", tag, "prepare")
    out = run_job(mesh.cluster, prepare).logs("cert-bootstrap")
    bundle = mesh.cluster.data_of("Secret", "mtlsdemo", "mtlsdemo-ledger-tls")["ca.crt"]
    assert bundle.count(b"BEGIN CERTIFICATE") == 2, out  # old + new, in the Secret
    (ledger,) = mesh.ledger
    wait_until(
        lambda: len(mesh.status(ledger, 9902)["ca_fingerprints_sha256"]) == 2,
        timeout=60,
        interval=0.5,
        what="the ledger sidecar to trust both CAs",
    )
    (smoke,) = render("smoke", tag)
    smoke["metadata"]["name"] = "smoke-after-prepare"
    run_job(mesh.cluster, smoke)
