"""Key schedule: HKDF-SHA256 from the shared secret, both randoms and the transcript.

    master        = HKDF-Extract(salt = client_random || server_random, IKM = shared_secret)
    finished_key  = HKDF-Expand-Label(master, "c finished" | "s finished", "", 32)
    verify_data   = HMAC-SHA256(finished_key, transcript_hash)
    c/s traffic_0 = HKDF-Expand-Label(master, "c ap traffic" | "s ap traffic", H(through client Finished), 32)
    key, iv       = HKDF-Expand-Label(traffic_n, "key" | "iv", "", key_len | 12)
    traffic_n+1   = HKDF-Expand-Label(traffic_n, "traffic upd", "", 32)

Session resumption (MTD/1.1):

    psk           = HKDF-Expand-Label(master, "res psk", H(through client Finished), 32)
    binder        = HMAC-SHA256(HKDF-Expand-Label(psk, "res binder", "", 32),
                                H(ClientHello without its binder))
    resumed master: as above, with shared_secret = X25519 output || psk

HKDF-Expand-Label is TLS 1.3's, with the label prefix "mtd1 " instead of "tls13 ",
so keys of this protocol can never collide with TLS keys from the same secret.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import constant_time, hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from mtlsdemo.handshake.codec import u8, u16

HASH_LEN = 32
IV_LEN = 12
LABEL_PREFIX = b"mtd1 "


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac_sha256(salt or b"\x00" * HASH_LEN, ikm)


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    if length <= HASH_LEN:
        # RFC 5869 with one block: T(1) = HMAC(PRK, info || 0x01), the same bytes as
        # HKDFExpand without building a KDF object (every secret here is one block)
        return hmac_sha256(prk, info + b"\x01")[:length]
    return HKDFExpand(hashes.SHA256(), length, info).derive(prk)


def expand_label(secret: bytes, label: str, context: bytes, length: int) -> bytes:
    full = LABEL_PREFIX + label.encode()
    info = u16(length) + u8(len(full)) + full + u8(len(context)) + context
    return hkdf_expand(secret, info, length)


def sha256(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize()


class KeySchedule:
    def __init__(self, shared_secret: bytes, client_random: bytes, server_random: bytes) -> None:
        self.master = hkdf_extract(client_random + server_random, shared_secret)
        self._finished_keys: dict[str, bytes] = {}  # each derived once, used twice

    def finished_key(self, role: str) -> bytes:
        key = self._finished_keys.get(role)
        if key is None:
            key = self._finished_keys[role] = expand_label(
                self.master, f"{role[0]} finished", b"", HASH_LEN
            )
        return key

    def finished_mac(self, role: str, transcript_hash: bytes) -> bytes:
        return hmac_sha256(self.finished_key(role), transcript_hash)

    def check_finished(self, role: str, transcript_hash: bytes, verify_data: bytes) -> bool:
        return constant_time.bytes_eq(self.finished_mac(role, transcript_hash), verify_data)

    def traffic_secret(self, role: str, transcript_hash: bytes) -> bytes:
        return expand_label(self.master, f"{role[0]} ap traffic", transcript_hash, HASH_LEN)

    def resumption_psk(self, transcript_hash: bytes) -> bytes:
        return expand_label(self.master, "res psk", transcript_hash, HASH_LEN)


def binder(psk: bytes, hello_hash: bytes) -> bytes:
    return hmac_sha256(expand_label(psk, "res binder", b"", HASH_LEN), hello_hash)


def traffic_keys(secret: bytes, key_len: int) -> tuple[bytes, bytes]:
    return expand_label(secret, "key", b"", key_len), expand_label(secret, "iv", b"", IV_LEN)


def next_traffic_secret(secret: bytes) -> bytes:
    return expand_label(secret, "traffic upd", b"", HASH_LEN)
