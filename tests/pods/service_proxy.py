"""What kube-proxy does for one ClusterIP Service, in a container of its own that
holds the Service's DNS names: accept on each `port`, forward to a ready endpoint's
resolved `targetPort`. The pod runner rewrites endpoints.json as pods become ready
or not (as the EndpointSlice controller does); it is read per connection. No ready
endpoint: the connection is refused at once, as kube-proxy's REJECT rule does.

    python3 service_proxy.py /config     (service.json, endpoints.json)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
from pathlib import Path

CONFIG = Path(sys.argv[1])
turn = itertools.count()


def endpoints(port: int) -> list[str]:
    try:
        return json.loads((CONFIG / "endpoints.json").read_text()).get(str(port), [])
    except (OSError, ValueError):
        return []


async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            w.close()


def handler(port: int):
    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        eps = endpoints(port)
        if not eps:
            w.transport.abort()  # like REJECT: the caller sees a refusal, not a hang
            return
        host, _, target = eps[next(turn) % len(eps)].rpartition(":")
        try:
            ur, uw = await asyncio.open_connection(host, int(target))
        except OSError:
            w.transport.abort()
            return
        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    return serve


async def main() -> None:
    service = json.loads((CONFIG / "service.json").read_text())
    servers = [
        await asyncio.start_server(handler(p["port"]), "0.0.0.0", p["port"])
        for p in service["ports"]
    ]
    (CONFIG / "listening").write_text("yes")
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main())
