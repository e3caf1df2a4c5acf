"""The CA's opinion about what it issued: the issuance log, the revocation list,
the CRL it publishes and the OCSP responses it signs for stapling.

State lives beside the CA key (``ca/issued.json``, ``ca/revoked.json``; keys of
the ``mtlsdemo-ca`` Secret with ``--sink kubernetes``); what others read is
published: ``ca/crl.pem`` (the ``mtlsdemo-crl`` Secret) and each identity's
``tls.ocsp`` (DER, next to its ``tls.crt``). Checking is ``trust/status.py``'s.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from mtlsdemo.pki.ca import CertificateAuthority
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.keys import signing_hash
from mtlsdemo.trust.status import crl_number, pem_crls
from mtlsdemo.trust.verify import key_identifier

ISSUED = "ca/issued.json"
REVOKED = "ca/revoked.json"
CRL = "ca/crl.pem"  # files: certs/ca/crl.pem; Kubernetes: its own Secret, mtlsdemo-crl
DEFAULT_WINDOW = dt.timedelta(hours=1)  # thisUpdate .. nextUpdate of every status and CRL
# RFC 5280 reason codes a user may give (removeFromCRL is for delta CRLs only)
REASONS = tuple(f.name for f in x509.ReasonFlags if f.name != "remove_from_crl")


def key_id(cert: x509.Certificate) -> str:
    """A CA's key id as the CA's state files record it (hex)."""
    raw = key_identifier(cert, x509.SubjectKeyIdentifier)
    return raw.hex() if raw else ""


def authority_key_id(cert: x509.Certificate) -> str | None:
    raw = key_identifier(cert, x509.AuthorityKeyIdentifier)
    return raw.hex() if raw else None


@dataclass(frozen=True)
class Issued:
    serial: str  # lowercase hex, as `certs inspect` and the failures print it
    subject: str  # the service (or CN) it was issued to
    issuer_key_id: str
    not_after: str


@dataclass(frozen=True)
class Revocation:
    serial: str
    issuer_key_id: str
    revoked_at: str  # ISO 8601, UTC
    reason: str
    subject: str

    @property
    def when(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.revoked_at)


def _load(data: bytes | None, where: str, cls: type[Any]) -> list[Any]:
    if data is None:
        return []
    try:
        return [cls(**row) for row in json.loads(data)]
    except (ValueError, TypeError) as e:
        raise PkiError(f"{where}: unreadable CA state ({e}); restore it from a backup") from None


def _dump(rows: list[Any]) -> bytes:
    return (json.dumps([asdict(r) for r in rows], indent=1) + "\n").encode()


def load_issued(data: bytes | None, where: str) -> list[Issued]:
    return _load(data, where, Issued)


def load_revoked(data: bytes | None, where: str) -> list[Revocation]:
    return _load(data, where, Revocation)


def dump_issued(rows: list[Issued]) -> bytes:
    return _dump(rows)


def dump_revoked(rows: list[Revocation]) -> bytes:
    return _dump(rows)


def issued_entry(cert: x509.Certificate, subject: str) -> Issued:
    return Issued(
        f"{cert.serial_number:x}",
        subject,
        authority_key_id(cert) or "",
        f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
    )


def revocation_of(revoked: list[Revocation], cert: x509.Certificate) -> Revocation | None:
    serial, aki = f"{cert.serial_number:x}", authority_key_id(cert)
    return next((r for r in revoked if r.serial == serial and r.issuer_key_id in (aki, "")), None)


def build_crl(
    ca: CertificateAuthority,
    revoked: list[Revocation],
    now: dt.datetime,
    window: dt.timedelta = DEFAULT_WINDOW,
    previous: bytes | None = None,
) -> bytes:
    """A CRL (PEM) of the revocations of this CA's certificates, valid for ``window``.
    Its cRLNumber (RFC 5280 5.2.3, a MUST) is above the one of this CA's CRL in
    ``previous`` and never below the issue time in seconds, so it increases even when
    the previous file is lost: readers refuse a CRL older than the one they hold."""
    mine = key_id(ca.cert)
    number = max(int(now.timestamp()), crl_number_of(previous, ca.cert.subject) + 1)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now)
        .next_update(now + window)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for r in revoked:
        if r.issuer_key_id != mine:
            continue
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(r.serial, 16))
            .revocation_date(r.when)
            .add_extension(x509.CRLReason(x509.ReasonFlags[r.reason]), critical=False)
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(ca.key, signing_hash(ca.key))
    return crl.public_bytes(serialization.Encoding.PEM)


def build_status(
    ca: CertificateAuthority,
    leaf: x509.Certificate,
    revoked: list[Revocation],
    now: dt.datetime,
    window: dt.timedelta = DEFAULT_WINDOW,
) -> bytes:
    """The CA-signed OCSP response (DER) for ``leaf``: good or revoked, valid from
    ``now`` to ``now + window``; the holder staples it to its handshakes."""
    entry = revocation_of(revoked, leaf)
    if entry is None:
        status, when, reason = ocsp.OCSPCertStatus.GOOD, None, None
    else:
        status, when = ocsp.OCSPCertStatus.REVOKED, entry.when
        reason = x509.ReasonFlags[entry.reason]
    resp = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf,
            issuer=ca.cert,
            algorithm=hashes.SHA256(),
            cert_status=status,
            this_update=now,
            next_update=now + window,
            revocation_time=when,
            revocation_reason=reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca.cert)
        .sign(ca.key, signing_hash(ca.key))
    )
    return resp.public_bytes(serialization.Encoding.DER)


def status_needs_refresh(
    der: bytes | None,
    leaf: x509.Certificate,
    revoked: list[Revocation],
    now: dt.datetime,
) -> str | None:
    """Why the stapled status on disk must be re-signed, or None to keep it: missing,
    for another certificate, past half its window, or saying the wrong thing."""
    if not der:
        return "missing"
    try:
        resp = ocsp.load_der_ocsp_response(der)
        serial, status = resp.serial_number, resp.certificate_status
        this_update, next_update = resp.this_update_utc, resp.next_update_utc
    except Exception:  # anything unparsable is simply replaced
        return "unreadable"
    if serial != leaf.serial_number:
        return "for another certificate"
    if next_update is None or now >= this_update + (next_update - this_update) / 2:
        return "past half its window"
    revoked_now = revocation_of(revoked, leaf) is not None
    if revoked_now != (status is ocsp.OCSPCertStatus.REVOKED):
        return "revocation state changed"
    return None


def crl_number_of(pem: bytes | None, issuer: x509.Name) -> int:
    """The cRLNumber of ``issuer``'s CRL in ``pem`` (-1: none, or no number)."""
    if not pem:
        return -1
    crls, _blocks = pem_crls(pem)
    return next((crl_number(c) for c in crls if c.issuer == issuer), -1)


def crl_needs_refresh(pem: bytes | None, expected_issuers: int, now: dt.datetime) -> bool:
    if not pem:
        return True
    crls, blocks = pem_crls(pem)
    if blocks != expected_issuers or len(crls) != blocks:  # a block that does not parse
        return True
    for crl in crls:
        nxt = crl.next_update_utc
        if nxt is None or now >= crl.last_update_utc + (nxt - crl.last_update_utc) / 2:
            return True
    return False
