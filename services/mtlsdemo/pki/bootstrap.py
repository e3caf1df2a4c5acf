"""Idempotent certificate bootstrap, into a directory or Kubernetes Secrets.

Layout, matching the keys of a ``kubernetes.io/tls`` Secret:
    ca/ca.crt, ca/ca.key                  the root CA (the key stays here)
    ca/issued.json, ca/revoked.json       what it issued and revoked
    ca/crl.pem                            its CRL (Kubernetes: Secret mtlsdemo-crl)
    <service>/tls.crt, tls.key, ca.crt    one identity per service
    <service>/tls.ocsp                    its CA-signed status, for stapling
(files under --out, or the Secrets ``mtlsdemo-ca`` and ``mtlsdemo-<service>-tls``).
During a CA rollover (``authorities.py``) ca.crt is a bundle of both CAs.

Everything is validated and planned in memory first, so bad input exits with
nothing written; only then is the output written (each file atomically, each
directory under its lock so readers see one version of it; each Secret in one
replace).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from mtlsdemo.pki import revocation as rv
from mtlsdemo.pki.authorities import Authorities, stage_bytes
from mtlsdemo.pki.ca import CertificateAuthority, create_root_ca
from mtlsdemo.pki.durations import human
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.files import cert_pem, parse_certs
from mtlsdemo.pki.identity import ServiceIdentity, san_summary
from mtlsdemo.pki.issue import issue_leaf
from mtlsdemo.pki.keys import (
    DEFAULT_KEY_TYPE,
    PrivateKey,
    check_key_type,
    generate_key,
    key_type_of,
    parse_private_key,
    private_key_pem,
    public_key_der,
)
from mtlsdemo.pki.stores import FileStore, Store, StoreConflict
from mtlsdemo.trust.spiffe import DEFAULT_TRUST_DOMAIN

CONFLICT_ATTEMPTS = 5  # plans on top of a concurrent bootstrap's writes before giving up
# WebPKI verifiers refuse Ed25519 CAs; cryptography's verifier takes ML-DSA (FIPS 204)
CA_KEY_TYPES = ("ecdsa-p256", "rsa-2048", "rsa-3072", "ml-dsa-44", "ml-dsa-65")


def default_ca_key_type(leaf_key_type: str) -> str:
    """The CA key type when none is named: post-quantum leaves get a post-quantum CA
    (an ML-DSA identity under an ECDSA signature is only as safe as ECDSA)."""
    return "ml-dsa-65" if leaf_key_type.startswith("ml-dsa") else "ecdsa-p256"


def _post_quantum(key_type: str) -> bool:
    return key_type.startswith("ml-dsa")


def new_ca_key_type(req: BootstrapRequest, current: CertificateAuthority | None) -> str:
    """A new CA's key type: --ca-key-type; else the family of --key-type; else the
    current CA's (a rollover without flags never changes the algorithm)."""
    if req.ca_key_type:
        return req.ca_key_type
    if req.key_type:
        return default_ca_key_type(req.key_type)
    return key_type_of(current.key) if current is not None else DEFAULT_KEY_TYPE


def leaf_key_type(req: BootstrapRequest, old: str | None, ca: CertificateAuthority) -> str:
    """A leaf's key type: --key-type; else the old leaf's, so a renewal never re-keys
    to another algorithm, unless its CA is of the other family (classic vs ML-DSA:
    the switch of a rollover to an ML-DSA CA re-keys the leaves with it); a first
    leaf takes its CA's family."""
    if req.key_type:
        return req.key_type
    ca_type = key_type_of(ca.key)
    if old is not None and _post_quantum(old) == _post_quantum(ca_type):
        return old
    return "ml-dsa-65" if _post_quantum(ca_type) else DEFAULT_KEY_TYPE


KEY_MODE = 0o600


@dataclass(frozen=True)
class BootstrapRequest:
    out: Path
    services: tuple[str, ...]
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    namespace: str = "default"
    key_type: str | None = None  # None: leaf_key_type() decides (keep, or follow the CA)
    ca_key_type: str | None = None  # None: new_ca_key_type() decides
    ca_name: str | None = None  # the CA's common name (None: "mtlsdemo root CA (<td>)")
    leaf_days: float = 30.0
    ca_days: float = 3650.0
    renew_before: dt.timedelta = dt.timedelta(days=10)
    force: bool = False
    ca_renew_before: dt.timedelta = dt.timedelta(days=30)  # refuse a CA this close to expiry
    rotate_ca: bool = False  # ... or rotate it (prepare + switch) instead of refusing
    status_window: dt.timedelta = rv.DEFAULT_WINDOW  # thisUpdate .. nextUpdate of statuses


@dataclass
class Change:
    """One line of the bootstrap report."""

    subject: str
    action: str  # created, reused, issued, unchanged, updated
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.subject:<10} {self.action}" + (f" ({self.reason})" if self.reason else "")


