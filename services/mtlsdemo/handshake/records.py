"""The record layer: framing and AEAD protection of everything after the handshake.

Record: type (u8) | version (u16, always 0x0100) | length (u16) | payload.
Protected payload = AEAD(key, nonce = iv XOR seq (64-bit, left-padded), aad = header, plaintext).
"""

from __future__ import annotations

from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from mtlsdemo.handshake.errors import ProtocolError, Reason
from mtlsdemo.handshake.keyschedule import next_traffic_secret, traffic_keys
from mtlsdemo.handshake.suites import VERSION_1, Suite

HEADER_LEN = 5
MAX_PLAINTEXT = 16384
TAG_LEN = 16
MAX_CIPHERTEXT = MAX_PLAINTEXT + 256
MAX_SEQ = 2**64 - 1
_VERSION_BYTES = VERSION_1.to_bytes(2, "big")


class ContentType(IntEnum):
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23
    KEY_UPDATE = 24


_TYPES = {int(t) for t in ContentType}


def header(ctype: int, length: int) -> bytes:
    return bytes((ctype,)) + _VERSION_BYTES + length.to_bytes(2, "big")


def plaintext_record(ctype: ContentType, payload: bytes) -> bytes:
    return header(ctype, len(payload)) + payload


def _check_header(buf: bytes | bytearray, pos: int) -> int:
    """The record length in the header at ``pos``, or the reason it is refused."""
    ctype = buf[pos]
    length = (buf[pos + 3] << 8) | buf[pos + 4]
    if ctype not in _TYPES:
        raise ProtocolError(Reason.UNEXPECTED_MESSAGE, f"unknown record type {ctype}")
    if buf[pos + 1 : pos + 3] != _VERSION_BYTES:
        raise ProtocolError(
            Reason.DECODE_ERROR,
            f"record version {bytes(buf[pos + 1 : pos + 3]).hex()} is not 0100",
        )
    if length > MAX_CIPHERTEXT:
        raise ProtocolError(
            Reason.RECORD_OVERFLOW, f"record of {length} bytes (limit {MAX_CIPHERTEXT})"
        )
    return length


def split_view(data: bytes, pos: int = 0) -> tuple[list[tuple[int, bytes, memoryview]], int]:
    """Every complete record of ``data`` from ``pos`` on, payloads as views into it (no
    copy: the AEAD reads them where they arrived), and where the first incomplete
    one starts."""
    out = []
    view = memoryview(data)
    n = len(data)
    while n - pos >= HEADER_LEN:
        length = _check_header(data, pos)
        end = pos + HEADER_LEN + length
        if end > n:
            break
        out.append((data[pos], data[pos : pos + HEADER_LEN], view[pos + HEADER_LEN : end]))
        pos = end
    return out, pos


AEAD = AESGCM | ChaCha20Poly1305


def aead_seal(aead: AEAD, nonce: bytes, plaintext: bytes | memoryview, aad: bytes) -> bytes:
    return aead.encrypt(nonce, plaintext, aad)


def aead_open(aead: AEAD, nonce: bytes, sealed: bytes | memoryview, aad: bytes) -> bytes:
    """Plaintext, or decrypt_error when the tag does not authenticate."""
    try:
        return aead.decrypt(nonce, sealed, aad)
    except InvalidTag:
        raise ProtocolError(Reason.DECRYPT_ERROR, "record failed authentication") from None


class Protector:
    """AEAD state for one direction: key, IV, sequence number, and key updates."""

    def __init__(self, suite: Suite, secret: bytes, max_seq: int = MAX_SEQ) -> None:
        self.suite = suite
        self.max_seq = max_seq
        self.generation = 0
        self.records = 0  # under the current key
        self.bytes = 0  # plaintext bytes under the current key
        self._install(secret)

    def _install(self, secret: bytes) -> None:
        self.secret = secret
        key, iv = traffic_keys(secret, self.suite.key_len)
        self._aead = self.suite.aead_cls(key)
        self._iv = int.from_bytes(iv, "big")
        self.seq = 0

    def update(self) -> None:
        """Move to the next traffic secret (key update); sequence numbers restart."""
        self._install(next_traffic_secret(self.secret))
        self.generation += 1
        self.records = 0
        self.bytes = 0

    def _nonce(self, limit: int | None = None) -> bytes:
        if self.seq >= (self.max_seq if limit is None else limit):
            raise ProtocolError(
                Reason.SEQUENCE_EXHAUSTED,
                f"sequence number {self.seq} reached the limit; the session must end",
            )
        return (self._iv ^ self.seq).to_bytes(12, "big")

    def seal(self, ctype: int, plaintext: bytes) -> bytes:
        hdr, sealed = self.seal_parts(ctype, plaintext)
        return hdr + sealed

    def seal_parts(self, ctype: int, plaintext: bytes | memoryview) -> tuple[bytes, bytes]:
        """The record as (header, ciphertext + tag), not joined: the bulk path hands
        both to one vectored write instead of copying every byte into a new record."""
        hdr = header(ctype, len(plaintext) + TAG_LEN)
        # The last sequence number is kept for an alert: a sender that runs out can
        # still tell its peer why the session ends (sequence_exhausted).
        limit = self.max_seq if ctype == ContentType.ALERT else self.max_seq - 1
        sealed = aead_seal(self._aead, self._nonce(limit), plaintext, hdr)
        self.seq += 1
        self.records += 1
        self.bytes += len(plaintext)
        return hdr, sealed

    def open(self, hdr: bytes, payload: bytes | memoryview) -> bytes:
        if len(payload) < TAG_LEN:
            raise ProtocolError(
                Reason.DECRYPT_ERROR, f"record of {len(payload)} bytes has no room for a tag"
            )
        try:
            plaintext = aead_open(self._aead, self._nonce(), payload, hdr)
        except ProtocolError as e:
            e.detail = f"record {self.seq} (key generation {self.generation}) failed authentication"
            e.args = (f"{e.reason.value} (local): {e.detail}",)
            raise
        if len(plaintext) > MAX_PLAINTEXT:
            raise ProtocolError(Reason.RECORD_OVERFLOW, f"plaintext of {len(plaintext)} bytes")
        self.seq += 1
        self.records += 1
        self.bytes += len(plaintext)
        return plaintext
