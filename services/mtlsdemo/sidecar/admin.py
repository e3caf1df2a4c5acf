"""Admin HTTP endpoint, like ghostunnel's: /metrics, /healthz, /readyz, /status.

A deliberately tiny HTTP/1.1 server on asyncio (GET only, one request per
connection): enough for Prometheus, kubelet probes and curl, and no dependency.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)
Handler = Callable[[], tuple[int, str, bytes]]
REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
    400: "Bad Request",
}


def json_response(code: int, payload: object) -> tuple[int, str, bytes]:
    return code, "application/json", (json.dumps(payload, indent=2, default=str) + "\n").encode()


class AdminServer:
    def __init__(self, routes: dict[str, Handler]) -> None:
        self.routes = {"/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest()), **routes}
        self.server: asyncio.AbstractServer | None = None

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._handle, host, port)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            path = path.split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                code, ctype, body = 405, "text/plain", b"GET only\n"
            elif path in self.routes:
                code, ctype, body = self.routes[path]()
            else:
                code, ctype, body = (
                    404,
                    "text/plain",
                    ("try " + ", ".join(sorted(self.routes)) + "\n").encode(),
                )
            writer.write(
                f"HTTP/1.1 {code} {REASONS.get(code, '')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            )
            if method == "GET":
                writer.write(body)
            await writer.drain()
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ValueError,
            ConnectionError,
        ):
            pass
        except Exception:  # never let a bad request take the admin port down
            log.exception("admin request failed")
        finally:
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
