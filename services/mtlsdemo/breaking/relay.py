"""A man in the middle for one connection: bytes from the client pass through a
transform before they reach the server (the `tamper` and `downgrade` scenarios)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from mtlsdemo.handshake.records import HEADER_LEN, TAG_LEN

APPLICATION_DATA = 23
HANDSHAKE = 22


class Records:
    """Whole records out of a byte stream, so a transform sees record by record."""

    def __init__(self, change: Callable[[int, bytes], bytes]) -> None:
        self.buf = bytearray()
        self.change = change
        self.changed: list[str] = []  # what the transform did, in words, for the report

    def __call__(self, data: bytes) -> bytes:
        self.buf += data
        out = bytearray()
        while len(self.buf) >= HEADER_LEN:
            n = HEADER_LEN + int.from_bytes(self.buf[3:5], "big")
            if len(self.buf) < n:
                break
            record = bytes(self.buf[:n])
            del self.buf[:n]
            out += self.change(record[0], record)
        return bytes(out)


def flip_first_data_record() -> Records:
    """One bit of the first encrypted application record flipped (in its tag)."""
    done: list[int] = []

    def change(ctype: int, record: bytes) -> bytes:
        if ctype == APPLICATION_DATA and not done:
            done.append(1)
            last = len(record) - 1
            flipped = record[last] ^ 0x01
            records.changed.append(
                f"byte {last} of the first application_data record ({len(record)} bytes: "
                f"5 header, {len(record) - HEADER_LEN - TAG_LEN} ciphertext, {TAG_LEN} tag), "
                f"the last byte of its AEAD tag: 0x{record[last]:02x} -> 0x{flipped:02x}"
            )
            return record[:-1] + bytes((flipped,))
        return record

    records = Records(change)
    return records


def strip_suites(keep_last: int = 1) -> Records:
    """The ClientHello's suite list cut to its last (weakest-preferred) entries, as
    a downgrade attacker would; every length fixed up so it still parses."""
    done: list[int] = []

    def change(ctype: int, record: bytes) -> bytes:
        if ctype != HANDSHAKE or done or record[HEADER_LEN] != 1:  # 1: ClientHello
            return record
        done.append(1)
        body = record[HEADER_LEN + 4 :]
        nv = body[0]
        versions, rest = body[: 1 + nv], body[1 + nv :]
        random, rest = rest[:32], rest[32:]
        ns = rest[0]
        suites, tail = rest[1 : 1 + ns], rest[1 + ns :]
        kept = suites[-2 * keep_last :]
        new_body = versions + random + bytes((len(kept),)) + kept + tail
        msg = bytes((1,)) + len(new_body).to_bytes(3, "big") + new_body
        return record[:3] + len(msg).to_bytes(2, "big") + msg

    return Records(change)


class Relay:
    def __init__(self, upstream: tuple[str, int], transform: Callable[[bytes], bytes]) -> None:
        self.upstream = upstream
        self.transform = transform
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True, name="break-relay")
        self._thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            client, _ = self.listener.accept()
            server = socket.create_connection(self.upstream, timeout=10)
            back = threading.Thread(target=self._pump, args=(server, client, None), daemon=True)
            back.start()
            self._pump(client, server, self.transform)
            back.join(10)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, fn: Callable[[bytes], bytes] | None) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(fn(data) if fn else data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()
        self._thread.join(15)
