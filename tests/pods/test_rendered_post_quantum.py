"""The kind overlay with the whole mesh on ML-DSA-65 (``MTLSDEMO_KEY_TYPE=ml-dsa-65
make kind-up``), run as pods with the kubelet's rules: the bootstrap issues ML-DSA
identities, the gateway serves behind its sidecar, and the smoke Job as rendered
calls it over MTD/1 (its client picks MTD/1 for an ML-DSA identity)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from kubelet import Cluster, Pod, PodFailed
from rendered import apply_together, foreign_ca_check, render, running
from support.metrics import metric_value

pytestmark = pytest.mark.pods


@pytest.fixture(scope="module")
def cluster(tag: str, tmp_path_factory: pytest.TempPathFactory):
    with running(render("kind", tag, key_type="ml-dsa-65"), tmp_path_factory.mktemp("c"), tag) as c:
        yield c


def get(pod: Pod, port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://{pod.ip}:{port}{path}", timeout=5) as r:
        return r.read().decode()


def test_the_smoke_job_calls_the_ml_dsa_mesh_over_mtd(cluster: Cluster, tag: str) -> None:
    _bootstrap, (ledger,), gateways = apply_together(
        cluster, ("Job", "cert-bootstrap"), ("StatefulSet", "ledger"), ("Deployment", "gateway")
    )
    for pod, port in [(ledger, 9902), *((g, 9901) for g in gateways)]:
        status = json.loads(get(pod, port, "/status"))
        assert status["certificate"]["key_type"] == "ml-dsa-65", status["certificate"]
    (job,) = render("smoke", tag)
    try:
        smoke = cluster.run_job(job)
    except PodFailed as e:
        pytest.fail(f"{e}\n{getattr(e, 'logs', '')}\n{gateways[0].all_logs()[-3000:]}")
    assert smoke.logs("balance").strip() == f"smoke-b-{smoke.uid} (smoke-b): 2.50"
    # the cli's calls came in through a gateway sidecar's MTD/1 listener, ML-DSA both ways
    inbound = sum(
        metric_value(
            get(g, 9901, "/metrics"), "mtls_handshakes_total", role="server", result="success"
        )
        for g in gateways
    )
    assert inbound >= 5  # one per step of the Job (open, open, deposit, transfer, balance)
    # verify-on-cluster.sh's foreign-CA check holds on the ML-DSA ledger too
    r = foreign_ca_check(gateways[0])
    assert r.returncode == 1 and "unknown_ca" in r.stdout + r.stderr, r.stdout + r.stderr
