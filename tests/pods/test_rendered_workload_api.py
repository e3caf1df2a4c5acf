"""The kind overlay in workload-api mode (``MTLSDEMO_IDENTITIES=workload-api make
kind-up``), run as pods with the kubelet's rules: each workload pod's own agent
issues short-lived SVIDs from the CA's Secret and pushes them over a socket in the
pod's emptyDir; the sidecars and the gateway take them, renewals reach them without
a restart, and calls go through the mesh before and after a rotation."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
from kubelet import Cluster, Pod, PodFailed, find
from mtlsdemo.waiting import wait_until
from rendered import apply_together, foreign_ca_check, render, running

pytestmark = pytest.mark.pods
TTL = "30s"  # renewed 12-15 s in: a rotation within the test, as `--svid-ttl 30s` shows


def short_lived(objects: list[dict]) -> list[dict]:
    """The agents' TTL cut from 24 h to TTL, as a user would patch it to watch rotations."""
    for kind, name in (("StatefulSet", "ledger"), ("Deployment", "gateway")):
        (agent,) = [
            c
            for c in find(objects, kind, name)["spec"]["template"]["spec"]["initContainers"]
            if c["name"] == "agent"
        ]
        for e in agent["env"]:
            if e["name"] == "MTLSDEMO_SVID_TTL":
                e["value"] = TTL
    return objects


@pytest.fixture(scope="module")
def cluster(tag: str, tmp_path_factory: pytest.TempPathFactory):
    objects = short_lived(render("kind", tag, identities="workload-api"))
    with running(objects, tmp_path_factory.mktemp("cluster"), tag) as c:
        yield c


def get(pod: Pod, port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://{pod.ip}:{port}{path}", timeout=5) as r:
        return json.load(r)


class Mesh:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        _bootstrap, self.ledger, self.gateways = apply_together(
            cluster, ("Job", "cert-bootstrap"), ("StatefulSet", "ledger"), ("Deployment", "gateway")
        )

    def smoke(self, tag: str, name: str) -> Pod:
        (job,) = render("smoke", tag)
        job["metadata"]["name"] = name
        try:
            return self.cluster.run_job(job)
        except PodFailed as e:
            pytest.fail(
                f"{name}: {e}\n{getattr(e, 'logs', '')}\n{self.ledger[0].all_logs()[-3000:]}"
            )


@pytest.fixture(scope="module")
def mesh(cluster: Cluster) -> Mesh:
    return Mesh(cluster)


def test_each_pod_serves_its_own_workload_a_short_lived_svid(mesh: Mesh) -> None:
    (ledger,) = mesh.ledger
    agent = get(ledger, 9910, "/status")
    assert list(agent["workloads"]) == ["ledger"]  # this pod's one workload, nothing else
    assert agent["ttl_seconds"] == 30
    status = get(ledger, 9902, "/status")
    assert status["identity_source"] == {"workload_api": "unix:///run/spiffe/ledger/agent.sock"}
    assert status["identity"] == agent["workloads"]["ledger"]["spiffe_id"]
    assert status["identity"] == "spiffe://mtls-demo.local/ns/mtlsdemo/sa/ledger"
    assert 0 < status["certificate"]["expires_in_seconds"] <= 30
    # The agent renews every ~15 s, so a renewal may fall between two reads: the
    # sidecar holds the agent's current SVID once its push has arrived.
    wait_until(
        lambda: (
            get(ledger, 9902, "/status")["certificate"]["serial"]
            == get(ledger, 9910, "/status")["workloads"]["ledger"]["serial"]
        ),
        timeout=10,
        interval=0.2,
        ignore=(OSError,),
        what="the ledger's sidecar to hold the SVID its agent issued last",
        describe=lambda: (get(ledger, 9902, "/status"), get(ledger, 9910, "/status")),
    )
    for gw in mesh.gateways:
        assert list(get(gw, 9910, "/status")["workloads"]) == ["gateway"]


def test_calls_go_through_the_mesh_on_svids(mesh: Mesh, tag: str) -> None:
    pod = mesh.smoke(tag, "smoke-on-svids")
    assert pod.logs("balance").strip() == f"smoke-b-{pod.uid} (smoke-b): 2.50"


def test_a_rotation_reaches_the_running_sidecar_and_calls_still_pass(mesh: Mesh, tag: str) -> None:
    (ledger,) = mesh.ledger
    before = get(ledger, 9902, "/status")["certificate"]["serial"]
    restarts = {n: c.restarts for n, c in ledger.containers.items()}
    after = wait_until(
        lambda: (s := get(ledger, 9902, "/status")["certificate"]["serial"]) != before and s,
        timeout=60,
        interval=0.5,
        ignore=(OSError,),
        what="the ledger's sidecar to take the SVID its agent renewed",
        describe=lambda: (get(ledger, 9910, "/status"), ledger.all_logs()[-3000:]),
    )
    rotations = get(ledger, 9910, "/status")["workloads"]["ledger"]
    assert rotations["renewals"] >= 1 and rotations["failures"] == 0, rotations
    assert {n: c.restarts for n, c in ledger.containers.items()} == restarts
    assert after != before
    mesh.smoke(tag, "smoke-after-rotation")


def test_the_ca_key_is_in_the_agent_container_only(mesh: Mesh) -> None:
    """The agent signs, so it mounts the CA's Secret; the workload's own containers
    (the sidecar, the gateway) see neither the key nor an identity file."""
    gw = mesh.gateways[0]
    code = (
        "import os; print(os.path.exists('/certs/ca/ca.key'), "
        "os.path.isdir('/identity') and bool(os.listdir('/identity')), "
        "os.path.exists('/run/spiffe/gateway/agent.sock'))"
    )
    seen = {}
    for name in ("agent", "sidecar", "gateway"):
        r = subprocess.run(
            ["docker", "exec", gw.containers[name].docker_id, "python3", "-c", code],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert r.returncode == 0, r.stderr
        seen[name] = r.stdout.split()
    assert seen == {
        "agent": ["True", "False", "True"],
        "sidecar": ["False", "False", "True"],
        "gateway": ["False", "False", "True"],
    }


def test_a_foreign_ca_client_is_refused_as_verify_on_cluster_checks_it(mesh: Mesh) -> None:
    """verify-on-cluster.sh's check, in this mode: the mesh's CA from the pod's agent's
    bundle (no identity file to copy it from); the ledger refuses the foreign leaf."""
    r = foreign_ca_check(mesh.gateways[0])
    assert r.returncode == 1 and "unknown_ca" in r.stdout + r.stderr, r.stdout + r.stderr
