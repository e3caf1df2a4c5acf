"""Why the verifier refuses a chain or a status: the reasons shared by the chain
check (``verify.py``) and the status check (``status.py``), apart so neither module
imports the other's internals (no import circle)."""

from __future__ import annotations

import enum


class Failure(enum.Enum):
    """Why a chain is refused. Values are the handshake's alert names."""

    CERTIFICATE_REQUIRED = "certificate_required"
    BAD_CERTIFICATE = "bad_certificate"
    UNKNOWN_CA = "unknown_ca"
    CERTIFICATE_EXPIRED = "certificate_expired"
    CERTIFICATE_NOT_YET_VALID = "certificate_not_yet_valid"
    # the CA's signed opinion about the certificate (trust/status.py)
    CERTIFICATE_REVOKED = "certificate_revoked"
    STATUS_MISSING = "status_missing"
    STATUS_STALE = "status_stale"
    STATUS_INVALID = "status_invalid"


class VerificationFailed(Exception):
    def __init__(self, failure: Failure, detail: str) -> None:
        super().__init__(f"{failure.value}: {detail}")
        self.failure = failure
        self.detail = detail
