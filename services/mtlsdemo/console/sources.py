"""What the console watches: each sidecar's admin (/status and /certificates
polled, /events followed live) and each service's /metrics (polled). Every
watcher survives its target going away and coming back (a restarted sidecar is
a new ``instance``: its handshake ids start again)."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)
KEEP = 500  # handshakes remembered per sidecar
ERRORS = (aiohttp.ClientError, TimeoutError, ValueError, OSError)


@dataclass
class SidecarState:
    url: str
    name: str = ""
    up: bool = False
    error: str = "not reached yet"
    instance: str = ""
    status: dict[str, Any] | None = None
    certificates: dict[str, Any] | None = None
    live: bool = False  # following /events now
    handshakes: collections.OrderedDict[str, dict[str, Any]] = field(
        default_factory=collections.OrderedDict
    )

    def add_handshake(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        key = f"{self.url}#{self.instance}#{doc['id']}"
        if key in self.handshakes:
            return None
        doc = {**doc, "key": key, "source": self.url}
        self.handshakes[key] = doc
        while len(self.handshakes) > KEEP:
            self.handshakes.popitem(last=False)
        return doc


@dataclass
class MetricsState:
    url: str
    up: bool = False
    error: str = "not reached yet"
    component: str = ""
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def values(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(labels, v) for n, labels, v in self.samples if n == name]


WANTED = (
    "mtls_native_handshake_failures_total",
    "mtls_grpc_authorizations_total",
    "mtls_crl_revoked_serials",
    "mtls_crl_next_update_timestamp_seconds",
    "mtls_certificate_expiry_timestamp_seconds",
    "mtlsdemo_build_info",
)


def parse_metrics(text: str) -> tuple[str, list[tuple[str, dict[str, str], float]]]:
    """(component, the samples the console shows) from a Prometheus text page."""
    component, out = "", []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "mtlsdemo_build_info":
                component = s.labels.get("component", "")
            if s.name in WANTED:
                out.append((s.name, dict(s.labels), float(s.value)))
    return component, out


class Watcher:
    """All the watches, and one ``changed`` callback for the console's hub."""

    def __init__(
        self,
        sidecars: tuple[str, ...],
        metrics: tuple[str, ...],
        interval: float,
        on_change: Callable[[str, dict[str, Any] | None], None],
    ) -> None:
        self.sidecars = [SidecarState(u) for u in sidecars]
        self.metrics = [MetricsState(u) for u in metrics]
        self.interval = interval
        self.on_change = on_change
        self.tasks: list[asyncio.Task] = []
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # a short total timeout for the polls; the event stream sets its own (none)
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3))
        for sc in self.sidecars:
            self.tasks += [
                asyncio.create_task(self._poll_sidecar(sc)),
                asyncio.create_task(self._follow(sc)),
            ]
        for ms in self.metrics:
            self.tasks.append(asyncio.create_task(self._poll_metrics(ms)))

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    async def _get_json(self, url: str) -> dict[str, Any]:
        assert self.session is not None
        async with self.session.get(url) as r:
            r.raise_for_status()
            return dict(await r.json())

    async def _poll_sidecar(self, sc: SidecarState) -> None:
        while True:
            try:
                status = await self._get_json(sc.url + "/status")
                certs = await self._get_json(sc.url + "/certificates")
                changed = (status, certs) != (sc.status, sc.certificates) or not sc.up
                sc.status, sc.certificates, sc.up, sc.error = status, certs, True, ""
                sc.name = status.get("name", sc.name)
            except ERRORS as e:
                changed = sc.up or sc.error != _why(e)
                sc.up, sc.error = False, _why(e)
            if changed:
                self.on_change("mesh", None)
            await asyncio.sleep(self.interval)

    async def _follow(self, sc: SidecarState) -> None:
        """/events, reconnecting with ?since= the last id seen of this instance."""
        assert self.session is not None
        last_id, backoff = 0, 0.2
        while True:
            try:
                async with self.session.get(
                    sc.url + "/events",
                    params={"since": str(last_id), "instance": sc.instance},
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=60),
                ) as r:
                    r.raise_for_status()
                    sc.live, backoff = True, 0.2
                    event, data = "", ""
                    async for raw in r.content:
                        line = raw.decode().rstrip("\r\n")
                        if line.startswith("event:"):
                            event = line[6:].strip()
                        elif line.startswith("data:"):
                            data += line[5:].strip()
                        elif not line and event:
                            doc = json.loads(data) if data else {}
                            if event == "hello":
                                if doc.get("instance") != sc.instance:
                                    sc.instance, last_id = doc.get("instance", ""), 0
                                sc.name = doc.get("name", sc.name)
                            elif event == "handshake":
                                last_id = max(last_id, int(doc["id"]))
                                added = sc.add_handshake(doc)
                                if added is not None:
                                    self.on_change("handshake", added)
                            event, data = "", ""
            except ERRORS as e:
                log.debug("events from %s: %s", sc.url, e)
            sc.live = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _poll_metrics(self, ms: MetricsState) -> None:
        assert self.session is not None
        while True:
            try:
                async with self.session.get(ms.url) as r:
                    r.raise_for_status()
                    component, samples = parse_metrics(await r.text())
                changed = samples != ms.samples or not ms.up
                ms.component, ms.samples, ms.up, ms.error = component, samples, True, ""
            except ERRORS as e:
                changed = ms.up
                ms.up, ms.error = False, _why(e)
            if changed:
                self.on_change("mesh", None)
            await asyncio.sleep(max(self.interval, 2.0))


def _why(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) < 200 else text[:200] + "…"
