"""The console's DNS discovery (Kubernetes: a headless Service per workload): one
watch per address, a new pod watched as it appears, a gone one dropped, a failed
lookup changes nothing."""

from __future__ import annotations

import asyncio

import aiohttp
from mtlsdemo.console.sources import Watcher


def test_one_watch_per_address_added_and_dropped_as_dns_changes() -> None:
    answers = [["10.0.0.1", "10.0.0.2"], ["10.0.0.2", "fd00::3"], OSError("no such name")]
    changes: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        assert (host, port) == ("gateway-pods", 9901)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def scenario() -> list[list[str]]:
        w = Watcher((), (), 1.0, lambda kind, _doc: changes.append(kind), resolve=resolve)
        w.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2))
        known: set[str] = set()
        seen = []
        for _ in range(3):
            await w.discover_once("gateway-pods", 9901, True, known)
            seen.append(sorted(sc.url for sc in w.sidecars))
        assert set(w.tasks) == set(seen[-1])  # no watch left behind for a gone pod
        await w.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen[0] == ["http://10.0.0.1:9901", "http://10.0.0.2:9901"]
    assert seen[1] == ["http://10.0.0.2:9901", "http://[fd00::3]:9901"]
    assert seen[2] == seen[1]  # the lookup failed: keep watching what we had
    assert changes == ["mesh", "mesh"]


def test_discovered_metrics_are_their_metrics_path() -> None:
    async def scenario() -> list[str]:
        async def resolve(_h: str, _p: int) -> list[str]:
            return ["10.0.0.9"]

        w = Watcher((), (), 1.0, lambda *_: None, resolve=resolve)
        w.session = aiohttp.ClientSession()
        await w.discover_once("ledger-pods", 9101, False, set())
        urls = [m.url for m in w.metrics]
        await w.close()
        return urls

    assert asyncio.run(scenario()) == ["http://10.0.0.9:9101/metrics"]
