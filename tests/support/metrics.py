"""Reading Prometheus text in tests: one sample sum, one scrape."""

from __future__ import annotations

import urllib.request

from mtlsdemo.telemetry import metric_value  # noqa: F401  (the one reader, re-exported)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()
