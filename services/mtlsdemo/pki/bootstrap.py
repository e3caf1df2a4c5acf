"""Idempotent certificate bootstrap, into a directory or Kubernetes Secrets.

Layout, matching the keys of a ``kubernetes.io/tls`` Secret:
    ca/ca.crt, ca/ca.key                  the root CA (the key stays here)
    <service>/tls.crt, tls.key, ca.crt    one identity per service
(files under --out, or the Secrets ``mtlsdemo-ca`` and ``mtlsdemo-<service>-tls``).

Everything is validated and planned in memory first, so bad input exits with
nothing written; only then is the output written (each file atomically; each
Secret in one replace).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from mtlsdemo.pki.ca import CertificateAuthority, check_ca, create_root_ca
from mtlsdemo.pki.durations import human
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.files import cert_pem, parse_certs
from mtlsdemo.pki.identity import ServiceIdentity, san_summary
from mtlsdemo.pki.issue import issue_leaf
from mtlsdemo.pki.keys import (
    PrivateKey,
    check_key_type,
    generate_key,
    key_type_of,
    parse_private_key,
    private_key_pem,
    public_key_der,
)
from mtlsdemo.pki.stores import FileStore, Store, StoreConflict

CONFLICT_ATTEMPTS = 5  # plans on top of a concurrent bootstrap's writes before giving up
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
    writes: list[tuple[str, bytes, int]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)


def validate(req: BootstrapRequest) -> list[ServiceIdentity]:
    check_key_type(req.key_type, "--key-type")
    if req.ca_key_type not in CA_KEY_TYPES:
        raise PkiError(
            f"--ca-key-type: {req.ca_key_type!r} is not allowed for a CA "
            f"(choose from {', '.join(CA_KEY_TYPES)})"
        )
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


def _load_or_create_ca(
    req: BootstrapRequest, store: Store, now: dt.datetime
) -> tuple[CertificateAuthority, bool]:
    crt, key = store.read("ca/ca.crt"), store.read("ca/ca.key")
    if crt is not None and key is not None:
        where_crt, where_key = store.where("ca/ca.crt"), store.where("ca/ca.key")
        return check_ca(
            parse_certs(crt, where_crt)[0], parse_private_key(key, where_key), where_crt, where_key
        ), False
    if (crt is None) != (key is None):
        present, missing = (
            ("ca/ca.crt", "ca/ca.key") if crt is not None else ("ca/ca.key", "ca/ca.crt")
        )
        raise PkiError(
            f"{store.where(missing)}: missing while {store.where(present)} exists; "
            "restore it or remove both to create a new CA (every leaf will be re-issued)"
        )
    return create_root_ca(req.ca_key_type, int(req.ca_days), req.trust_domain, now), True


def _signed_by(cert: x509.Certificate, ca: CertificateAuthority) -> bool:
    if cert.issuer != ca.cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _reissue_reason(
    req: BootstrapRequest,
    ident: ServiceIdentity,
    ca: CertificateAuthority,
    store: Store,
    now: dt.datetime,
) -> str | None:
    """Why the service's leaf must be (re)issued, or None to keep it."""
    crt_rel, key_rel = f"{ident.service}/tls.crt", f"{ident.service}/tls.key"
    if req.force:
        return "forced"
    crt_data, key_data = store.read(crt_rel), store.read(key_rel)
    if crt_data is None or key_data is None:
        return "missing"
    try:
        cert = parse_certs(crt_data, store.where(crt_rel))[0]
        priv: PrivateKey = parse_private_key(key_data, store.where(key_rel))
    except PkiError as e:
        raise PkiError(f"{e} (use --force to replace it)") from None
    if public_key_der(priv.public_key()) != public_key_der(cert.public_key()):
        raise PkiError(
            f"{store.where(key_rel)}: does not match {store.where(crt_rel)} "
            "(use --force to replace both)"
        )
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


def plan(req: BootstrapRequest, now: dt.datetime, store: Store | None = None) -> _Plan:
    store = store or FileStore(req.out)
    identities = validate(req)
    ca, ca_new = _load_or_create_ca(req, store, now)
    p = _Plan(ca=ca, ca_new=ca_new)
    ca_pem = cert_pem(ca.cert)
    if ca_new:
        p.writes += [("ca/ca.key", private_key_pem(ca.key), KEY_MODE), ("ca/ca.crt", ca_pem, 0o644)]
        p.changes.append(
            Change(
                "ca",
                "created",
                f"{req.ca_key_type}, valid until {ca.cert.not_valid_after_utc:%Y-%m-%d}",
            )
        )
    else:
        p.changes.append(Change("ca", "reused", store.where("ca/ca.crt")))
    for ident in identities:
        svc = ident.service
        reason = _reissue_reason(req, ident, ca, store, now)
        if reason is not None:
            key = generate_key(req.key_type)
            cert = issue_leaf(ca, key.public_key(), ident, now, req.leaf_days)
            p.writes += [
                (f"{svc}/tls.key", private_key_pem(key), KEY_MODE),
                (f"{svc}/tls.crt", cert_pem(cert), 0o644),
            ]
            p.changes.append(
                Change(
                    svc,
                    "issued",
                    f"{reason}; {ident.spiffe_id}, {req.key_type}, "
                    f"until {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z",
                )
            )
        if store.read(f"{svc}/ca.crt") != ca_pem:
            p.writes.append((f"{svc}/ca.crt", ca_pem, 0o644))
            if reason is None:
                p.changes.append(Change(svc, "updated", "ca.crt refreshed"))
        elif reason is None:
            p.changes.append(Change(svc, "unchanged"))
    return p


def bootstrap(
    req: BootstrapRequest, now: dt.datetime | None = None, store: Store | None = None
) -> list[Change]:
    now = now or dt.datetime.now(dt.UTC)
    store = store or FileStore(req.out)
    for _ in range(CONFLICT_ATTEMPTS):
        p = plan(req, now, store)
        try:
            store.commit(p.writes)
        except StoreConflict as e:
            # Another bootstrap (the install Job, the renewal CronJob) wrote first:
            # its CA and leaves are as good as ours, so plan again on top of them.
            last = e
            store.forget()
            continue
        return p.changes
    raise PkiError(
        f"{last}: changed by someone else {CONFLICT_ATTEMPTS} times in a row while "
        "writing; is another cert-bootstrap running? Run it again when it is done"
    )
