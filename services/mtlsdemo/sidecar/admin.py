"""Admin HTTP endpoint, like ghostunnel's: /metrics, /healthz, /readyz, /status,
plus what the console reads: /certificates, /handshakes and the live /events.

aiohttp's server (a kept library; it runs on the sidecar's own asyncio/uvloop
loop, so the admin port costs no thread) replaces the hand-written HTTP/1.1 of
the first wave: keep-alive, HEAD, server-sent events and query strings for free.
The probes' and scrapes' paths and answers are unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], tuple[int, str, bytes]]  # (status, content type, body)
# A live stream: yields (event name, JSON-able data); a heartbeat keeps proxies
# and dead-peer detection honest while nothing happens.
Stream = Callable[[web.Request], AsyncIterator[tuple[str, Any]]]
HEARTBEAT = 15.0


def json_response(code: int, payload: object) -> tuple[int, str, bytes]:
    return code, "application/json", (json.dumps(payload, indent=2, default=str) + "\n").encode()


def _metrics(_request: web.Request) -> tuple[int, str, bytes]:
    return 200, CONTENT_TYPE_LATEST, generate_latest()


class Encoded(str):
    """JSON already encoded (once, for every reader): sent as it is."""


def sse(event: str, data: object) -> bytes:
    """One server-sent event (the data on one line: JSON has no raw newlines)."""
    payload = data if isinstance(data, Encoded) else json.dumps(data, default=str)
    return f"event: {event}\ndata: {payload}\n\n".encode()


async def stream_events(
    request: web.Request, events: AsyncIterator[tuple[str, Any]]
) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    it = aiter(events)
    nxt: asyncio.Task[tuple[str, Any]] | None = None
    try:
        while True:
            nxt = nxt or asyncio.ensure_future(anext(it))
            done, _ = await asyncio.wait({nxt}, timeout=HEARTBEAT)
            if not done:
                await resp.write(b": heartbeat\n\n")
                continue
            event, data = nxt.result()
            nxt = None
            await resp.write(sse(event, data))
    except (StopAsyncIteration, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        if nxt is not None:
            nxt.cancel()
        with contextlib.suppress(Exception):
            await it.aclose()  # type: ignore[attr-defined]
    return resp


class AdminServer:
    def __init__(
        self,
        routes: dict[str, Handler],
        streams: dict[str, Stream] | None = None,
        posts: dict[str, Handler] | None = None,
    ) -> None:
        self.routes: dict[str, Handler] = {"/metrics": _metrics, **routes}
        self.streams = streams or {}
        self.posts = posts or {}  # the few actions (POST only, never a GET side effect)
        self.runner: web.AppRunner | None = None

    def _paths(self) -> list[str]:
        return sorted([*self.routes, *self.streams, *self.posts])

    async def start(self, host: str, port: int) -> int:
        app = web.Application()
        for path, handler in self.routes.items():
            app.router.add_get(path, self._plain(handler))
        for path, stream in self.streams.items():
            app.router.add_get(path, self._stream(stream))
        for path, handler in self.posts.items():
            app.router.add_post(path, self._plain(handler))
        app.router.add_get("/", self._index)
        # access_log off: Prometheus and the probes would write a line every few seconds
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, reuse_address=True)
        await site.start()
        return int(self.runner.addresses[0][1])

    @staticmethod
    def _respond(code: int, ctype: str, body: bytes) -> web.Response:
        mime, _, params = ctype.partition(";")
        charset = params.split("charset=")[-1].strip() if "charset=" in params else None
        return web.Response(status=code, body=body, content_type=mime.strip(), charset=charset)

    def _plain(self, handler: Handler) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            return self._respond(*handler(request))

        return handle

    def _stream(self, stream: Stream) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await stream_events(request, stream(request))

        return handle

    async def _index(self, _request: web.Request) -> web.Response:
        return self._respond(*json_response(200, {"endpoints": self._paths()}))

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
