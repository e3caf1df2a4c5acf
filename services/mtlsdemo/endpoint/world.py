"""The real world for the sans-I/O handshake core, which reads none of it itself:
the wall clock (certificate validity), a monotonic clock (step timings) and the
operating system's randomness. The sidecar, the trace and the benches start
their connections here; tests pass seeded, replayable ones instead."""

from __future__ import annotations

import datetime as dt
import os
import time

from mtlsdemo.handshake import Connection, HandshakeConfig
from mtlsdemo.handshake.states import Role


def connection(role: Role, config: HandshakeConfig, now: dt.datetime | None = None) -> Connection:
    """A Connection on the system's clocks and randomness (``now`` overrides the
    wall time, e.g. for `handshake --days-ahead`)."""
    return Connection(
        role,
        config,
        now=now or dt.datetime.now(dt.UTC),
        clock=time.perf_counter,
        entropy=os.urandom,
    )
