"""One gRPC call over real TLS 1.3 made with Python's ``ssl``, which, unlike grpcio,
can write a key log: the capture's TLS 1.3 call that Wireshark's own TLS dissector
decrypts. HTTP/2 is framed by hand (RFC 9113: the preface, SETTINGS, one HEADERS with
literal HPACK fields, one DATA), which is all a unary call needs and keeps every byte
of it explainable."""

from __future__ import annotations

import socket
import ssl
import struct
from pathlib import Path

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, GOAWAY, RST_STREAM = 0, 1, 4, 7, 3
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


class TlsCallError(OSError):
    """The call over TLS 1.3 did not get a response."""


def frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes((ftype, flags))
        + struct.pack(">I", stream)
        + payload
    )


def _literal(name: str, value: str) -> bytes:
    """An HPACK literal header field without indexing, new name, no Huffman (RFC 7541
    6.2.2): readable as is in the capture."""
    n, v = name.encode(), value.encode()
    if len(n) > 126 or len(v) > 126:
        raise ValueError("header too long for a one-byte HPACK length")
    return b"\x00" + bytes((len(n),)) + n + bytes((len(v),)) + v


def tls_context(tls_dir: Path, keylog: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(tls_dir / "ca.crt")
    ctx.load_cert_chain(tls_dir / "tls.crt", tls_dir / "tls.key")
    ctx.set_alpn_protocols(["h2"])
    ctx.keylog_filename = str(keylog)  # the TLS secrets, in the NSS key log format
    return ctx


def unary(
    address: tuple[str, int],
    server_name: str,
    ctx: ssl.SSLContext,
    path: str,
    message: bytes,
    timeout: float = 5.0,
) -> bytes:
    """The response message of one unary gRPC call (its protobuf bytes)."""
    headers = b"".join(
        _literal(k, v)
        for k, v in (
            (":method", "POST"),
            (":scheme", "https"),
            (":path", path),
            (":authority", server_name),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        )
    )
    body = b"\x00" + struct.pack(">I", len(message)) + message
    with (
        socket.create_connection(address, timeout=timeout) as raw,
        ctx.wrap_socket(raw, server_hostname=server_name) as s,
    ):
        s.sendall(
            PREFACE
            + frame(SETTINGS, 0, 0, b"")
            + frame(HEADERS, END_HEADERS, 1, headers)
            + frame(DATA, END_STREAM, 1, body)
        )
        return _response(s)


def _response(s: ssl.SSLSocket) -> bytes:
    buf, data = b"", b""
    while True:
        while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
            chunk = s.recv(65536)
            if not chunk:
                raise TlsCallError("the server closed the connection before answering")
            buf += chunk
        length = int.from_bytes(buf[:3], "big")
        ftype, flags = buf[3], buf[4]
        stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        payload, buf = buf[9 : 9 + length], buf[9 + length :]
        if ftype == SETTINGS and not flags & ACK:
            s.sendall(frame(SETTINGS, ACK, 0, b""))
        elif ftype == DATA and stream == 1:
            data += payload
        elif ftype in (GOAWAY, RST_STREAM):
            raise TlsCallError(f"the server ended the call (HTTP/2 frame type {ftype})")
        if stream == 1 and flags & END_STREAM:
            if len(data) < 5:
                raise TlsCallError("the call ended without a response message (a gRPC error)")
            return data[5 : 5 + int.from_bytes(data[1:5], "big")]
