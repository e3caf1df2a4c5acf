"""docker-compose with the ML-DSA override (``make compose-up MTLSDEMO_KEY_TYPE=
ml-dsa-65``): every identity ML-DSA-65, the gateway behind its sidecar, the client's
calls over MTD/1 into it (the client picks MTD/1 for an ML-DSA identity)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from support.docker import wait_healthy
from support.metrics import metric_value

pytestmark = pytest.mark.containers


def get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.read().decode()


def test_compose_on_ml_dsa_serves_the_client_over_mtd(compose_post_quantum) -> None:
    dc, project, ports, _env = compose_post_quantum
    up = dc("up", "-d")
    assert up.returncode == 0, up.stderr
    wait_healthy(dc, project, ("ledger", "ledger-sidecar", "gateway", "gateway-sidecar"))
    for port in (ports["MTLSDEMO_GATEWAY_ADMIN_PORT"], ports["MTLSDEMO_LEDGER_ADMIN_PORT"]):
        cert = json.loads(get(port, "/status"))["certificate"]
        assert cert["key_type"] == "ml-dsa-65", cert
    r = dc("run", "--rm", "client", "open", "pq-user", "--id", "erin", check=False)
    assert r.returncode == 0 and "opened erin" in r.stdout, r.stdout + r.stderr
    # the call came in through the gateway sidecar's MTD/1 listener, from the cli
    page = get(ports["MTLSDEMO_GATEWAY_ADMIN_PORT"], "/metrics")
    assert metric_value(page, "mtls_handshakes_total", role="server", result="success") >= 1
