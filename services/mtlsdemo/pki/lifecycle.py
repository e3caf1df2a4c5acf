"""The rest of a certificate's life: revoke it, keep its stapled status fresh,
and replace the CA that signed it (``certs revoke``, ``certs refresh-status``,
``certs rotate-ca``). Each validates first and writes nothing on bad input; each
is idempotent; each works on both sinks (files or Kubernetes Secrets).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from cryptography import x509

from mtlsdemo.pki import revocation as rv
from mtlsdemo.pki.authorities import Authorities
from mtlsdemo.pki.bootstrap import (
    BootstrapRequest,
    Change,
    Plan,
    commit_planned,
    crl_writes,
    new_ca_key_type,
    plan,
)
from mtlsdemo.pki.ca import CertificateAuthority, create_root_ca
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.files import cert_pem, parse_certs
from mtlsdemo.pki.stores import Store
from mtlsdemo.trust.verify import issued_by

ROTATE_STAGES = ("plan", "prepare", "switch", "finish")
_HEX = re.compile(r"^[0-9a-f]+$")


def _authorities(store: Store) -> Authorities:
    cas = Authorities.read(store)
    if cas is None:
        raise PkiError(
            f"{store.where('ca/ca.crt')}: no CA here; run `mtlsdemo certs bootstrap` first"
        )
    return cas


def _issuer_of(cas: Authorities, cert: x509.Certificate) -> CertificateAuthority | None:
    return next((ca for ca in cas.all if issued_by(cert, ca.cert)), None)


def _normal_serial(text: str) -> str:
    serial = text.strip().lower().replace(":", "").removeprefix("0x").lstrip("0") or "0"
    if not _HEX.match(serial):
        raise PkiError(f"--serial: {text!r} is not a hexadecimal serial number")
    return serial


def revoke(
    store: Store,
    services: tuple[str, ...],
    now: dt.datetime,
    *,
    service: str | None = None,
    serial: str | None = None,
    reason: str = "unspecified",
    window: dt.timedelta = rv.DEFAULT_WINDOW,
) -> list[Change]:
    """Record a revocation, publish the CRL, and re-sign the stapled status of the
    identity holding that certificate (so the next handshake carries "revoked")."""
    if (service is None) == (serial is None):
        raise PkiError("certs revoke: name a SERVICE or give --serial HEX (one of them)")
    if reason not in rv.REASONS:
        raise PkiError(f"--reason: {reason!r} is not an RFC 5280 reason ({', '.join(rv.REASONS)})")

    def make(st: Store) -> Plan:
        cas = _authorities(st)
        issued = rv.load_issued(st.read(rv.ISSUED), st.where(rv.ISSUED))
        revoked = rv.load_revoked(st.read(rv.REVOKED), st.where(rv.REVOKED))
        holders = _leaves(st, services)
        if service is not None:
            if service not in holders:
                raise PkiError(
                    f"certs revoke: {st.where(f'{service}/tls.crt')}: no certificate for "
                    f"service {service!r}; nothing revoked"
                )
            target = holders[service]
            wanted, subject = f"{target.serial_number:x}", service
            issuer = _issuer_of(cas, target)
            if issuer is None:
                raise PkiError(
                    f"certs revoke: {service}'s certificate was not issued by a CA in force; "
                    "nothing revoked"
                )
            issuer_id = rv.key_id(issuer.cert)
        else:
            wanted = _normal_serial(serial or "")
            known = [i for i in issued if i.serial == wanted]
            known_ids = {rv.key_id(ca.cert) for ca in cas.all}
            if not known:
                raise PkiError(
                    f"certs revoke: serial {wanted} was not issued by this CA (not in "
                    f"{st.where(rv.ISSUED)}); nothing revoked"
                )
            entry = next((i for i in known if i.issuer_key_id in known_ids), None)
            if entry is None:
                raise PkiError(
                    f"certs revoke: serial {wanted} was issued by a retired CA that nobody "
                    "trusts any more; nothing to revoke"
                )
            subject, issuer_id = entry.subject, entry.issuer_key_id
        p = Plan(cas=cas)
        done = next(
            (r for r in revoked if r.serial == wanted and r.issuer_key_id == issuer_id), None
        )
        if done is not None:
            p.changes.append(
                Change(
                    subject, "unchanged", f"serial {wanted} already revoked at {done.revoked_at}"
                )
            )
            return p
        revoked.append(
            rv.Revocation(wanted, issuer_id, now.isoformat(timespec="seconds"), reason, subject)
        )
        p.writes.append((rv.REVOKED, rv.dump_revoked(revoked), 0o644))
        p.writes += crl_writes(cas, revoked, st, now, window, force=True)
        p.changes.append(Change(subject, "revoked", f"serial {wanted}, {reason}; CRL published"))
        for svc, leaf in holders.items():
            if f"{leaf.serial_number:x}" == wanted:
                ca = _issuer_of(cas, leaf)
                if ca is not None:
                    status = rv.build_status(ca, leaf, revoked, now, window)
                    p.writes.append((f"{svc}/tls.ocsp", status, 0o644))
                    p.changes.append(
                        Change(
                            svc,
                            "updated",
                            "stapled status now says revoked; "
                            "`certs bootstrap` issues it a new leaf",
                        )
                    )
        return p

    return commit_planned(make, store)


def _leaves(store: Store, services: tuple[str, ...]) -> dict[str, x509.Certificate]:
    out = {}
    for svc in services:
        data = store.read(f"{svc}/tls.crt")
        if data is not None:
            out[svc] = parse_certs(data, store.where(f"{svc}/tls.crt"))[0]
    return out


def refresh_status(
    store: Store,
    services: tuple[str, ...],
    now: dt.datetime,
    window: dt.timedelta = rv.DEFAULT_WINDOW,
) -> list[Change]:
    """Re-sign every identity's stapled status and the CRL, valid ``window`` from now."""
    if window <= dt.timedelta(0):
        raise PkiError("--status-window: must be positive")

    def make(st: Store) -> Plan:
        cas = _authorities(st)
        revoked = rv.load_revoked(st.read(rv.REVOKED), st.where(rv.REVOKED))
        p = Plan(cas=cas)
        for svc, leaf in _leaves(st, services).items():
            ca = _issuer_of(cas, leaf)
            if ca is None:
                p.changes.append(Change(svc, "skipped", "its issuer is not a CA in force"))
                continue
            p.writes.append(
                (f"{svc}/tls.ocsp", rv.build_status(ca, leaf, revoked, now, window), 0o644)
            )
            state = "revoked" if rv.revocation_of(revoked, leaf) else "good"
            p.changes.append(
                Change(
                    svc,
                    "status",
                    f"{state}, serial {leaf.serial_number:x}, valid until "
                    f"{now + window:%Y-%m-%d %H:%M:%S}Z",
                )
            )
        p.writes += crl_writes(cas, revoked, st, now, window, force=True)
        p.changes.append(
            Change(
                "crl",
                "published",
                f"{sum(1 for _ in revoked)} revoked serial(s), "
                f"next update {now + window:%Y-%m-%d %H:%M:%S}Z",
            )
        )
        return p

    return commit_planned(make, store)


