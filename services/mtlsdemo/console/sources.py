"""What the console watches: each sidecar's admin (/status and /certificates
polled, /events followed live) and each service's /metrics (polled). Every
watcher survives its target going away and coming back (a restarted sidecar is
a new ``instance``: its handshake ids start again)."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from mtlsdemo.telemetry import samples

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
    for s in samples(text, (*WANTED, "mtlsdemo_build_info")):
        if s.name == "mtlsdemo_build_info":
            component = s.labels.get("component", "")
        if s.name in WANTED:
            out.append((s.name, dict(s.labels), float(s.value)))
    return component, out


Resolver = Callable[[str, int], Awaitable[list[str]]]
DISCOVER_EVERY = 5.0  # seconds between DNS lookups of a discovered name


async def resolve_all(host: str, port: int) -> list[str]:
    """Every address a name has now: a Kubernetes headless Service answers with one
    A record per pod (publishNotReadyAddresses: the not-ready ones too)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _url(address: str, port: int) -> str:
    return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"


class Watcher:
    """All the watches, and one ``changed`` callback for the console's hub.
    Fixed URLs are watched for ever; discovered names (HOST:PORT) are looked up
    every few seconds, one watch per address, dropped when the address goes."""

    def __init__(
        self,
        sidecars: tuple[str, ...],
        metrics: tuple[str, ...],
        interval: float,
        on_change: Callable[[str, dict[str, Any] | None], None],
        discover_sidecars: tuple[tuple[str, int], ...] = (),
        discover_metrics: tuple[tuple[str, int], ...] = (),
        resolve: Resolver = resolve_all,
        agents: tuple[str, ...] = (),
    ) -> None:
        self.sidecars: list[SidecarState] = []
        self.agent_urls = agents
        # each agent's /status while reachable (None: not read, or not answering)
        self.agents: dict[str, dict[str, Any] | None] = {}
        self.metrics: list[MetricsState] = []
        self._fixed = (sidecars, metrics)
        self._discover = (discover_sidecars, discover_metrics)
        self.interval = interval
        self.on_change = on_change
        self.resolve = resolve
        self.tasks: dict[str, list[asyncio.Task[None]]] = {}  # per watched URL
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # a short total timeout for the polls; the event stream sets its own (none)
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3))
        for url in self._fixed[0]:
            self._watch_sidecar(url)
        for url in self._fixed[1]:
            self._watch_metrics(url)
        for host, port in self._discover[0]:
            self.tasks[f"dns:{host}:{port}"] = [
                asyncio.create_task(self._discover_loop(host, port, sidecar=True))
            ]
        for host, port in self._discover[1]:
            self.tasks[f"dns-metrics:{host}:{port}"] = [
                asyncio.create_task(self._discover_loop(host, port, sidecar=False))
            ]

    def _watch_sidecar(self, url: str) -> None:
        sc = SidecarState(url)
        self.sidecars.append(sc)
        self.tasks[url] = [
            asyncio.create_task(self._poll_sidecar(sc)),
            asyncio.create_task(self._follow(sc)),
        ]

    def _watch_agent(self) -> None:
        """Once: a sidecar takes its identity from a Workload API agent."""
        if self.agent_urls and "agent" not in self.tasks:
            self.tasks["agent"] = [
                asyncio.create_task(self._poll_agent(url)) for url in self.agent_urls
            ]

    async def _poll_agent(self, url: str) -> None:
        while True:
            try:
                status: dict[str, Any] | None = _steady(await self._get_json(url + "/status"))
            except ERRORS as e:
                log.debug("agent at %s: %s", url, e)
                status = None
            if status != self.agents.get(url):
                self.agents[url] = status
                self.on_change("mesh", None)
            await asyncio.sleep(self.interval)

    @property
    def agent(self) -> dict[str, Any] | None:
        """Every agent watched as one view: the first's settings, and the workloads of
        all of them side by side, each with its trust domain (None: none answers)."""
        up = [s for url in self.agent_urls if (s := self.agents.get(url)) is not None]
        if not up:
            return None
        workloads: dict[str, Any] = {}
        for status in up:
            td = status.get("trust_domain")
            for name, w in status.get("workloads", {}).items():
                workloads[name if name not in workloads else f"{name} ({td})"] = {
                    **w,
                    "trust_domain": td,
                }
        return {
            **up[0],
            "workloads": workloads,
            "trust_domains": [s.get("trust_domain") for s in up],
        }

    def _watch_metrics(self, url: str) -> None:
        ms = MetricsState(url)
        self.metrics.append(ms)
        self.tasks[url] = [asyncio.create_task(self._poll_metrics(ms))]

    def _unwatch(self, url: str) -> None:
        for t in self.tasks.pop(url, []):
            t.cancel()
        self.sidecars = [s for s in self.sidecars if s.url != url]
        self.metrics = [m for m in self.metrics if m.url != url]

    async def discover_once(self, host: str, port: int, sidecar: bool, known: set[str]) -> None:
        try:
            addresses = await self.resolve(host, port)
        except (OSError, ValueError) as e:  # a name not (yet) in DNS: keep what we have
            log.debug("discovering %s:%d: %s", host, port, e)
            return
        urls = {_url(a, port) + ("" if sidecar else "/metrics") for a in addresses}
        for url in urls - known:
            (self._watch_sidecar if sidecar else self._watch_metrics)(url)
        for url in known - urls:
            self._unwatch(url)  # the pod is gone (or not resolvable any more)
        if urls != known:
            known.clear()
            known.update(urls)
            self.on_change("mesh", None)

    async def _discover_loop(self, host: str, port: int, sidecar: bool) -> None:
        known: set[str] = set()
        while True:
            await self.discover_once(host, port, sidecar, known)
            await asyncio.sleep(DISCOVER_EVERY)

    async def close(self) -> None:
        tasks = [t for ts in self.tasks.values() for t in ts]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    async def get_json(self, url: str) -> dict[str, Any]:
        """One JSON read on the watcher's session (the page's on-demand reads)."""
        return await self._get_json(url)

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
                if "workload_api" in status.get("identity_source", {}):
                    self._watch_agent()
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


def _steady(status: dict[str, Any]) -> dict[str, Any]:
    """The agent's status without what changes every second (the page counts down
    from not_after itself): a new view only when an SVID or a rotation changes."""
    workloads = {
        name: {k: v for k, v in w.items() if k != "remaining_seconds"}
        for name, w in status.get("workloads", {}).items()
    }
    return {**status, "workloads": workloads}


def _why(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) < 200 else text[:200] + "…"
