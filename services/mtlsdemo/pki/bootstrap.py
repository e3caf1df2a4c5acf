"""Idempotent certificate bootstrap into a directory (the file sink).

Layout, matching the keys of a ``kubernetes.io/tls`` Secret:
    OUT/ca/ca.crt, OUT/ca/ca.key              the root CA (the key stays here)
    OUT/<service>/tls.crt, tls.key, ca.crt    one identity per service

Everything is validated and planned in memory first, so bad input exits with
nothing written; only then are files written, each atomically.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from mtlsdemo.pki.ca import CertificateAuthority, create_root_ca, load_ca
from mtlsdemo.pki.durations import human
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.files import cert_pem, load_cert, write_atomic
from mtlsdemo.pki.identity import ServiceIdentity, san_summary
from mtlsdemo.pki.issue import issue_leaf
from mtlsdemo.pki.keys import (
    PrivateKey,
    check_key_type,
    generate_key,
    key_type_of,
    load_private_key,
    private_key_pem,
    public_key_der,
)

CA_KEY_TYPES = ("ecdsa-p256", "rsa-2048", "rsa-3072")  # WebPKI verifiers refuse Ed25519 CAs
KEY_MODE = 0o600


@dataclass(frozen=True)
class BootstrapRequest:
    out: Path
    services: tuple[str, ...]
    trust_domain: str = "mtls-demo.local"
    namespace: str = "default"
    key_type: str = "ecdsa-p256"
    ca_key_type: str = "ecdsa-p256"
    leaf_days: float = 30.0
    ca_days: float = 3650.0
    renew_before: dt.timedelta = dt.timedelta(days=10)
    force: bool = False


@dataclass
class Change:
    """One line of the bootstrap report."""

    subject: str
    action: str  # created, reused, issued, unchanged, updated
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.subject:<10} {self.action}" + (f" ({self.reason})" if self.reason else "")


@dataclass
class _Plan:
    ca: CertificateAuthority
    ca_new: bool
    writes: list[tuple[Path, bytes, int]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)


def validate(req: BootstrapRequest) -> list[ServiceIdentity]:
    check_key_type(req.key_type, "--key-type")
    if req.ca_key_type not in CA_KEY_TYPES:
        raise PkiError(f"--ca-key-type: {req.ca_key_type!r} is not allowed for a CA "
                       f"(choose from {', '.join(CA_KEY_TYPES)})")
    if req.leaf_days <= 0:
        raise PkiError(f"--days: must be positive, got {req.leaf_days}")
    if req.ca_days <= 0:
        raise PkiError(f"--ca-days: must be positive, got {req.ca_days}")
    if not req.services:
        raise PkiError("--service: give at least one service")
    if len(set(req.services)) != len(req.services):
        raise PkiError("--service: a service is named twice")
    if "ca" in req.services:
        raise PkiError("--service: 'ca' is reserved for the CA directory")
    return [ServiceIdentity.checked(s, req.namespace, req.trust_domain) for s in req.services]


def _load_or_create_ca(req: BootstrapRequest, now: dt.datetime) -> tuple[CertificateAuthority, bool]:
    crt, key = req.out / "ca" / "ca.crt", req.out / "ca" / "ca.key"
    if crt.exists() and key.exists():
        return load_ca(crt, key), False
    if crt.exists() != key.exists():
        present, missing = (crt, key) if crt.exists() else (key, crt)
        raise PkiError(f"{missing}: missing while {present} exists; restore it or remove both "
                       "to create a new CA (every leaf will be re-issued)")
    return create_root_ca(req.ca_key_type, int(req.ca_days), req.trust_domain, now), True


def _signed_by(cert: x509.Certificate, ca: CertificateAuthority) -> bool:
    if cert.issuer != ca.cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _reissue_reason(req: BootstrapRequest, ident: ServiceIdentity, ca: CertificateAuthority,
                    now: dt.datetime) -> str | None:
    """Why the service's leaf must be (re)issued, or None to keep it."""
    d = req.out / ident.service
    crt, key = d / "tls.crt", d / "tls.key"
    if req.force:
        return "forced"
    if not crt.exists() or not key.exists():
        return "missing"
    try:
        cert = load_cert(crt)
        priv: PrivateKey = load_private_key(key)
    except PkiError as e:
        raise PkiError(f"{e} (use --force to replace it)") from None
    if public_key_der(priv.public_key()) != public_key_der(cert.public_key()):
        raise PkiError(f"{key}: does not match {crt} (use --force to replace both)")
    if key_type_of(priv) != req.key_type:
        return f"key type {key_type_of(priv)} -> {req.key_type}"
    want = ({ident.spiffe_id}, set(ident.dns_names), {str(i) for i in ident.ip_addresses})
    if tuple(set(x) for x in san_summary(cert)) != want:
        return "SANs differ from the requested identity"
    if not _signed_by(cert, ca):
        return "not issued by the current CA"
    left = cert.not_valid_after_utc - now
    if left <= req.renew_before:
        return f"expires in {human(left)}, within --renew-before {human(req.renew_before)}"
    return None


def plan(req: BootstrapRequest, now: dt.datetime) -> _Plan:
    identities = validate(req)
    ca, ca_new = _load_or_create_ca(req, now)
    p = _Plan(ca=ca, ca_new=ca_new)
    ca_pem = cert_pem(ca.cert)
    if ca_new:
        p.writes += [(req.out / "ca" / "ca.key", private_key_pem(ca.key), KEY_MODE),
                     (req.out / "ca" / "ca.crt", ca_pem, 0o644)]
        p.changes.append(Change("ca", "created",
                                f"{req.ca_key_type}, valid until {ca.cert.not_valid_after_utc:%Y-%m-%d}"))
    else:
        p.changes.append(Change("ca", "reused", str(req.out / "ca" / "ca.crt")))
    for ident in identities:
        d = req.out / ident.service
        reason = _reissue_reason(req, ident, ca, now)
        if reason is not None:
            key = generate_key(req.key_type)
            cert = issue_leaf(ca, key.public_key(), ident, now, req.leaf_days)
            p.writes += [(d / "tls.key", private_key_pem(key), KEY_MODE),
                         (d / "tls.crt", cert_pem(cert), 0o644)]
            p.changes.append(Change(ident.service, "issued",
                                    f"{reason}; {ident.spiffe_id}, {req.key_type}, "
                                    f"until {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z"))
        ca_copy = d / "ca.crt"
        if not ca_copy.exists() or ca_copy.read_bytes() != ca_pem:
            p.writes.append((ca_copy, ca_pem, 0o644))
            if reason is None:
                p.changes.append(Change(ident.service, "updated", "ca.crt refreshed"))
        elif reason is None:
            p.changes.append(Change(ident.service, "unchanged"))
    return p


def bootstrap(req: BootstrapRequest, now: dt.datetime | None = None) -> list[Change]:
    now = now or dt.datetime.now(dt.UTC)
    p = plan(req, now)
    for path, data, mode in p.writes:
        write_atomic(path, data, mode)
    return p.changes
