"""What ``Connection.receive_data`` reports to its caller."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HandshakeResult:
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
    result: HandshakeResult


@dataclass(frozen=True)
class DataReceived:
    data: bytes


@dataclass(frozen=True)
class KeyUpdated:
    direction: str  # "send" or "receive"
    generation: int


@dataclass(frozen=True)
class PeerClosed:
    """The peer sent close_notify: it will send no more; we may still send."""


Event = HandshakeComplete | DataReceived | KeyUpdated | PeerClosed
