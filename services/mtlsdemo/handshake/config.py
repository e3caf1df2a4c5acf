"""What a connection needs to know: its credentials, whom it trusts, whom it
accepts, what it offers, and its limits."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from mtlsdemo.handshake.peer import (
    PeerPolicy,
    TrustStore,
    can_receive_rsa_key_transport,
    spiffe_id_of,
)
from mtlsdemo.handshake.signatures import SIGNING_KEY_CLASSES, Scheme, SigningKey, scheme_for
from mtlsdemo.handshake.suites import DEFAULT_SUITES, DEFAULT_VERSIONS, Suite
from mtlsdemo.handshake.tickets import TicketCache, TicketKeys


@dataclass(frozen=True)
class Credentials:
    """Our certificate chain (leaf first) and private key."""

    chain: tuple[x509.Certificate, ...]
    key: SigningKey
    chain_der: tuple[bytes, ...] = ()
    scheme: Scheme = Scheme.ECDSA_SECP256R1_SHA256
    status: bytes = b""  # the CA-signed OCSP response for our leaf, stapled to Certificate

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes) -> Credentials:
        chain = tuple(x509.load_pem_x509_certificates(cert_pem))
        return cls.from_parts(chain, load_pem_private_key(key_pem, password=None))

    @classmethod
    def from_parts(
        cls, chain: tuple[x509.Certificate, ...], key: object, status: bytes = b""
    ) -> Credentials:
        """From already parsed and checked objects (the identity source's)."""
        if not isinstance(key, SIGNING_KEY_CLASSES):
            raise TypeError(f"a {type(key).__name__} cannot sign a CertificateVerify")
        mine = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        theirs = chain[0].public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if mine != theirs:
            raise ValueError("private key does not match the certificate")
        ders = tuple(c.public_bytes(Encoding.DER) for c in chain)
        return cls(chain, key, ders, scheme_for(key), status)

    @functools.cached_property
    def fingerprint(self) -> bytes:
        """What we present (chain and staple): a session ticket remembers it, and a
        change (renewal, a new staple) sends the next handshake through in full."""
        h = hashes.Hash(hashes.SHA256())
        for part in (*self.chain_der, self.status):
            h.update(len(part).to_bytes(4, "big") + part)
        return h.finalize()

    @functools.cached_property
    def identity(self) -> str:
        """Our own name in results (parsed once, not per handshake)."""
        return spiffe_id_of(self.chain[0])

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    def can_decrypt_rsa(self) -> bool:
        return isinstance(self.key, rsa.RSAPrivateKey) and can_receive_rsa_key_transport(self.leaf)

    def supports(self, suite: Suite) -> bool:
        return suite.kx.ephemeral or self.can_decrypt_rsa()


@dataclass(frozen=True)
class Limits:
    max_handshake_message: int = 32 * 1024
    max_buffered: int = 64 * 1024  # unparsed bytes held at once (partial record + message)
    max_seq: int = 2**64 - 1  # records under one key before the session must end


@dataclass(frozen=True)
class HandshakeConfig:
    credentials: Credentials
    trust: TrustStore
    peer: PeerPolicy = field(default_factory=PeerPolicy)
    suites: tuple[Suite, ...] = DEFAULT_SUITES
    versions: tuple[int, ...] = DEFAULT_VERSIONS
    server_preference: bool = False  # server picks by its own order, not the client's
    limits: Limits = field(default_factory=Limits)
    key_update_records: int = 0  # auto key update after this many records sent (0: never)
    key_update_bytes: int = 0  # ... or this many plaintext bytes sent (0: never)
    trace: bool = False  # record every message for `mtlsdemo handshake --trace`
    trace_secrets: bool = False  # ... and the derived secrets themselves (--show-secrets)
    # keep the session's first traffic secrets on the connection (``secrets``) for a
    # key log (`sidecar --keylog`): whoever reads that log decrypts the session
    keep_secrets: bool = False
    # the peer's stapled status: "hard" refuses without a good one, "soft" accepts
    # and reports (VerifiedPeer.status_problem), "off" does not look
    require_status: str = "hard"
    # session resumption (MTD/1.1): a server issues and accepts tickets sealed with
    # ``tickets``; a client offers the ones in ``ticket_cache`` under ``ticket_peer``
    # (whom they are for). Both shared by the connections of one process.
    tickets: TicketKeys | None = None
    ticket_cache: TicketCache | None = None
    ticket_peer: str = ""
