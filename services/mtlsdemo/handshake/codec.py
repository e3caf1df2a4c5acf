"""Big-endian integer and length-prefixed vector encoding, strict on decode."""

from __future__ import annotations

from mtlsdemo.handshake.errors import ProtocolError, Reason


class Reader:
    """Reads fields from a message body; any short read or leftover byte is a decode_error."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise ProtocolError(
                Reason.DECODE_ERROR, f"{self.what}: needs {end - len(self.data)} more bytes"
            )
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self._take(2), "big")

    def u24(self) -> int:
        return int.from_bytes(self._take(3), "big")

    def fixed(self, n: int) -> bytes:
        return bytes(self._take(n))

    def vec8(self) -> bytes:
        return bytes(self._take(self.u8()))

    def vec16(self) -> bytes:
        return bytes(self._take(self.u16()))

    def vec24(self) -> bytes:
        return bytes(self._take(self.u24()))

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError(
                Reason.DECODE_ERROR, f"{self.what}: {len(self.data) - self.pos} trailing bytes"
            )


def u8(v: int) -> bytes:
    return v.to_bytes(1, "big")


def u16(v: int) -> bytes:
    return v.to_bytes(2, "big")


def u24(v: int) -> bytes:
    return v.to_bytes(3, "big")


def vec8(b: bytes) -> bytes:
    return u8(len(b)) + b


def vec16(b: bytes) -> bytes:
    return u16(len(b)) + b


def vec24(b: bytes) -> bytes:
    return u24(len(b)) + b