@dataclass
class Plan:
    cas: Authorities
    writes: list[tuple[str, bytes | None, int]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    @property
    def ca(self) -> CertificateAuthority:
        return self.cas.current


def validate(req: BootstrapRequest) -> list[ServiceIdentity]:
    if req.key_type is not None:
        check_key_type(req.key_type, "--key-type")
    if req.ca_key_type is not None and req.ca_key_type not in CA_KEY_TYPES:
        raise PkiError(
            f"--ca-key-type: {req.ca_key_type!r} is not allowed for a CA "
            f"(choose from {', '.join(CA_KEY_TYPES)})"
        )
    if req.leaf_days <= 0:
        raise PkiError(f"--days: must be positive, got {req.leaf_days}")
    if req.ca_days <= 0:
        raise PkiError(f"--ca-days: must be positive, got {req.ca_days}")
    if req.status_window <= dt.timedelta(0):
        raise PkiError("--status-window: must be positive")
    if not req.services:
        raise PkiError("--service: give at least one service")
    if len(set(req.services)) != len(req.services):
        raise PkiError("--service: a service is named twice")
    if "ca" in req.services:
        raise PkiError("--service: 'ca' is reserved for the CA directory")
    return [ServiceIdentity.checked(s, req.namespace, req.trust_domain) for s in req.services]


def rotated(cas: Authorities, req: BootstrapRequest, now: dt.datetime) -> Authorities:
    """prepare + switch in one step: a new CA issues from now on, the old one stays
    trusted (``previous``) until ``rotate-ca finish``."""
    kt = new_ca_key_type(req, cas.current)
    new = create_root_ca(kt, req.ca_days, req.trust_domain, now, req.ca_name)
    return Authorities(new, "switched", None, cas.current)


def ca_writes(cas: Authorities) -> list[tuple[str, bytes | None, int]]:
    """The CA files and the stage, exactly as ``cas`` says (absent ones deleted)."""
    out: list[tuple[str, bytes | None, int]] = []
    for stem, ca in (("ca", cas.current), ("next", cas.next), ("previous", cas.previous)):
        out.append((f"ca/{stem}.key", private_key_pem(ca.key) if ca else None, KEY_MODE))
        out.append((f"ca/{stem}.crt", cert_pem(ca.cert) if ca else None, 0o644))
    out.append(("ca/rollover.json", stage_bytes(cas.stage), 0o644))
    return out


def _authorities(
    req: BootstrapRequest, store: Store, now: dt.datetime, p_changes: list[Change]
) -> tuple[Authorities, bool]:
    """The CAs to use, and whether their files must be (re)written."""
    cas = Authorities.read(store)
    if cas is None:
        kt = new_ca_key_type(req, None)
        ca = create_root_ca(kt, req.ca_days, req.trust_domain, now, req.ca_name)
        p_changes.append(
            Change(
                "ca",
                "created",
                f"{kt}, valid until {ca.cert.not_valid_after_utc:%Y-%m-%d}",
            )
        )
        return Authorities(ca), True
    left = cas.current.cert.not_valid_after_utc - now
    if left <= req.ca_renew_before and cas.stage == "none":
        what = "expired" if left <= dt.timedelta(0) else f"expires in {human(left)}"
        if not req.rotate_ca:
            raise PkiError(
                f"{store.where('ca/ca.crt')}: the CA {what} (within --ca-renew-before "
                f"{human(req.ca_renew_before)}); nothing issued. Rotate it: "
                "`mtlsdemo certs rotate-ca prepare`, then `switch`, then `finish` "
                "(or pass --rotate-ca to prepare and switch now)"
            )
        cas = rotated(cas, req, now)
        p_changes.append(
            Change(
                "ca",
                "rotated",
                f"old CA {what}; new {key_type_of(cas.current.key)} CA until "
                f"{cas.current.cert.not_valid_after_utc:%Y-%m-%d}, old one still trusted: "
                "run `mtlsdemo certs rotate-ca finish` once every workload has reloaded",
            )
        )
        return cas, True
    stage = "" if cas.stage == "none" else f", rollover stage {cas.stage}"
    p_changes.append(Change("ca", "reused", f"{store.where('ca/ca.crt')}, CA {_left(left)}{stage}"))
    return cas, False


def _left(left: dt.timedelta) -> str:
    return "expired" if left <= dt.timedelta(0) else f"{human(left)} left"


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
    revoked: list[rv.Revocation],
) -> str | None:
    """Why the service's leaf must be (re)issued, or None to keep it: said of the old
    leaf, since the line reads `issued (<why>; <the new one>)`."""
    crt_rel, key_rel = f"{ident.service}/tls.crt", f"{ident.service}/tls.key"
    if req.force:
        return "forced"
    crt_data, key_data = store.read(crt_rel), store.read(key_rel)
    if crt_data is None or key_data is None:
        return "none yet"
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
    old, new = key_type_of(priv), leaf_key_type(req, key_type_of(priv), ca)
    if old != new:
        if req.key_type:
            return f"the old one is {old}, {new} asked"
        return f"the old one is {old}; the {key_type_of(ca.key)} CA's leaves are {new}"
    want = ({ident.spiffe_id}, set(ident.dns_names), {str(i) for i in ident.ip_addresses})
    if tuple(set(x) for x in san_summary(cert)) != want:
        return "the old one's SANs differ from the requested identity"
    if not _signed_by(cert, ca):
        return "the old one is not from the current CA"
    gone = rv.revocation_of(revoked, cert)
    if gone is not None:
        return f"the old one, serial {gone.serial}, is revoked ({gone.reason})"
    left = cert.not_valid_after_utc - now
    if left <= req.renew_before:
        return (
            f"the old one expires in {human(left)}, within --renew-before {human(req.renew_before)}"
        )
    return None


