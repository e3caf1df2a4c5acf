"""Issuing SVIDs from the mesh's CA: the agent makes the key and a CSR, the CA signs
it through the one CSR path (``pki.issue.sign_csr``: the CA decides the names), and
the bundle is what every identity trusts now (``pki.authorities``, rollovers
included). The CA is read at each issuance, so a rollover's new bundle and a CA
that cannot be read (``break ca-down``) show at the next renewal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from mtlsdemo.agent.svid import Svid
from mtlsdemo.pki.authorities import Authorities
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.identity import ServiceIdentity
from mtlsdemo.pki.issue import sign_csr
from mtlsdemo.pki.keys import generate_key, signing_hash
from mtlsdemo.pki.stores import Store

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class Workload:
    """A workload the agent serves: its name (the SVID's last path segment) and the
    socket that reaching is what identifies it."""

    name: str
    identity: ServiceIdentity

    @property
    def spiffe_id(self) -> str:
        return self.identity.spiffe_id


class SvidIssuer:
    """Signs SVIDs with the CA in force in ``store`` (the bootstrap's certs dir)."""

    def __init__(self, store: Store, ttl: dt.timedelta, key_type: str, clock: Clock) -> None:
        self.store = store
        self.ttl = ttl
        self.key_type = key_type
        self.clock = clock

    def authorities(self) -> Authorities:
        store_ca = Authorities.read(self.store)
        if store_ca is None:
            raise PkiError(
                f"{self.store.where('ca/ca.crt')}: no CA to issue from; run "
                "`mtlsdemo certs bootstrap` first"
            )
        return store_ca

    def bundle(self) -> tuple[x509.Certificate, ...]:
        return tuple(ca.cert for ca in self.authorities().all)

    def issue(self, workload: Workload) -> Svid:
        self.store.forget()
        cas = self.authorities()
        now = self.clock()
        key = generate_key(self.key_type)
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, workload.name)]))
            .add_extension(workload.identity.san(), critical=False)
            .sign(key, signing_hash(key))
        )
        days = self.ttl.total_seconds() / 86400
        cert = sign_csr(cas.current, csr, workload.identity, now, days, source=workload.name)
        return Svid(workload.spiffe_id, (cert,), key, tuple(ca.cert for ca in cas.all), now)
