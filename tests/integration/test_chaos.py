"""`mtlsdemo chaos` on local processes: a short soak with a fixed seed — every
process SIGKILLed and restarted in turn, pauses, network faults between the
sidecars, certificate renewal and revocation — then the audit: nothing lost,
nothing twice, no money made or destroyed, every attempt ended by its deadline,
the mesh healthy again within the bound."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support.processes import mtlsdemo

pytestmark = pytest.mark.integration


def test_a_short_soak_loses_nothing_and_heals(tmp_path: Path) -> None:
    r = subprocess.run(
        mtlsdemo("chaos", "--duration", "40", "--seed", "7", "--json", "--work-dir", str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert "Traceback" not in r.stderr, r.stderr
    d = json.loads(r.stdout)
    a = d["audit"]
    assert r.returncode == 0 and d["ok"], json.dumps(d, indent=2)
    assert (a["lost"], a["duplicated"], a["phantom"], a["mismatched"]) == (0, 0, 0, 0)
    assert a["balance_drift_cents"] == 0 and a["hung_attempts"] == 0
    assert a["acknowledged"] >= 200 and a["attempts"] >= a["attempted"]
    kinds = d["faults_injected"]
    assert {k for k in kinds if k.startswith("kill:")} == {
        "kill:ledger", "kill:ledger-sidecar", "kill:gateway-sidecar", "kill:gateway",
    }  # fmt: skip
    assert sum(kinds.values()) == 10
    # every fault was followed by an acknowledged transfer, and soon
    assert all(f["recovered_in_s"] is not None and f["recovered_in_s"] < 15 for f in d["faults"]), (
        d["faults"]
    )
    assert d["final_recovery_s"] is not None and d["final_recovery_s"] <= 20
    assert d["latency_ms"]["outside_faults"]["n"] > 0
    # the work dir holds what the audit read: the journal, the ledger, the logs
    assert (tmp_path / "journal.jsonl").stat().st_size > 0
    assert (tmp_path / "var" / "ledger.db").exists() and (tmp_path / "mesh.log").exists()


def test_a_soak_through_three_svid_rotations_fails_no_call_and_restarts_nothing(
    tmp_path: Path,
) -> None:
    """`chaos --workload-api`: identities from the agent, renewed every ~5 s; the load
    alone (no faults) must see every transfer acknowledged, each SVID rotated at
    least three times, and no sidecar restarted (the swap is a hot one)."""
    r = subprocess.run(
        mtlsdemo(
            "chaos",
            "--workload-api",
            "--svid-ttl",
            "10s",
            "--faults",
            "none",
            "--duration",
            "22",
            "--json",
            "--work-dir",
            str(tmp_path),
        ),  # fmt: skip
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "Traceback" not in r.stderr, r.stderr
    d = json.loads(r.stdout)
    a = d["audit"]
    assert r.returncode == 0 and d["ok"], json.dumps(d, indent=2)
    assert a["failed"] == {} and a["acknowledged"] == a["attempted"] >= 200
    assert (a["lost"], a["duplicated"], a["balance_drift_cents"]) == (0, 0, 0)
    ident = d["identity"]
    assert all(n >= 3 for n in ident["rotations"].values()), ident
    assert set(ident["rotations"]) == {"gateway", "ledger"}
    assert ident["sidecars_restarted"] == [] and ident["renewal_failures"] == {
        "gateway": 0,
        "ledger": 0,
    }


def test_mtd_callers_through_the_gateways_sidecar_lose_nothing(tmp_path: Path) -> None:
    """The load over MTD/1 (a sidecar inside the load, into the gateway's sidecar, as
    `run --gateway-transport mtd` and every ML-DSA mesh): the gateway, its sidecar and
    the caller's certificate hit; nothing lost or doubled."""
    faults = ("kill:gateway", "kill:gateway-sidecar", "certs:renew", "certs:revoke")
    r = subprocess.run(
        mtlsdemo(
            "chaos", "--gateway-transport", "mtd", "--duration", "20", "--seed", "3",
            "--faults", ",".join(faults), "--json", "--work-dir", str(tmp_path),
        ),
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip
    assert "Traceback" not in r.stderr, r.stderr
    d = json.loads(r.stdout)
    a = d["audit"]
    assert r.returncode == 0 and d["ok"], json.dumps(d, indent=2)
    assert d["config"]["gateway_transport"] == "mtd"
    assert (a["lost"], a["duplicated"], a["phantom"], a["balance_drift_cents"]) == (0, 0, 0, 0)
    assert a["acknowledged"] >= 100
    assert set(d["faults_injected"]) == set(faults)
    # (the gateway served plaintext behind its sidecar: a native TLS call could not pass)


def test_chaos_bad_input_is_one_line(tmp_path: Path) -> None:
    for args, said in (
        (["--workload-api", "--gateway-transport", "mtd"], "local processes on identity files"),
        (["--workload-api", "--faults", "certs:renew"], "change identity files"),
        (["--faults", "kill:everything"], "unknown fault 'kill:everything'"),
        (["--duration", "1"], "must be at least 5"),
    ):
        r = subprocess.run(
            mtlsdemo("chaos", "--work-dir", str(tmp_path), *args),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2 and said in r.stderr and "Traceback" not in r.stderr, r.stderr
