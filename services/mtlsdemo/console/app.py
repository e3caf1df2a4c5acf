"""The console's web server (aiohttp, the same kept library as the sidecar admin):
the static page, a JSON API, and one server-sent-event stream to the browsers.

    GET  /                   the page (static HTML/CSS/JS, SVG drawn in the browser)
    GET  /api/mesh           nodes, edges, failures, certificates, sources
    GET  /api/handshakes     ?client=&server= recent handshakes of an edge (ladders)
    GET  /api/events         live: `mesh` (at most 4/s), `handshake`, `break`
    GET  /api/options        key types, suites, failures to provoke, break scenarios
    POST /api/try            one in-memory handshake {key_type, suite, provoke}
    POST /api/break/{name}   an `mtlsdemo break` scenario (only with --allow-break)

Every request passes console/guard.py first: a known Host; a POST also needs JSON,
its own Origin and the page's per-start token.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import json
import logging
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from mtlsdemo.breaking.catalog import SCENARIOS
from mtlsdemo.console.config import ConsoleConfig
from mtlsdemo.console.guard import Guard
from mtlsdemo.console.model import handshakes_for, mesh_view
from mtlsdemo.console.sources import Watcher
from mtlsdemo.console.tryout import PROVOKE, Tryout, TryoutError, TryRequest
from mtlsdemo.handshake import SUITES
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.keys import KEY_TYPES
from mtlsdemo.sidecar.admin import stream_events

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
PUSH_INTERVAL = 0.25  # mesh snapshots to browsers at most this often


class Console:
    def __init__(self, cfg: ConsoleConfig, workdir: Path) -> None:
        self.cfg = cfg
        self.watcher = Watcher(
            cfg.sidecar_admins,
            cfg.metrics,
            cfg.poll_interval,
            self._changed,
            discover_sidecars=cfg.discover_sidecar_admins,
            discover_metrics=cfg.discover_metrics,
            agents=cfg.agent_admins,
        )
        self.tryout = Tryout(workdir)
        self.guard = Guard(cfg.listen[0], cfg.allowed_hosts)
        self.clients: set[asyncio.Queue[tuple[str, Any]]] = set()
        self._dirty = asyncio.Event()
        self._breaking = asyncio.Lock()
        self._pusher: asyncio.Task[None] | None = None
        self._last_pushed = ""

    # --- live updates ---
    def _changed(self, kind: str, doc: dict[str, Any] | None) -> None:
        self._dirty.set()
        if kind == "handshake" and doc is not None:
            self._broadcast("handshake", doc)

    def _broadcast(self, event: str, data: Any) -> None:
        for q in self.clients:
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait((event, data))

    def snapshot(self) -> dict[str, Any]:
        return mesh_view(
            self.watcher.sidecars,
            self.watcher.metrics,
            dt.datetime.now(dt.UTC),
            self.watcher.agent,
        )

    async def _push_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if self.clients:
                snap = self.snapshot()
                # only a real change goes out (a sidecar's /status changes every
                # second by its uptime alone)
                key = json.dumps({**snap, "generated_at": None}, sort_keys=True, default=str)
                if key != self._last_pushed:
                    self._last_pushed = key
                    self._broadcast("mesh", snap)
            await asyncio.sleep(PUSH_INTERVAL)

    # --- handlers ---
    async def index(self, _r: web.Request) -> web.Response:
        # the page carries the per-start token its changes must send (console/guard.py)
        page = (STATIC / "index.html").read_text()
        page = page.replace('content="TOKEN"', f'content="{self.guard.token}"', 1)
        return web.Response(
            text=page,
            content_type="text/html",
            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
        )

    async def mesh(self, _r: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def handshakes(self, r: web.Request) -> web.Response:
        try:
            limit = min(int(r.query.get("limit", "50")), 1000)
        except ValueError:
            return _error(400, "limit is an integer")
        docs = handshakes_for(
            self.watcher.sidecars, r.query.get("client"), r.query.get("server"), limit
        )
        return web.json_response({"handshakes": docs})

    async def handshake_bytes(self, r: web.Request) -> web.Response:
        """``?key=`` (a handshake's key): its messages as labelled runs of bytes, read
        from the sidecar that journaled it (the byte view of a live ladder)."""
        from mtlsdemo.explain.illustrate import sent_messages

        url, _, rest = r.query.get("key", "").partition("#")
        instance, _, entry = rest.partition("#")
        sc = next((x for x in self.watcher.sidecars if x.url == url), None)
        if sc is None or not entry.isdigit():
            return _error(404, "no such handshake: give the key /api/handshakes lists")
        if sc.instance != instance:
            return _error(410, "that sidecar restarted since: its journal is gone")
        try:
            doc = await self.watcher.get_json(f"{url}/handshake-bytes?id={entry}")
        except (TimeoutError, aiohttp.ClientError) as e:
            return _error(502, f"{url}: {e or type(e).__name__} (the journal keeps the last ones)")
        ladder = [(x["direction"], x["name"], bytes.fromhex(x["hex"])) for x in doc["messages"]]
        return web.json_response(
            {"key": r.query["key"], "bytes": sent_messages(doc["role"], ladder)}
        )

    async def options(self, _r: web.Request) -> web.Response:
        return web.json_response(
            {
                "key_types": list(KEY_TYPES),
                "suites": [s.name for s in SUITES],
                "provoke": PROVOKE,
                "break": {
                    "allowed": self.cfg.allow_break,
                    "scenarios": SCENARIOS,
                    "command": self.cfg.break_command,
                },
            }
        )

    async def events(self, r: web.Request) -> web.StreamResponse:
        async def feed() -> AsyncIterator[tuple[str, Any]]:
            q: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(512)
            self.clients.add(q)
            try:
                yield "mesh", self.snapshot()
                while True:
                    yield await q.get()
            finally:
                self.clients.discard(q)

        return await stream_events(r, feed())

    async def try_handshake(self, r: web.Request) -> web.Response:
        try:
            body = await r.json()
            req = TryRequest(
                key_type=str(body.get("key_type", "ecdsa-p256")),
                suite=str(body.get("suite", SUITES[0].name)),
                provoke=str(body.get("provoke", "none")),
            )
            result = await asyncio.get_running_loop().run_in_executor(None, self.tryout.run, req)
        except (json.JSONDecodeError, AttributeError):
            return _error(400, "send a JSON object {key_type, suite, provoke}")
        except (TryoutError, PkiError) as e:
            return _error(400, str(e))
        return web.json_response(result)

    async def run_break(self, r: web.Request) -> web.Response:
        name = r.match_info["name"]
        if not self.cfg.allow_break or self.cfg.mesh is None:
            return _error(
                403,
                "break buttons are off: start the console with --allow-break "
                "(`mtlsdemo run` does, on loopback)",
            )
        if name not in SCENARIOS:
            return _error(404, f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}")
        if self._breaking.locked():
            return _error(409, "another scenario is running; wait for its report")
        async with self._breaking:
            # the page opens the refusal this run caused: the handshakes seen since
            # started_at (the console's clock, as the journals' `at`)
            started = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            self._broadcast("break", {"name": name, "state": "running", "started_at": started})
            report = await asyncio.get_running_loop().run_in_executor(None, self._scenario, name)
            report["started_at"] = started
        self._broadcast("break", report)
        return web.json_response(report)

    def _scenario(self, name: str) -> dict[str, Any]:
        from mtlsdemo.breaking.scenarios import run_scenario
        from mtlsdemo.mesh.client import LocalMesh

        assert self.cfg.mesh is not None
        # the identities a scenario makes are broken on purpose: no reload warnings
        logging.getLogger("mtlsdemo.pki.material").setLevel(logging.ERROR)
        try:
            report = run_scenario(LocalMesh(self.cfg.mesh), name)
        except PkiError as e:
            return {"name": name, "state": "done", "ok": False, "lines": [f"   !! {e}"]}
        return {"name": name, "state": "done", "ok": report.ok, "lines": report.lines}

    # --- lifecycle ---
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.guard.middleware()])
        app.router.add_get("/", self.index)
        app.router.add_static("/static/", STATIC)
        app.router.add_get("/api/mesh", self.mesh)
        app.router.add_get("/api/handshakes", self.handshakes)
        app.router.add_get("/api/options", self.options)
        app.router.add_get("/api/handshake-bytes", self.handshake_bytes)
        app.router.add_get("/api/events", self.events)
        app.router.add_post("/api/try", self.try_handshake)
        app.router.add_post("/api/break/{name}", self.run_break)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _app: web.Application) -> None:
        await self.watcher.start()
        self._pusher = asyncio.create_task(self._push_loop())

    async def _stop(self, _app: web.Application) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
        await self.watcher.close()


def _error(code: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=code)


def run(cfg: ConsoleConfig) -> int:
    host, port = cfg.listen
    with tempfile.TemporaryDirectory(prefix="mtlsdemo-console-") as tmp:
        console = Console(cfg, Path(tmp))
        watched = [
            *cfg.sidecar_admins,
            *cfg.metrics,
            *(f"every address of {h}:{p}" for h, p in cfg.discover_sidecar_admins),
            *(f"every address of {h}:{p} (metrics)" for h, p in cfg.discover_metrics),
        ]
        ready = f"console on http://{host}:{port}/ watching {', '.join(watched) or 'nothing'}" + (
            "; break buttons on" if cfg.allow_break else ""
        )
        try:
            web.run_app(
                console.app(),
                host=host,
                port=port,
                # aiohttp calls this once the port is bound: only then say where
                print=lambda _banner: print(ready, flush=True),
                access_log=None,
                shutdown_timeout=1.0,
                handle_signals=True,
            )
        except OSError as e:
            why = (
                "in use (another console, or `make run`'s?)"
                if e.errno == errno.EADDRINUSE
                else e.strerror
            )
            raise PkiError(f"console: --listen {host}:{port}: cannot listen: {why}") from None
    return 0
