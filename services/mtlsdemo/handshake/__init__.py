"""MTD/1: a sans-I/O, TLS-style mutual handshake and record layer.

    conn = Connection("client", config)
    conn.start()
    sock.send(conn.data_to_send())
    for event in conn.receive_data(sock.recv(65536)): ...

Knows nothing of sockets, asyncio, the services or the PKI package.
See docs/protocol.md for the wire format.
"""

from mtlsdemo.handshake.config import Credentials, HandshakeConfig, Limits
from mtlsdemo.handshake.connection import Connection
from mtlsdemo.handshake.errors import ProtocolError, Reason
from mtlsdemo.handshake.events import (
    DataReceived,
    Event,
    HandshakeComplete,
    HandshakeResult,
    KeyUpdated,
    PeerClosed,
    TrafficSecrets,
)
from mtlsdemo.handshake.peer import PeerPolicy, TrustStore
from mtlsdemo.handshake.states import State
from mtlsdemo.handshake.suites import DEFAULT_SUITES, SUITES, KeyExchange, Suite, parse_suites


def build() -> str:
    """Which build of this core is running: compiled ahead of time by mypyc (issue 25,
    `make compiled`) or the interpreted source."""
    from mtlsdemo.handshake import core

    compiled = bool(core.__file__) and not str(core.__file__).endswith(".py")
    return "compiled (mypyc)" if compiled else "interpreted"


__all__ = [
    "DEFAULT_SUITES",
    "SUITES",
    "Connection",
    "Credentials",
    "DataReceived",
    "Event",
    "HandshakeComplete",
    "HandshakeConfig",
    "HandshakeResult",
    "KeyExchange",
    "KeyUpdated",
    "Limits",
    "PeerClosed",
    "PeerPolicy",
    "ProtocolError",
    "Reason",
    "State",
    "Suite",
    "build",
    "TrafficSecrets",
    "TrustStore",
    "parse_suites",
]
