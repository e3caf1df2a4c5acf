"""`mtlsdemo bench handshake` runs end to end (a smoke test, not a timing: the
figures come from `make bench`). It once broke silently when every peer started
requiring a stapled status and the bench's configs had none."""

from __future__ import annotations

import json
import subprocess

import pytest
from support.processes import mtlsdemo
from support.tools import require_binary

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
        assert {
            "mtd_loopback",
            "mtd_loopback_no_verify_cache",
            "openssl_tls13_loopback",
            "mtd_loopback_resumed",  # every sample resumed, or the bench fails
            "openssl_tls13_resumed",  # likewise (session_reused checked)
        } <= set(kts[kt])
        assert kts[kt]["mtd_loopback"]["p50_ms"] > 0
        assert kts[kt]["ratios"]["mtd_resumed_p50_vs_openssl_resumed"] > 0


def test_bench_scale_holds_every_tunnel_and_resumes_after_the_first_burst(tmp_path) -> None:
    """A small `bench scale`: every tunnel opened in bursts over the pending cap is
    held and still carries a byte at the end; the later bursts resume."""
    r = subprocess.run(
        mtlsdemo("bench", "scale", "--tunnels", "600", "--burst", "300", "--json"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    scale = json.loads(r.stdout)["scale"]
    assert scale["tunnels_held"] == scale["tunnels_target"] == 600, scale["error_samples"]
    assert scale["errors"] == 0 and scale["sidecar_active_sessions"] == 600
    assert [b["ok"] for b in scale["bursts"]] == [300, 300]
    assert scale["handshakes"]["full"] + scale["handshakes"]["resumed"] == 600
    assert scale["handshakes"]["resumed"] >= 300  # the second burst at least
    assert scale["rss_per_tunnel_kib"] > 0
    # the floor: the same bursts through two bare relays, every connection echoed
    floor = scale["floor"]
    assert floor["errors"] == 0 and [b["ok"] for b in floor["bursts"]] == [300, 300], floor
    assert all(v > 0 for v in floor["cpu_ms_per_tunnel_by_relay"].values()), floor
    assert scale["burst_p99_vs_floor"] == scale["bursts"][0]["p99_ms"] / floor["burst_300_p99_ms"]
