"""A real Prometheus (Debian's binary) with the shipped rules, for tests: its HTTP API,
and a run of it on a config the test writes."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml
from mtlsdemo.addresses import free_port

from support.processes import wait_for
from support.tools import require_binary

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"


def api(port: int, path: str, **params: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.loads(r.read())
    assert doc["status"] == "success", doc
    return doc["data"]


def query(port: int, expr: str) -> list:
    return api(port, "query", query=expr)["result"]


@contextlib.contextmanager
def running(root: Path, scrape_configs: list[dict]) -> Iterator[int]:
    """Prometheus scraping and evaluating the shipped rules every second; its port,
    once every target is up."""
    binary = require_binary("prometheus")
    port = free_port()
    cfg = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES / "*.yml")],
        "scrape_configs": scrape_configs,
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    log_path = root / "prometheus.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={root / 'prometheus.yml'}",
             f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            want = sum(len(s["targets"]) for c in scrape_configs for s in c["static_configs"])

            def all_up() -> bool:
                assert proc.poll() is None, log_path.read_text()[-2000:]
                targets = api(port, "targets")["activeTargets"]
                return len(targets) == want and all(t["health"] == "up" for t in targets)

            wait_for(all_up, timeout=60, what=f"{want} scrape targets up", ignore=(OSError,))
            yield port
        finally:
            proc.terminate()
            proc.wait(20)


def evaluated_after(port: int, start: dt.datetime, seconds: float = 3) -> None:
    """Wait until every rule group has been evaluated ``seconds`` after ``start``."""

    def evaluated() -> bool:
        groups = api(port, "rules")["groups"]
        times = [
            dt.datetime.fromisoformat(g["lastEvaluation"].replace("Z", "+00:00")) for g in groups
        ]
        return bool(times) and min(times) > start + dt.timedelta(seconds=seconds)

    wait_for(evaluated, timeout=60, what=f"every rule group evaluated {seconds} s after the start")
