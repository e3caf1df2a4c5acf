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
