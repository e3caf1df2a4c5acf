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
class TrafficSecrets:
    """The first traffic secret of each direction of one session, named by the
    ClientHello's random: what a third party needs to decrypt the session's records
    (keys, IVs and every key update follow from these by the documented schedule).
    Held only for a key log someone asked for; never in a result, a log or a metric."""

    client_random: bytes
    client: bytes  # c_traffic_0: the client's records
    server: bytes  # s_traffic_0: the server's records

    def key_log_lines(self) -> str:
        """The NSS key log format (as SSLKEYLOGFILE, with MTD/1 labels): one line per
        secret, ``LABEL <client_random hex> <secret hex>``."""
        cr = self.client_random.hex()
        return (
            f"MTD_CLIENT_TRAFFIC_SECRET_0 {cr} {self.client.hex()}\n"
            f"MTD_SERVER_TRAFFIC_SECRET_0 {cr} {self.server.hex()}\n"
        )


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
