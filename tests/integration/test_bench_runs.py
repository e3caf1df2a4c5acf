"""`mtlsdemo bench handshake` runs end to end (a smoke test, not a timing: the
figures come from `make bench`). It once broke silently when every peer started
requiring a stapled status and the bench's configs had none."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import require_binary
from procs import mtlsdemo

pytestmark = pytest.mark.integration


def test_bench_handshake_runs_and_reports_every_key(tmp_path) -> None:
    require_binary("openssl")
    r = subprocess.run(
        mtlsdemo("bench", "handshake", "--n", "4", "--json"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    kts = json.loads(r.stdout)["handshake"]["key_types"]
    for kt in ("ecdsa-p256", "rsa-2048"):
        assert {"mtd_loopback", "mtd_loopback_no_verify_cache", "openssl_tls13_loopback"} <= set(
            kts[kt]
        )
        assert kts[kt]["mtd_loopback"]["p50_ms"] > 0
