"""Protocol versions and cipher suites: a key exchange family with an AEAD, SHA-256 throughout."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

VERSION_1 = 0x0100  # "MTD/1.0"
VERSION_1_1 = 0x0101  # "MTD/1.1": 1.0 plus session resumption (tickets)
# "MTD/1.2" (issue 31): CertificateVerify signs the whole transcript, the ClientHello's
# offer lists included; a resumed client sends its Finished first and completes only on
# the server's Finished; a 1.2 server that negotiates lower marks its random (below).
VERSION_1_2 = 0x0102
SUPPORTED_VERSIONS = (VERSION_1_2, VERSION_1_1, VERSION_1)
# what a peer speaks unless told otherwise: 1.2 alone. When either peer is 1.1, a
# stolen RSA server key still rewrites the hello and the downgrade mark protects
# nothing (docs/protocol.md §7a): older versions are an explicit, loud setting
DEFAULT_VERSIONS = (VERSION_1_2,)
# The last 8 bytes of a ServerHello random from a server that supports MTD/1.2 but
# negotiated an older version (as TLS 1.3's "DOWNGRD" sentinel): a 1.2 client that sees
# it knows its offer was cut on the path, and refuses. The random is covered by both
# CertificateVerify signatures, so stripping the mark breaks the client's signature.
DOWNGRADE_SENTINEL = b"MTD12DWN"


def version_name(v: int) -> str:
    return f"MTD/{v >> 8}.{v & 0xFF}"


class KeyExchange(StrEnum):
    ECDHE_X25519 = "ECDHE-X25519"  # ephemeral: forward secrecy
    RSA_OAEP = "RSA-OAEP"  # classic key transport under the server's RSA key
    # hybrid post-quantum: ephemeral ML-KEM-768 (FIPS 203) and X25519, both secrets
    # fed to the key schedule (draft-ietf-tls-ecdhe-mlkem's X25519MLKEM768)
    X25519_MLKEM768 = "X25519MLKEM768"

    @property
    def ephemeral(self) -> bool:
        """A fresh key share from the server (ServerKeyShare): forward secrecy."""
        return self is not KeyExchange.RSA_OAEP

    @property
    def quantum_safe(self) -> bool:
        """A recorded session stays closed to a future quantum computer."""
        return self is KeyExchange.X25519_MLKEM768


@dataclass(frozen=True)
class Suite:
    code: int
    name: str
    kx: KeyExchange
    aead: str
    key_len: int
    aead_cls: type[AESGCM] | type[ChaCha20Poly1305]

    def __str__(self) -> str:
        return self.name


def _suite(code: int, kx: KeyExchange, aead: str, key_len: int, cls: type) -> Suite:
    return Suite(code, f"{kx.value}-{aead}", kx, aead, key_len, cls)


SUITES = (
    _suite(0x0101, KeyExchange.ECDHE_X25519, "AES-256-GCM", 32, AESGCM),
    _suite(0x0102, KeyExchange.ECDHE_X25519, "CHACHA20-POLY1305", 32, ChaCha20Poly1305),
    _suite(0x0103, KeyExchange.ECDHE_X25519, "AES-128-GCM", 16, AESGCM),
    _suite(0x0201, KeyExchange.RSA_OAEP, "AES-256-GCM", 32, AESGCM),
    _suite(0x0202, KeyExchange.RSA_OAEP, "CHACHA20-POLY1305", 32, ChaCha20Poly1305),
    _suite(0x0203, KeyExchange.RSA_OAEP, "AES-128-GCM", 16, AESGCM),
    _suite(0x0301, KeyExchange.X25519_MLKEM768, "AES-256-GCM", 32, AESGCM),
    _suite(0x0302, KeyExchange.X25519_MLKEM768, "CHACHA20-POLY1305", 32, ChaCha20Poly1305),
)
BY_CODE = {s.code: s for s in SUITES}
BY_NAME = {s.name: s for s in SUITES}
# The default offer: the hybrid post-quantum suites first (what browsers and TLS
# libraries switched to: a recorded session stays closed to a future quantum
# computer), then classic X25519, so a peer without the hybrid (MTD/1.1 before it)
# negotiates X25519 as before: unknown codes are skipped, never an error. Forward
# secrecy throughout: RSA key transport must be asked for by name.
HYBRID_SUITES = tuple(s for s in SUITES if s.kx is KeyExchange.X25519_MLKEM768)
CLASSIC_SUITES = tuple(s for s in SUITES if s.kx is KeyExchange.ECDHE_X25519)
DEFAULT_SUITES = HYBRID_SUITES + CLASSIC_SUITES


def parse_suites(names: str | list[str]) -> tuple[Suite, ...]:
    items = names.split(",") if isinstance(names, str) else names
    out = []
    for n in (i.strip() for i in items):
        if not n:
            continue
        if n not in BY_NAME:
            raise ValueError(f"unknown suite {n!r} (known: {', '.join(BY_NAME)})")
        out.append(BY_NAME[n])
    if not out:
        raise ValueError("no suites given")
    return tuple(out)


def parse_versions(text: str) -> tuple[int, ...]:
    """``1.2,1.1,1.0`` (or ``MTD/1.2``): the versions to accept, newest first."""
    known = {version_name(v).removeprefix("MTD/"): v for v in SUPPORTED_VERSIONS}
    out = []
    for item in (i.strip().removeprefix("MTD/") for i in text.split(",")):
        if not item:
            continue
        if item not in known:
            raise ValueError(f"unknown version {item!r} (known: {', '.join(known)})")
        out.append(known[item])
    if not out:
        raise ValueError("no versions given")
    return tuple(sorted(set(out), reverse=True))
