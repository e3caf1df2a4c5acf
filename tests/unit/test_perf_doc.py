"""docs/performance.md's numbers are the bench's: the committed docs/bench.json,
rendered by tools/perf_doc.py, gives exactly the page."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _perf_doc():
    spec = importlib.util.spec_from_file_location("perf_doc", ROOT / "tools" / "perf_doc.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["perf_doc"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_the_page_is_the_rendering_of_the_committed_bench_json() -> None:
    mod = _perf_doc()
    doc = (ROOT / "docs" / "performance.md").read_text()
    bench = json.loads((ROOT / "docs" / "bench.json").read_text())
    assert mod.render(doc, bench) == doc, (
        "stale: run `make perf-doc` (or tools/perf_doc.py docs/bench.json)"
    )
    for name in mod.BLOCKS:  # every block rendered, none left empty
        body = doc.split(f"<!-- bench:{name} -->\n", 1)[1].split(f"<!-- /bench:{name} -->", 1)[0]
        assert body.strip(), name


def test_the_bulk_reference_is_the_honest_one() -> None:
    bench = json.loads((ROOT / "docs" / "bench.json").read_text())
    bulk = bench["sidecar"]["bulk"]
    assert "recv_into" in bulk["method"]["reference"]
    assert bulk["tunnel_MBps"] == bulk["tunnel_MBps_spread"]["median"]  # the median, not the best


def _run(build: str, cold: float, bulk: float, tunnels: int) -> dict:
    return {
        "meta": {"build": build, "date": "2026-12-03"},
        "handshake": {
            "key_types": {"ecdsa-p256": {"ratios": {"mtd_loopback_no_cache_p50_vs_openssl": cold}}}
        },
        "sidecar": {"bulk": {"ratio_tunnel_vs_ssl": bulk, "method": "recv_into"}},
        "scale": {
            "tunnels_held": tunnels,
            "burst": 1,
            "burst_1_p99_ms": cold * 1000,
            "bursts": [{"p99_ms": cold * 1000}],
        },
    }


def test_several_runs_keep_the_median_of_every_figure_and_each_runs_headlines() -> None:
    mod = _perf_doc()
    runs = [
        _run("interpreted", c, b, t)
        for c, b, t in ((1.3, 0.5, 99), (1.1, 0.9, 100), (1.2, 0.7, 98))
    ]
    merged = mod.median_of_runs(runs)
    assert merged["handshake"]["key_types"]["ecdsa-p256"]["ratios"] == {
        "mtd_loopback_no_cache_p50_vs_openssl": 1.2
    }
    assert merged["sidecar"]["bulk"] == {"ratio_tunnel_vs_ssl": 0.7, "method": "recv_into"}
    assert merged["scale"]["tunnels_held"] == 99 and merged["scale"]["bursts"] == [
        {"p99_ms": 1200.0}
    ]
    assert merged["meta"]["runs"] == 3
    assert mod.headline(merged, "burst_p99_ms", ".0f", " ms") == "**1200 ms** (1100–1300 ms)"
    assert [h["cold_ecdsa-p256"] for h in merged["meta"]["headlines"]] == [1.3, 1.1, 1.2]
    assert mod.headline(merged, "cold_ecdsa-p256", ".2f", "x") == "**1.20x** (1.10–1.30x)"
    assert mod.headline(runs[0], "bulk_ratio", ".2f", "x") == "**0.50x**"  # one run: its value


def test_a_compiled_run_of_the_interpreted_core_is_refused() -> None:
    mod = _perf_doc()
    import pytest

    with pytest.raises(SystemExit, match="did not run the compiled core"):
        mod.merge([_run("interpreted", 1, 1, 1)], [_run("interpreted", 1, 1, 1)])