def _old_key_type(store: Store, service: str) -> str | None:
    """The key type of the leaf being replaced (None: none, or not readable)."""
    data = store.read(f"{service}/tls.key")
    try:
        return key_type_of(parse_private_key(data, "")) if data else None
    except PkiError:
        return None


def plan(
    req: BootstrapRequest,
    now: dt.datetime,
    store: Store | None = None,
    authorities: tuple[Authorities, list[Change]] | None = None,
) -> Plan:
    """Everything to write, decided in memory. ``authorities``: CAs decided by the
    caller (a rollover stage) with the lines that say so, instead of the store's."""
    store = store or FileStore(req.out)
    identities = validate(req)
    changes: list[Change] = []
    if authorities is None:
        cas, write_cas = _authorities(req, store, now, changes)
    else:
        (cas, changes), write_cas = authorities, True
    p = Plan(cas=cas, changes=changes)
    ca = cas.current
    if write_cas:
        p.writes += ca_writes(cas)
    issued = rv.load_issued(store.read(rv.ISSUED), store.where(rv.ISSUED))
    revoked = rv.load_revoked(store.read(rv.REVOKED), store.where(rv.REVOKED))
    n_issued = len(issued)
    bundle = cas.bundle_pem
    for ident in identities:
        svc = ident.service
        reason = _reissue_reason(req, ident, ca, store, now, revoked)
        if reason is not None:
            kt = leaf_key_type(req, _old_key_type(store, svc), ca)
            key = generate_key(kt)
            cert = issue_leaf(ca, key.public_key(), ident, now, req.leaf_days)
            issued.append(rv.issued_entry(cert, svc))
            ca_end = ca.cert.not_valid_after_utc
            clipped = now + dt.timedelta(days=req.leaf_days) > ca_end
            p.writes += [
                (f"{svc}/tls.key", private_key_pem(key), KEY_MODE),
                (f"{svc}/tls.crt", cert_pem(cert), 0o644),
            ]
            p.changes.append(
                Change(
                    svc,
                    "issued",
                    f"{reason}; {ident.spiffe_id}, {kt}, "
                    f"until {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z"
                    + (" (clipped to the CA's notAfter)" if clipped else ""),
                )
            )
        else:
            cert = parse_certs(store.read(f"{svc}/tls.crt") or b"", store.where(f"{svc}/tls.crt"))[
                0
            ]
        notes = []
        if reason is not None or rv.status_needs_refresh(
            store.read(f"{svc}/tls.ocsp"), cert, revoked, now
        ):
            status = rv.build_status(ca, cert, revoked, now, req.status_window)
            p.writes.append((f"{svc}/tls.ocsp", status, 0o644))
            notes.append("status re-signed")
        if store.read(f"{svc}/ca.crt") != bundle:
            p.writes.append((f"{svc}/ca.crt", bundle, 0o644))
            notes.append("ca.crt refreshed")
        if reason is None:
            if notes:
                p.changes.append(Change(svc, "updated", ", ".join(notes)))
            else:
                p.changes.append(Change(svc, "unchanged"))
    if len(issued) != n_issued:
        p.writes.append((rv.ISSUED, rv.dump_issued(issued), 0o644))
    p.writes += crl_writes(cas, revoked, store, now, req.status_window, force=write_cas)
    return p


def crl_writes(
    cas: Authorities,
    revoked: list[rv.Revocation],
    store: Store,
    now: dt.datetime,
    window: dt.timedelta,
    force: bool = False,
) -> list[tuple[str, bytes | None, int]]:
    """The CRL of every CA in force (one PEM block each), when due."""
    if not force and not rv.crl_needs_refresh(store.read(rv.CRL), len(cas.all), now):
        return []
    previous = store.read(rv.CRL)
    pem = b"".join(rv.build_crl(ca, revoked, now, window, previous) for ca in cas.all)
    return [(rv.CRL, pem, 0o644)]


def bootstrap(
    req: BootstrapRequest, now: dt.datetime | None = None, store: Store | None = None
) -> list[Change]:
    now = now or dt.datetime.now(dt.UTC)
    return commit_planned(lambda st: plan(req, now, st), store or FileStore(req.out))


def commit_planned(make: Callable[[Store], Plan], store: Store) -> list[Change]:
    """Plan from what the store holds, write it; plan again if someone else wrote
    in between (the install Job and the renewal CronJob racing)."""
    for _ in range(CONFLICT_ATTEMPTS):
        p = make(store)
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
