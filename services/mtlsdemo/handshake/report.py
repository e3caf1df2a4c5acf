"""A handshake's report: what the observer, the journal and the console read,
on success and on failure alike."""

from __future__ import annotations

from dataclasses import dataclass

from mtlsdemo.handshake.errors import ProtocolError
from mtlsdemo.handshake.states import LadderStep


@dataclass(frozen=True)
class HandshakeReport:
    """One handshake as the observer, the journal and the console read it, produced
    on success and on failure alike (``Connection.report()``), so nothing outside the
    core reads a connection's internals."""

    role: str
    suite: str  # "none" before one was chosen
    peer_identity: str  # "unknown" before it was verified
    phases: dict[str, float]
    status_problem: str | None
    ladder: tuple[LadderStep, ...]
    failed_step: str
    peer_chain: tuple[bytes, ...]  # the peer's certificates as received (DER)
    peer_status: bytes  # and its stapled status
    checks: tuple[str, ...]
    resumed: bool
    resumption: str
    ticket_refusal: tuple[str, str] | None  # (reason, "local" or "remote")
    ticket_issued: bool
    error: ProtocolError | None
    # the scheme the peer's CertificateVerify was checked with (e.g. MLDSA65: a
    # quantum-safe identity); "" until one was (a resumed handshake has none)
    peer_signature: str = ""