def rollover_plan(store: Store) -> str:
    cas = Authorities.read(store)
    if cas is None:
        return "no CA yet: `mtlsdemo certs bootstrap` creates one"
    cur = cas.current.cert
    lines = [f"stage: {cas.stage}", f"current CA: {_describe(cur)} (issues every leaf)"]
    if cas.next is not None:
        lines.append(f"next CA:    {_describe(cas.next.cert)} (trusted, not issuing yet)")
    if cas.previous is not None:
        lines.append(
            f"previous CA: {_describe(cas.previous.cert)} (still trusted, no longer issuing)"
        )
    lines.append(
        {
            "none": "next: `prepare` creates a new CA and makes every ca.crt a bundle of old + new",
            "prepared": "next: `switch` re-issues every leaf from the new CA (once every workload "
            "has reloaded its bundle)",
            "switched": "next: `finish` removes the old CA from every bundle and destroys its key "
            "(once every workload has reloaded its new leaf)",
        }[cas.stage]
    )
    return "\n".join(lines)


def _describe(cert: x509.Certificate) -> str:
    return (
        f"{cert.subject.rfc4514_string()} key id {rv.key_id(cert)[:16]}…, "
        f"until {cert.not_valid_after_utc:%Y-%m-%d}"
    )


_ORDER = {
    # (stage now, command) -> None: do it; "noop": already done; else: what comes first
    ("none", "prepare"): None,
    ("prepared", "prepare"): "noop",
    ("switched", "prepare"): "a rollover is switched: `finish` comes first",
    ("none", "switch"): "no rollover in progress: `prepare` comes first",
    ("prepared", "switch"): None,
    ("switched", "switch"): "noop",
    ("none", "finish"): "noop",
    ("prepared", "finish"): "the new CA is not issuing yet: `switch` comes first",
    ("switched", "finish"): None,
}


def rotate_ca(req: BootstrapRequest, stage: str, store: Store, now: dt.datetime) -> list[Change]:
    """One stage of the rollover, then the bootstrap's plan on top of the new CAs
    (bundles rewritten, leaves re-issued, statuses re-signed, CRLs published)."""
    if stage not in ROTATE_STAGES[1:]:
        raise PkiError(f"certs rotate-ca: unknown stage {stage!r} ({', '.join(ROTATE_STAGES)})")

    def make(st: Store) -> Plan:
        cas = _authorities(st)
        verdict = _ORDER[(cas.stage, stage)]
        if verdict == "noop":
            p = plan(req, now, st)
            p.changes.insert(
                0, Change("ca", "unchanged", f"{stage}: already done (stage {cas.stage})")
            )
            return p
        if verdict is not None:
            raise PkiError(f"certs rotate-ca {stage}: {verdict}; nothing changed")
        extra: list[tuple[str, bytes | None, int]] = []
        leaves = req
        if stage == "prepare":
            kt = new_ca_key_type(req, cas.current)
            new = create_root_ca(kt, req.ca_days, req.trust_domain, now)
            nxt = Authorities(cas.current, "prepared", next=new)
            line = Change(
                "ca",
                "prepared",
                f"new {kt} CA {_describe(new.cert)}; bundles hold old + new; "
                "the leaves change at `switch`",
            )
            # prepare only adds trust: a --key-type (it chose the new CA's type) is
            # the switch's business, when the new CA issues
            leaves = dataclasses.replace(req, key_type=None)
        elif stage == "switch":
            assert cas.next is not None
            nxt = Authorities(cas.next, "switched", previous=cas.current)
            line = Change("ca", "switched", "the new CA issues from now on; old one still trusted")
        else:
            assert cas.previous is not None
            old = cas.previous.cert
            nxt = Authorities(cas.current)
            extra.append((f"ca/retired/{old.serial_number:x}.crt", cert_pem(old), 0o644))
            line = Change(
                "ca",
                "finished",
                f"old CA removed from every bundle, its key destroyed; certificate kept as "
                f"{st.where(f'ca/retired/{old.serial_number:x}.crt')}",
            )
        p = plan(leaves, now, st, authorities=(nxt, [line]))
        p.writes = extra + p.writes
        return p

    return commit_planned(make, store)
