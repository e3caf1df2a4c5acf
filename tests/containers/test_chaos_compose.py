"""`mtlsdemo chaos --compose` against a docker-compose project of its own:
containers SIGKILLed and started again (an app with its sidecar: a new network
namespace), frozen with `docker pause`, certificates renewed and revoked by the
project's `certs` service, all under steady transfers; then the same audit as
the local soak, from a copy of the ledger's database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.processes import wait_for

pytestmark = pytest.mark.containers
ROOT = Path(__file__).resolve().parents[2]


def test_a_compose_soak_loses_nothing_and_heals(compose, tmp_path: Path) -> None:
    dc, project, ports, env = compose
    assert dc("up", "-d").returncode == 0
    r = subprocess.run(
        [sys.executable, "-m", "mtlsdemo", "chaos", "--compose", project, "--duration", "40",
         "--seed", "3", "--json", "--work-dir", str(tmp_path),
         "--gateway-addr", f"127.0.0.1:{ports['MTLSDEMO_GATEWAY_PORT']}"],
        cwd=ROOT, env={**env, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert "Traceback" not in r.stderr, r.stderr
    d = json.loads(r.stdout)
    a = d["audit"]
    assert r.returncode == 0 and d["ok"], json.dumps(d, indent=2) + r.stderr
    assert (a["lost"], a["duplicated"], a["phantom"], a["balance_drift_cents"]) == (0, 0, 0, 0)
    assert a["hung_attempts"] == 0 and a["acknowledged"] >= 100
    kinds = d["faults_injected"]
    assert {"kill:ledger", "kill:ledger-sidecar", "kill:gateway-sidecar", "kill:gateway"} <= set(
        kinds
    )
    assert not any(k.startswith("net:") for k in kinds)  # no proxy on the compose hop
    assert d["final_recovery_s"] is not None and d["final_recovery_s"] <= 20
    # and the project is whole again: every container healthy
    wait_for(
        lambda: "unhealthy" not in dc("ps").stdout and dc("ps").stdout.count("(healthy)") >= 6,
        timeout=60,
        interval=1,
        what="every container healthy after the soak",
    )
