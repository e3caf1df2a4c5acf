"""Both sides of a handshake in one process: the one loop that hands bytes from a
client Connection to a server Connection and back (the trace, the tour and the
console's in-memory panel use it)."""

from __future__ import annotations

import contextlib
import datetime as dt

from mtlsdemo.endpoint import world
from mtlsdemo.handshake import Connection, HandshakeConfig, ProtocolError


def handshake_in_memory(
    ccfg: HandshakeConfig, scfg: HandshakeConfig, now: dt.datetime
) -> tuple[Connection, Connection, ProtocolError | None]:
    """Client and server in one process, bytes handed across until both are done
    or one fails (the other then reads its alert): the trace's and the console's
    in-memory handshake."""
    c, s = world.connection("client", ccfg, now), world.connection("server", scfg, now)
    c.start()
    try:
        for _ in range(3):
            for src, dst in ((c, s), (s, c)):
                data = src.data_to_send()
                if data:
                    dst.receive_data(data)
    except ProtocolError as e:
        other = s if e is c.error else c
        with contextlib.suppress(ProtocolError):  # the peer learns the reason from the alert
            other.receive_data((c if other is s else s).data_to_send())
        return c, s, e
    return c, s, None
