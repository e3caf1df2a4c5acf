"""Both sides of a handshake in one process: the one loop that hands bytes from a
client Connection to a server Connection and back (the trace, the tour and the
console's in-memory panel use it)."""

from __future__ import annotations

import contextlib
import datetime as dt

from mtlsdemo.endpoint import world
from mtlsdemo.handshake import Connection, HandshakeConfig, ProtocolError

Wire = list[tuple[str, bytes]]  # ("c2s" | "s2c", bytes) in the order they crossed


def handshake_in_memory(
    ccfg: HandshakeConfig,
    scfg: HandshakeConfig,
    now: dt.datetime,
    wire: Wire | None = None,
) -> tuple[Connection, Connection, ProtocolError | None]:
    """Client and server in one process, bytes handed across until both are done
    or one fails (the other then reads its alert): the trace's and the console's
    in-memory handshake. ``wire`` collects every byte that crossed, in order."""
    c, s = world.connection("client", ccfg, now), world.connection("server", scfg, now)
    return c, s, run_pair(c, s, wire)


def run_pair(c: Connection, s: Connection, wire: Wire | None = None) -> ProtocolError | None:
    """Hand bytes across until both are done or one fails (the other then reads its
    alert); the failure, or None. ``wire`` collects every byte that crossed."""
    c.start()
    try:
        for _ in range(3):
            for src, dst in ((c, s), (s, c)):
                data = src.data_to_send()
                if data:
                    if wire is not None:
                        wire.append(("c2s" if src is c else "s2c", data))
                    dst.receive_data(data)
    except ProtocolError as e:
        other = s if e is c.error else c
        alert = (c if other is s else s).data_to_send()
        if wire is not None and alert:
            wire.append(("c2s" if other is s else "s2c", alert))
        with contextlib.suppress(ProtocolError):  # the peer learns the reason from the alert
            other.receive_data(alert)
        return e
    return None


def exchange(c: Connection, s: Connection, request: bytes, reply: bytes, wire: Wire) -> None:
    """One application record each way after a completed handshake (the first
    protected records, for a capture of the whole conversation)."""
    c.send_data(request)
    data = c.data_to_send()
    wire.append(("c2s", data))
    s.receive_data(data)
    s.send_data(reply)
    data = s.data_to_send()
    wire.append(("s2c", data))
    c.receive_data(data)
