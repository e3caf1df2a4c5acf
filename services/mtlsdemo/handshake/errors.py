"""One enumeration of failure reasons, one exception type, one alert code per reason.

Every failure of the protocol raises ``ProtocolError`` with a ``Reason``. When the
failure is found locally, the connection also queues an alert carrying the same
reason for the peer; when the peer's alert arrives, it is raised here with
``origin="remote"`` — or ``"remote_unverified"`` when the alert came in clear,
before the record keys existed: then anyone on the path could have sent it, and it
is only the peer's *claim* (docs/protocol.md §6). So both sides log and count the
same reason, and each knows who rejected whom, and how sure it can be.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mtlsdemo.handshake.events import Event


class Reason(StrEnum):
    CLOSE_NOTIFY = "close_notify"  # not a failure: orderly close
    UNEXPECTED_MESSAGE = "unexpected_message"  # wrong message or record type for the state
    DECRYPT_ERROR = "decrypt_error"  # a record failed AEAD authentication
    RECORD_OVERFLOW = "record_overflow"  # a record or message exceeds a limit
    NO_COMMON_SUITE = "no_common_suite"
    BAD_CERTIFICATE = "bad_certificate"  # unparsable, CA as leaf, wrong EKU, bad chain
    CERTIFICATE_REQUIRED = "certificate_required"  # empty chain
    CERTIFICATE_EXPIRED = "certificate_expired"
    CERTIFICATE_NOT_YET_VALID = "certificate_not_yet_valid"
    UNKNOWN_CA = "unknown_ca"  # chain does not lead to a trusted root
    CERTIFICATE_REVOKED = "certificate_revoked"  # the CA's stapled status says revoked
    STATUS_MISSING = "status_missing"  # no stapled status, and the policy requires one
    STATUS_STALE = "status_stale"  # stapled status past its nextUpdate
    STATUS_INVALID = "status_invalid"  # unparsable, wrong signer, other certificate
    IDENTITY_MISMATCH = "identity_mismatch"  # valid certificate, wrong (or unlisted) identity
    ILLEGAL_PARAMETER = "illegal_parameter"  # bad key share, scheme/key mismatch, bad field
    DECODE_ERROR = "decode_error"  # malformed bytes, lengths, trailing data
    BAD_SIGNATURE = "bad_signature"  # CertificateVerify does not verify
    BAD_FINISHED = "bad_finished"  # Finished MAC mismatch (tampering, wrong key)
    UNSUPPORTED_VERSION = "unsupported_version"
    HANDSHAKE_TIMEOUT = "handshake_timeout"  # raised by the caller's deadline
    SEQUENCE_EXHAUSTED = "sequence_exhausted"  # 2^64 records under one key
    TRUNCATED = "truncated"  # EOF without close_notify (never sent)
    OVERLOADED = "overloaded"  # refused before the handshake: too many pending
    UNREACHABLE = "unreachable"  # the peer could not be dialled (never sent)
    INTERNAL_ERROR = "internal_error"


# Wire codes (one byte). TLS numbers where the meaning matches, so a packet capture
# reads familiar; the rest are ours.
ALERT_CODES: dict[Reason, int] = {
    Reason.CLOSE_NOTIFY: 0,
    Reason.UNEXPECTED_MESSAGE: 10,
    Reason.DECRYPT_ERROR: 20,
    Reason.RECORD_OVERFLOW: 22,
    Reason.NO_COMMON_SUITE: 40,
    Reason.BAD_CERTIFICATE: 42,
    Reason.CERTIFICATE_REVOKED: 44,
    Reason.CERTIFICATE_EXPIRED: 45,
    Reason.CERTIFICATE_NOT_YET_VALID: 46,
    Reason.ILLEGAL_PARAMETER: 47,
    Reason.UNKNOWN_CA: 48,
    Reason.IDENTITY_MISMATCH: 49,
    Reason.DECODE_ERROR: 50,
    Reason.BAD_SIGNATURE: 51,
    Reason.BAD_FINISHED: 52,
    Reason.UNSUPPORTED_VERSION: 70,
    Reason.HANDSHAKE_TIMEOUT: 75,
    Reason.INTERNAL_ERROR: 80,
    Reason.SEQUENCE_EXHAUSTED: 81,
    Reason.OVERLOADED: 82,
    Reason.STATUS_MISSING: 83,
    Reason.STATUS_STALE: 84,
    Reason.STATUS_INVALID: 113,  # TLS bad_certificate_status_response
    Reason.CERTIFICATE_REQUIRED: 116,
}
REASON_BY_CODE = {code: reason for reason, code in ALERT_CODES.items()}

# The step a reason belongs to whoever finds it: how the side that only received
# the alert knows where its peer stopped (it was itself waiting further on).
STEP_OF_REASON: dict[Reason, str] = {
    Reason.NO_COMMON_SUITE: "hello",
    Reason.UNSUPPORTED_VERSION: "hello",
    Reason.OVERLOADED: "hello",
    **dict.fromkeys(
        (
            Reason.BAD_CERTIFICATE,
            Reason.CERTIFICATE_REQUIRED,
            Reason.CERTIFICATE_EXPIRED,
            Reason.CERTIFICATE_NOT_YET_VALID,
            Reason.UNKNOWN_CA,
            Reason.CERTIFICATE_REVOKED,
            Reason.STATUS_MISSING,
            Reason.STATUS_STALE,
            Reason.STATUS_INVALID,
            Reason.IDENTITY_MISMATCH,
            Reason.BAD_SIGNATURE,
        ),
        "certificate_verify",
    ),
    Reason.BAD_FINISHED: "finished",
}


LOCAL = "local"  # this side found the problem (and sent the alert)
REMOTE = "remote"  # the peer's alert, under the record keys: provably the peer's
REMOTE_UNVERIFIED = "remote_unverified"  # an alert (or a close) in clear: a claim
FROM_PEER = (REMOTE, REMOTE_UNVERIFIED)


class ProtocolError(Exception):
    """The handshake or session failed for ``reason``.

    ``origin`` is "local" when this side found the problem (and sent an alert),
    "remote" when the peer's alert said so under the session keys, and
    "remote_unverified" when an alert arrived in clear (before keys; forgeable by
    anyone on the path) or the connection simply ended.
    """

    def __init__(
        self,
        reason: Reason,
        detail: str = "",
        origin: str = "local",
        peer_identity: str | None = None,
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.origin = origin
        # the peer's verified identity, when the failure came after verifying it
        self.peer_identity = peer_identity
        # the checks of the peer that passed before this one failed (verify_peer)
        self.passed: tuple[str, ...] = ()
        # events the same receive_data call produced before the failure (data that
        # authenticated before a later record did not): the caller may deliver them
        self.events: list[Event] = []
        who = {
            REMOTE: "rejected by peer",
            REMOTE_UNVERIFIED: "the peer's alert, unauthenticated: sent in clear before keys",
        }.get(origin, "local")
        super().__init__(f"{reason.value} ({who})" + (f": {detail}" if detail else ""))

    @property
    def from_peer(self) -> bool:
        """The peer's word (verified or not), not this side's finding."""
        return self.origin in FROM_PEER


def fail(reason: Reason, detail: str = "") -> ProtocolError:
    return ProtocolError(reason, detail)
