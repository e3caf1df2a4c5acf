"""CertificateVerify signatures: schemes, the signed content, sign and verify.

Signed content (as TLS 1.3): 64 spaces || context string || 0x00 || transcript hash.
The context string differs per role, so a signature can never be replayed as the
other role's (reflection).
"""

from __future__ import annotations

from enum import IntEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa

from mtlsdemo.handshake.errors import ProtocolError, Reason


class Scheme(IntEnum):
    ECDSA_SECP256R1_SHA256 = 0x0403
    RSA_PSS_RSAE_SHA256 = 0x0804
    ED25519 = 0x0807
    # FIPS 204, post-quantum (TLS code points of draft-ietf-tls-mldsa); pure ML-DSA
    # over the signed content, empty context
    MLDSA44 = 0x0904
    MLDSA65 = 0x0905


SUPPORTED_SCHEMES = tuple(Scheme)
# the private keys a CertificateVerify can be made with (scheme_for says which scheme)
SigningKey = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | mldsa.MLDSA44PrivateKey
    | mldsa.MLDSA65PrivateKey
)
SIGNING_KEY_CLASSES = (
    ec.EllipticCurvePrivateKey,
    rsa.RSAPrivateKey,
    ed25519.Ed25519PrivateKey,
    mldsa.MLDSA44PrivateKey,
    mldsa.MLDSA65PrivateKey,
)
CONTEXTS = {
    "server": b"mtlsdemo MTD/1, server CertificateVerify",
    "client": b"mtlsdemo MTD/1, client CertificateVerify",
}
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def signed_content(signer_role: str, transcript_hash: bytes) -> bytes:
    return b" " * 64 + CONTEXTS[signer_role] + b"\x00" + transcript_hash


def scheme_for(key: object) -> Scheme:
    if (
        isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey)
        and key.curve.name == "secp256r1"
    ):
        return Scheme.ECDSA_SECP256R1_SHA256
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return Scheme.ED25519
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey) and key.key_size >= 2048:
        return Scheme.RSA_PSS_RSAE_SHA256
    if isinstance(key, mldsa.MLDSA44PrivateKey | mldsa.MLDSA44PublicKey):
        return Scheme.MLDSA44
    if isinstance(key, mldsa.MLDSA65PrivateKey | mldsa.MLDSA65PublicKey):
        return Scheme.MLDSA65
    raise ProtocolError(Reason.BAD_CERTIFICATE, f"unsupported key type {type(key).__name__}")


def sign(key: object, scheme: Scheme, content: bytes) -> bytes:
    if scheme is Scheme.ECDSA_SECP256R1_SHA256 and isinstance(key, ec.EllipticCurvePrivateKey):
        # RFC 6979 nonces: no dependence on an RNG at signing time, and the same
        # transcript gives the same signature (replayable handshakes for the fuzzer)
        return key.sign(content, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    if scheme is Scheme.ED25519 and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(content)
    if scheme is Scheme.RSA_PSS_RSAE_SHA256 and isinstance(key, rsa.RSAPrivateKey):
        return key.sign(content, _PSS, hashes.SHA256())
    if scheme in (Scheme.MLDSA44, Scheme.MLDSA65) and isinstance(
        key, mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey
    ):
        # hedged (randomized inside OpenSSL, FIPS 204's default): an ML-DSA
        # CertificateVerify does not replay byte for byte
        return key.sign(content)
    raise ProtocolError(
        Reason.INTERNAL_ERROR, f"scheme {scheme.name} does not fit a {type(key).__name__}"
    )


def verify(public_key: object, scheme: int, signature: bytes, content: bytes) -> None:
    try:
        expected = scheme_for(public_key)
    except ProtocolError:
        raise
    if scheme != expected:
        raise ProtocolError(
            Reason.ILLEGAL_PARAMETER,
            f"signature scheme 0x{scheme:04x} does not fit the certificate's "
            f"key (expected {expected.name})",
        )
    try:
        if expected is Scheme.ECDSA_SECP256R1_SHA256:
            public_key.verify(signature, content, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
        elif expected in (Scheme.ED25519, Scheme.MLDSA44, Scheme.MLDSA65):
            public_key.verify(signature, content)  # type: ignore[attr-defined]
        else:
            public_key.verify(signature, content, _PSS, hashes.SHA256())  # type: ignore[attr-defined]
    except InvalidSignature:
        raise ProtocolError(
            Reason.BAD_SIGNATURE, "CertificateVerify signature does not verify with the peer's key"
        ) from None
