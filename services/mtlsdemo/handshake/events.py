"""What ``Connection.receive_data`` reports to its caller."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HandshakeResult:
    """A completed handshake: who the peer proved to be, with what, how long it took."""

    role: str
    version: str
    suite: str
    key_exchange: str
    local_identity: str
    peer_identity: str
    peer_subject: str
    peer_not_after: dt.datetime
    checks: tuple[str, ...]
    # processing time spent in each of the four steps on this side, in seconds
    phases: dict[str, float] = field(default_factory=dict)
    # from start (client: ClientHello; server: first byte) to Finished, in seconds
    duration: float = 0.0
    # the peer's stapled status failed but --require-status soft let it through
    status_problem: str | None = None
    # resumed from a session ticket (no certificates exchanged); and what happened
    # with resumption, in words (e.g. "full: ticket refused by the server: ticket_expired")
    resumed: bool = False
    resumption: str = ""


@dataclass(frozen=True)
class HandshakeComplete:
    """The handshake completed: application data may flow both ways."""

    result: HandshakeResult


@dataclass(frozen=True)
class DataReceived:
    """Application data, decrypted and authenticated (one record's worth)."""

    data: bytes


@dataclass(frozen=True)
class KeyUpdated:
    """A KeyUpdate took effect: ``direction``'s keys moved to ``generation``."""

    direction: str  # "send" or "receive"
    generation: int


@dataclass(frozen=True)
class PeerClosed:
    """The peer sent close_notify: it will send no more; we may still send."""


Event = HandshakeComplete | DataReceived | KeyUpdated | PeerClosed
