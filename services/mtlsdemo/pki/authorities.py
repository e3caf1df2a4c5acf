"""The CAs in force and the rollover stage that says which: one place that knows
whom the identities must trust (the bundle) and which CA issues now.

Stages of ``certs rotate-ca`` (state in ``ca/rollover.json``):
    (none)     ca/ca.*                       bundle = [ca]
    prepared   ca/ca.* + ca/next.*           bundle = [ca, next]      leaves from ca
    switched   ca/ca.* (was next) + ca/previous.*   bundle = [ca, previous]  leaves from ca
finish retires ``previous``: key deleted, certificate kept in ``ca/retired/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mtlsdemo.pki.ca import CertificateAuthority, check_ca
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.files import cert_pem, parse_certs
from mtlsdemo.pki.keys import parse_private_key
from mtlsdemo.pki.stores import Store

STATE = "ca/rollover.json"
STAGES = ("none", "prepared", "switched")


def read_ca(store: Store, stem: str) -> CertificateAuthority | None:
    """``ca/<stem>.crt`` + ``ca/<stem>.key``, checked; None when both are absent."""
    crt_rel, key_rel = f"ca/{stem}.crt", f"ca/{stem}.key"
    crt, key = store.read(crt_rel), store.read(key_rel)
    if crt is None and key is None:
        return None
    if crt is None or key is None:
        present, missing = (crt_rel, key_rel) if crt is not None else (key_rel, crt_rel)
        raise PkiError(
            f"{store.where(missing)}: missing while {store.where(present)} exists; "
            "restore it or remove both"
            + (" to create a new CA (every leaf will be re-issued)" if stem == "ca" else "")
        )
    where_crt, where_key = store.where(crt_rel), store.where(key_rel)
    return check_ca(
        parse_certs(crt, where_crt)[0], parse_private_key(key, where_key), where_crt, where_key
    )


def read_stage(store: Store) -> str:
    raw = store.read(STATE)
    if raw is None:
        return "none"
    try:
        stage = json.loads(raw)["stage"]
    except (ValueError, KeyError, TypeError) as e:
        raise PkiError(f"{store.where(STATE)}: unreadable rollover state ({e})") from None
    if stage not in STAGES:
        raise PkiError(f"{store.where(STATE)}: unknown rollover stage {stage!r}")
    return str(stage)


def stage_bytes(stage: str) -> bytes | None:
    return None if stage == "none" else (json.dumps({"stage": stage}) + "\n").encode()


@dataclass(frozen=True)
class Authorities:
    current: CertificateAuthority  # issues every leaf, signs statuses
    stage: str = "none"
    next: CertificateAuthority | None = None  # prepared: trusted, not yet issuing
    previous: CertificateAuthority | None = None  # switched: still trusted, no longer issuing

    @classmethod
    def read(cls, store: Store) -> Authorities | None:
        current = read_ca(store, "ca")
        if current is None:
            return None
        stage = read_stage(store)
        nxt, prev = read_ca(store, "next"), read_ca(store, "previous")
        if (stage == "prepared") != (nxt is not None) or (stage == "switched") != (
            prev is not None
        ):
            raise PkiError(
                f"{store.where(STATE)}: rollover stage {stage!r} does not match the CA files "
                f"(next CA {'present' if nxt else 'absent'}, previous CA "
                f"{'present' if prev else 'absent'}); restore ca/ from a backup"
            )
        return cls(current, stage, nxt, prev)

    @property
    def all(self) -> list[CertificateAuthority]:
        return [ca for ca in (self.current, self.next, self.previous) if ca is not None]

    @property
    def bundle_pem(self) -> bytes:
        """What every identity's ca.crt holds: the CAs a peer's chain may lead to."""
        return b"".join(cert_pem(ca.cert) for ca in self.all)
