"""Key exchange: ephemeral X25519 (default), hybrid X25519 + ML-KEM-768, or
RSA-OAEP-SHA256 key transport."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import mlkem, padding, rsa, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mtlsdemo.handshake.errors import ProtocolError, Reason

X25519_LEN = 32
PREMASTER_LEN = 48
MLKEM768_SEED_LEN = 64  # FIPS 203 (d, z): the key pair is a function of it
MLKEM768_EK_LEN = 1184  # encapsulation key
MLKEM768_CT_LEN = 1088  # ciphertext
MLKEM_SHARED_LEN = 32
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
Entropy = Callable[
    [int], bytes
]  # n -> n random bytes: the caller's (os.urandom, or a seeded one in tests)


def x25519_keypair(entropy: Entropy) -> tuple[x25519.X25519PrivateKey, bytes]:
    # from the caller's randomness (RFC 7748 clamps any 32 bytes into a valid scalar)
    priv = x25519.X25519PrivateKey.from_private_bytes(entropy(X25519_LEN))
    return priv, priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def x25519_shared(priv: x25519.X25519PrivateKey, peer_public: bytes) -> bytes:
    if len(peer_public) != X25519_LEN:
        raise ProtocolError(
            Reason.ILLEGAL_PARAMETER, f"X25519 key share of {len(peer_public)} bytes (must be 32)"
        )
    try:
        shared = priv.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:
        # cryptography refuses an all-zero result: the peer sent a low-order point.
        raise ProtocolError(
            Reason.ILLEGAL_PARAMETER, "X25519 shared secret is all zeros (low-order key share)"
        ) from None
    if shared == bytes(X25519_LEN):  # belt and braces: never key a session with zeros
        raise ProtocolError(Reason.ILLEGAL_PARAMETER, "X25519 shared secret is all zeros")
    return shared


def new_premaster(entropy: Entropy) -> bytes:
    return entropy(PREMASTER_LEN)


def rsa_oaep_encrypt(server_key: rsa.RSAPublicKey, premaster: bytes) -> bytes:
    return server_key.encrypt(premaster, OAEP)


def rsa_oaep_decrypt(
    server_key: rsa.RSAPrivateKey, ciphertext: bytes, entropy: Entropy
) -> tuple[bytes, bool]:
    """The pre-master secret, and whether decryption succeeded.

    On any failure (wrong length, padding, size of the result) a random secret is
    returned instead and the handshake goes on: the client's Finished then fails
    to verify, exactly as with a wrong key, so the peer cannot tell an OAEP
    failure from any other (no padding oracle, cf. Bleichenbacher / Manger).
    """
    fallback = entropy(PREMASTER_LEN)
    premaster = oaep_decrypt(server_key, ciphertext)
    if premaster is None or len(premaster) != PREMASTER_LEN:
        return fallback, False
    return premaster, True


def oaep_decrypt(key: rsa.RSAPrivateKey, ciphertext: bytes) -> bytes | None:
    """RSA-OAEP-SHA256 (MGF1-SHA256, empty label) decryption; None on any failure."""
    if len(ciphertext) != (key.key_size + 7) // 8:
        return None
    try:
        return key.decrypt(ciphertext, OAEP)
    except ValueError:
        return None


def mlkem768_keypair(entropy: Entropy) -> tuple[mlkem.MLKEM768PrivateKey, bytes]:
    """An ephemeral ML-KEM-768 key pair from the caller's randomness (its 64-byte
    seed), and the encapsulation key to send."""
    priv = mlkem.MLKEM768PrivateKey.from_seed_bytes(entropy(MLKEM768_SEED_LEN))
    return priv, priv.public_key().public_bytes_raw()


def mlkem768_encapsulate(encapsulation_key: bytes) -> tuple[bytes, bytes]:
    """(shared secret, ciphertext) to the peer's encapsulation key. The one use of
    randomness the caller does not supply: cryptography offers no encapsulation from
    given randomness, so a hybrid handshake's ClientKeyExchange does not replay byte
    for byte (everything else does)."""
    if len(encapsulation_key) != MLKEM768_EK_LEN:
        raise ProtocolError(
            Reason.ILLEGAL_PARAMETER,
            f"ML-KEM-768 encapsulation key of {len(encapsulation_key)} bytes "
            f"(must be {MLKEM768_EK_LEN})",
        )
    try:
        public = mlkem.MLKEM768PublicKey.from_public_bytes(encapsulation_key)
    except ValueError as e:  # FIPS 203's modulus check on the key's coefficients
        raise ProtocolError(
            Reason.ILLEGAL_PARAMETER, f"ML-KEM-768 encapsulation key refused: {e}"
        ) from None
    return public.encapsulate()


def mlkem768_decapsulate(priv: mlkem.MLKEM768PrivateKey, ciphertext: bytes) -> bytes:
    """The shared secret. A ciphertext of the right length that was tampered with
    gives a different secret, not an error (FIPS 203's implicit rejection): the
    handshake then fails at the Finished, as with a wrong RSA-OAEP pre-master."""
    if len(ciphertext) != MLKEM768_CT_LEN:
        raise ProtocolError(
            Reason.ILLEGAL_PARAMETER,
            f"ML-KEM-768 ciphertext of {len(ciphertext)} bytes (must be {MLKEM768_CT_LEN})",
        )
    return priv.decapsulate(ciphertext)


def hybrid_secret(mlkem_shared: bytes, x25519_shared: bytes) -> bytes:
    """X25519MLKEM768's combination (draft-ietf-tls-ecdhe-mlkem §3): the ML-KEM-768
    shared secret first, then X25519's, concatenated; the key schedule's HKDF-Extract
    does the rest. Either half alone keeps the session key secret."""
    return mlkem_shared + x25519_shared
