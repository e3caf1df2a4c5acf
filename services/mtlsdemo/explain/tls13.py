"""A real TLS 1.3 handshake with a native gRPC mTLS port, message by message, next
to MTD/1's four steps (`mtlsdemo handshake --tls13 --connect HOST:PORT`).

Python's ``ssl`` (OpenSSL) does the handshake; its message callback reports every
record header and every handshake message, decrypted. A handshake message whose
record travelled as application data was encrypted on the wire: that is how the
table below knows what an eavesdropper saw.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
from dataclasses import dataclass
from typing import Any

from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.material import IdentityMaterial
from mtlsdemo.rpc.ssl_identity import load_identity

RECORD_HEADER = 256  # OpenSSL's pseudo content types in the message callback
INNER_CONTENT_TYPE = 257
HANDSHAKE, APPLICATION_DATA = 22, 23
NAMES = {
    1: "ClientHello",
    2: "ServerHello",
    4: "NewSessionTicket",
    8: "EncryptedExtensions",
    11: "Certificate",
    13: "CertificateRequest",
    15: "CertificateVerify",
    20: "Finished",
    24: "KeyUpdate",
}
# where each TLS 1.3 message sits in the classic four steps, and its MTD/1 counterpart
STEP = {
    "ClientHello": ("1 hello + 3 key exchange", "ClientHello (+ ClientKeyExchange later)"),
    "ServerHello": ("1 hello + 3 key exchange", "ServerHello + ServerKeyShare"),
    "EncryptedExtensions": ("1 hello", "(none: MTD/1 has no extensions)"),
    "CertificateRequest": ("2 certificates", "CertificateRequest"),
    "Certificate": ("2 certificates", "Certificate (sent in the clear)"),
    "CertificateVerify": ("2 certificates", "CertificateVerify"),
    "Finished": ("4 finished", "Finished"),
    "NewSessionTicket": ("after: resumption", "NewSessionTicket (MTD/1.1, in the clear)"),
}


@dataclass(frozen=True)
class Tls13Message:
    sender: str  # client or server
    name: str
    size: int
    encrypted: bool


def handshake_messages(
    host: str, port: int, material: IdentityMaterial, server_name: str, timeout: float
) -> tuple[list[Tls13Message], str, str]:
    """(messages in order, TLS version, cipher) of one real handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cadata=material.ca_pem.decode())
    ctx.set_alpn_protocols(["h2"])
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog:  # the standard way (as browsers and curl): Wireshark then decrypts it
        ctx.keylog_filename = keylog
        print(
            f"!! SSLKEYLOGFILE: this TLS 1.3 connection's secrets go to {keylog}; anyone "
            "with that file decrypts it",
            file=sys.stderr,
        )
    messages: list[Tls13Message] = []
    outer = {"read": HANDSHAKE, "write": HANDSHAKE}  # the last record header's type, per way

    def callback(
        _conn: Any, direction: str, _version: Any, content_type: Any, msg_type: Any, data: bytes
    ) -> None:
        if content_type == RECORD_HEADER:
            outer[direction] = int(msg_type)
        elif content_type == HANDSHAKE and int(msg_type) in NAMES:
            messages.append(
                Tls13Message(
                    "client" if direction == "write" else "server",
                    NAMES[int(msg_type)],
                    len(data),
                    outer[direction] == APPLICATION_DATA,
                )
            )

    ctx._msg_callback = callback  # type: ignore[attr-defined]  # OpenSSL's, exposed by ssl
    load_identity(ctx, material)  # no temporary directory (a read-only root may have none)
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            # the server's tickets (and its verdict on us) come after the handshake
            tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(9))
            tls.recv(1024)
            version, cipher = tls.version() or "?", (tls.cipher() or ("?",))[0]
    except (OSError, ssl.SSLError) as e:
        raise PkiError(
            f"--tls13 --connect {host}:{port}: no TLS 1.3 handshake ({e}); point it at a "
            "native gRPC mTLS port (the gateway's, 127.0.0.1:50052)"
        ) from None
    return messages, version, cipher


def table(messages: list[Tls13Message], version: str, cipher: str) -> list[str]:
    out = [
        f" real {version} handshake ({cipher}), next to MTD/1's steps",
        f" {'sender':<7} {'TLS 1.3 message':<20} {'size':>6}  {'on the wire':<11} "
        f"{'classic step':<25} MTD/1",
    ]
    for m in messages:
        step, mtd = STEP.get(m.name, ("", ""))
        wire = "encrypted" if m.encrypted else "clear"
        out.append(f" {m.sender:<7} {m.name:<20} {m.size:>5}B  {wire:<11} {step:<25} {mtd}")
    hrr = sum(m.name == "ServerHello" for m in messages) > 1  # the first was a HelloRetryRequest
    out += [
        " what TLS 1.3 does differently:",
        "   - the key exchange rides in the hellos (key_share): everything after ServerHello "
        "is encrypted, certificates included; MTD/1 sends its certificates in the clear",
        "   - "
        + (
            "the server sent a HelloRetryRequest: the client's first key share did not suit it"
            if hrr
            else "no HelloRetryRequest: the server accepted the client's first key share; "
            "it would ask for another group with one (MTD/1 has a single group)"
        ),
        "   - both resume: the server's tickets (NewSessionTicket) allow a later handshake "
        "without certificates; MTD/1.1 does the same, keeping a fresh X25519 exchange and "
        "re-checking identity, expiry, status and trust (`mtlsdemo handshake --resume`)",
        "   - resumed, TLS 1.3's client sends its Finished last and may report success "
        "before the server judged it; in MTD/1.2 the client's Finished goes first and the "
        "client completes only on the server's (half a round trip more, never a success "
        "the server then refuses)",
    ]
    return out
