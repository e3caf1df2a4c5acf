"""One handshake's outcome, as the sidecar's tunnels and the console's in-memory
handshakes report it: the record the observer, /status and the journal share.
Apart from ``observer.py`` so the journal and the status page can name it without
importing the observer (no import circle)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mtlsdemo.handshake import Connection, ProtocolError
from mtlsdemo.handshake.states import LadderStep


@dataclass(frozen=True)
class HandshakeOutcome:
    """One finished handshake, as both /status and the metrics see it."""

    role: str  # "server" (inbound) or "client" (outbound)
    label: str  # the listener or route, for the log
    local: str  # our SPIFFE ID
    peer: str  # theirs, or "unknown" before it was verified
    peer_address: str
    suite: str
    duration: float  # seconds
    error: ProtocolError | None = None  # None: success
    phases: dict[str, float] = field(default_factory=dict)
    status_problem: str | None = None  # accepted under --require-status soft
    ladder: tuple[LadderStep, ...] = ()  # for the ladder (/handshakes)
    failed_step: str = ""  # the step a failure stopped the handshake in
    peer_chain: tuple[bytes, ...] = ()  # the peer's certificates as received (DER)
    peer_status: bytes = b""  # and its stapled status
    checks: tuple[str, ...] = ()  # what the verification checked, in order
    resumed: bool = False  # from a session ticket
    resumption: str = ""  # what happened with resumption, in words
    # a ticket not used: (reason, who refused: "local" or "remote")
    ticket_refusal: tuple[str, str] | None = None
    ticket_issued: bool = False
    peer_signature: str = ""  # the scheme the peer's CertificateVerify verified with

    @property
    def outcome(self) -> str:
        return "success" if self.error is None else self.error.reason.value

    @property
    def origin(self) -> str:
        return "none" if self.error is None else self.error.origin


def outcome_of(
    conn: Connection,
    label: str,
    local: str,
    peer_address: str,
    duration: float,
    error: ProtocolError | None = None,
) -> HandshakeOutcome:
    """A finished (or failed) connection's handshake, as the sidecar's tunnels and
    the console's in-memory handshakes report it (references, no copies)."""
    r = conn.report()
    return HandshakeOutcome(
        r.role,
        label,
        local,
        r.peer_identity,
        peer_address,
        r.suite,
        duration,
        error,
        phases=r.phases,
        status_problem=r.status_problem,
        ladder=r.ladder,
        failed_step=r.failed_step,
        peer_chain=r.peer_chain,
        peer_status=r.peer_status,
        checks=r.checks,
        resumed=r.resumed,
        resumption=r.resumption,
        ticket_refusal=r.ticket_refusal,
        ticket_issued=r.ticket_issued,
        peer_signature=r.peer_signature,
    )
