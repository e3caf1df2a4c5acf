"""Key generation, serialization and loading for the supported key types."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from mtlsdemo.pki.errors import PkiError

# ml-dsa-*: FIPS 204 post-quantum signatures (certificates of ~4-5.5 KB); the MTD/1
# sidecars use them, grpcio's TLS (the native gRPC ports) does not
KEY_TYPES = ("ecdsa-p256", "rsa-2048", "rsa-3072", "ed25519", "ml-dsa-44", "ml-dsa-65")
DEFAULT_KEY_TYPE = "ecdsa-p256"

PrivateKey = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | mldsa.MLDSA44PrivateKey
    | mldsa.MLDSA65PrivateKey
)
PublicKey = (
    ec.EllipticCurvePublicKey
    | rsa.RSAPublicKey
    | ed25519.Ed25519PublicKey
    | mldsa.MLDSA44PublicKey
    | mldsa.MLDSA65PublicKey
)
AnyPublicKey = CertificatePublicKeyTypes  # what a certificate or CSR may carry (checked where used)


def check_key_type(key_type: str, flag: str = "--key-type") -> str:
    if key_type not in KEY_TYPES:
        raise PkiError(
            f"{flag}: unknown key type {key_type!r} (choose from {', '.join(KEY_TYPES)})"
        )
    return key_type


def generate_key(key_type: str) -> PrivateKey:
    check_key_type(key_type)
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type == "ml-dsa-44":
        return mldsa.MLDSA44PrivateKey.generate()
    if key_type == "ml-dsa-65":
        return mldsa.MLDSA65PrivateKey.generate()
    bits = int(key_type.split("-")[1])
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_type_of(key: PrivateKey | AnyPublicKey) -> str:
    """The KEY_TYPES name of a key (private or public), or a descriptive name."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "ecdsa-p256" if key.curve.name == "secp256r1" else f"ecdsa-{key.curve.name}"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, mldsa.MLDSA44PrivateKey | mldsa.MLDSA44PublicKey):
        return "ml-dsa-44"
    if isinstance(key, mldsa.MLDSA65PrivateKey | mldsa.MLDSA65PublicKey):
        return "ml-dsa-65"
    return type(key).__name__


def signing_hash(key: PrivateKey) -> hashes.SHA256 | None:
    """Hash to pass to ``CertificateBuilder.sign`` (Ed25519 and ML-DSA take none:
    they sign the message itself)."""
    pure = ed25519.Ed25519PrivateKey | mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey
    return None if isinstance(key, pure) else hashes.SHA256()


def deterministic(key: PrivateKey) -> bool | None:
    """``ecdsa_deterministic`` for ``CertificateBuilder.sign``: RFC 6979 nonces for ECDSA
    (a signature never depends on the RNG of the moment; the handshake signs so too),
    None for the other key types (the argument is ECDSA's only)."""
    return True if isinstance(key, ec.EllipticCurvePrivateKey) else None


def private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_der(key: AnyPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_key_mode(path: Path) -> None:
    """Refuse a private key any user may read (ssh does the same). Group read is
    allowed: a Kubernetes Secret volume hands keys to the pod's fsGroup (0440)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # the read that follows reports it
    if mode & stat.S_IROTH:
        raise PkiError(
            f"{path}: private key readable by every user (mode {stat.S_IMODE(mode):04o}); "
            f"`chmod 600 {path}` and run again"
        )


def load_private_key(path: Path) -> PrivateKey:
    check_key_mode(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PkiError(f"{path}: cannot read private key: {e.strerror}") from None
    return parse_private_key(data, str(path))


def parse_private_key(data: bytes, source: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        # The exception text never includes key material, only the parse failure.
        raise PkiError(f"{source}: not a usable unencrypted PEM private key ({e})") from None
    if not isinstance(key, PrivateKey):
        raise PkiError(f"{source}: unsupported private key type {type(key).__name__}")
    return key
