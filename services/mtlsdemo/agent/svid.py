"""One X.509-SVID as the agent issued it, and the DER the Workload API carries it in
(chain leaf first, PKCS#8 key, bundle certificates concatenated); the workload's
side reads it back in ``pki.workload_api``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlsdemo.pki.keys import PrivateKey


@dataclass(frozen=True)
class Svid:
    """An issued X.509-SVID with its key and the bundle of its trust domain."""

    spiffe_id: str
    chain: tuple[x509.Certificate, ...]
    key: PrivateKey
    bundle: tuple[x509.Certificate, ...]
    issued_at: dt.datetime

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def not_after(self) -> dt.datetime:
        return self.leaf.not_valid_after_utc

    @property
    def lifetime(self) -> dt.timedelta:
        return self.not_after - self.issued_at

    def chain_der(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.DER) for c in self.chain)

    def key_der(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def bundle_der(self) -> bytes:
        return certs_der(self.bundle)


def certs_der(certs: tuple[x509.Certificate, ...] | list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.DER) for c in certs)
