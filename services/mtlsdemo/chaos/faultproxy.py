"""A TCP proxy for the hop between the two sidecars, with faults switched on and
off while traffic flows: added latency, writes split into tiny pieces, stalls,
connections reset mid-record, and bytes corrupted in flight.

Every open connection is affected, in both directions. It runs its own asyncio
loop in a thread so the chaos driver (threads, blocking gRPC) can steer it.
(`breaking/relay.py` is the one-connection, one-transform relay of `break`.)"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections import Counter
from typing import Any

CHUNK = 65536


class FaultProxy:
    def __init__(self, upstream: tuple[str, int], port: int = 0, seed: int = 0) -> None:
        self.upstream = upstream
        self.port = port
        self.rng = random.Random(seed)
        self.latency = 0.0  # seconds added before each chunk is forwarded
        self.partial = False  # forward in 1..7-byte writes
        self.corrupt_left = 0  # chunks still to corrupt (one byte flipped in each)
        self.counts: Counter[str] = Counter()
        self._open = asyncio.Event()  # set: forwarding; clear: stalled
        self._conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="fault-proxy"
        )

    # --- lifecycle ---
    def start(self) -> int:
        self._thread.start()
        self._call(self._open.set)
        fut = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = fut.result(10)
        return self.port

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True, backlog=1024
        )
        return int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for a, b in list(self._conns):
                a.transport.abort()
                b.transport.abort()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _call(self, fn: Any, *args: Any) -> None:
        self._loop.call_soon_threadsafe(fn, *args)

    # --- faults (from any thread) ---
    def set_latency(self, seconds: float) -> None:
        self.latency = seconds

    def set_partial(self, on: bool) -> None:
        self.partial = on

    def stall(self, on: bool) -> None:
        self._call(self._open.clear if on else self._open.set)

    def corrupt(self, chunks: int) -> None:
        self.corrupt_left = chunks

    def reset_all(self) -> int:
        """Every open connection reset now (RST, not FIN): both sidecars see a peer
        vanish mid-record. Returns how many."""

        async def reset() -> int:
            n = 0
            for a, b in list(self._conns):
                for w in (a, b):
                    sock = w.get_extra_info("socket")
                    # a connection ending as we reset it has a closed socket: nothing
                    # left to reset there (EBADF), the other side still is
                    if sock is not None and not w.transport.is_closing():
                        with contextlib.suppress(OSError):
                            sock.setsockopt(
                                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                            )
                    w.transport.abort()
                n += 1
            self.counts["reset"] += n
            return n

        return asyncio.run_coroutine_threadsafe(reset(), self._loop).result(10)

    # --- the relay ---
    async def _serve(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(*self.upstream)
        except OSError:
            self.counts["upstream_refused"] += 1
            cw.transport.abort()
            return
        self.counts["connections"] += 1
        pair = (cw, uw)
        self._conns.add(pair)
        try:
            await asyncio.gather(self._pump(cr, uw), self._pump(ur, cw))
        finally:
            self._conns.discard(pair)
            cw.transport.abort()
            uw.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                await self._open.wait()
                if self.latency:
                    await asyncio.sleep(self.latency)
                if self.corrupt_left > 0:
                    self.corrupt_left -= 1
                    i = self.rng.randrange(len(data))
                    data = data[:i] + bytes((data[i] ^ 0xFF,)) + data[i + 1 :]
                    self.counts["corrupted"] += 1
                if self.partial:
                    view = memoryview(data)
                    while view:
                        n = self.rng.randint(1, 7)
                        writer.write(bytes(view[:n]))
                        view = view[n:]
                        await writer.drain()
                    self.counts["partial_chunks"] += 1
                else:
                    writer.write(data)
                    await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()  # half-close: the other direction may still flow
        except (ConnectionError, OSError):
            pass
