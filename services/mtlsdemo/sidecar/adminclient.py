"""The client side of a sidecar's admin endpoint (/readyz, /status, /metrics): the
one place that reads it over HTTP for `run`, `break`, `chaos` and the benches.
urllib: these are single blocking GETs on 127.0.0.1 or a pod IP, and the standard
library needs no extra dependency in the runtime image (the console, which keeps
many open, uses aiohttp)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mtlsdemo.waiting import wait_until


@dataclass(frozen=True)
class AdminClient:
    host: str
    port: int
    timeout: float = 3.0

    @classmethod
    def local(cls, port: int, timeout: float = 3.0) -> AdminClient:
        return cls("127.0.0.1", port, timeout)

    def get(self, path: str) -> bytes:
        """The body of a 200 answer; urllib.error.HTTPError (an OSError) otherwise."""
        url = f"http://{self.host}:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=self.timeout) as r:
            return bytes(r.read())

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.get("/status")))

    def metrics(self) -> str:
        return self.get("/metrics").decode()

    def ready(self) -> bool:
        """/readyz answers 200 (False when it answers otherwise or not at all)."""
        try:
            self.get("/readyz")
        except OSError:  # refused, timed out, or an HTTP error status
            return False
        return True

    def wait_ready(self, timeout: float, check: Callable[[], None] | None = None) -> None:
        """Wait for /readyz to answer 200; ``check`` raises to stop early (a child died)."""
        wait_until(
            self.ready,
            timeout=timeout,
            interval=0.1,
            what=f"sidecar admin {self.host}:{self.port} /readyz to answer 200",
            check=check,
        )
