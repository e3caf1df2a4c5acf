"""One MTD/1 handshake as a client over TCP, in this process: what
``handshake --connect`` and ``break`` use to meet a running sidecar.

The Connection is sans-I/O; this is its smallest socket loop. A failure is kept,
not raised, so the caller can show who refused whom.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
from dataclasses import dataclass

from mtlsdemo.addresses import local
from mtlsdemo.endpoint import world
from mtlsdemo.handshake import Connection, HandshakeConfig, ProtocolError, Reason
from mtlsdemo.pki.errors import PkiError


@dataclass
class Attempt:
    conn: Connection
    sock: socket.socket
    error: ProtocolError | None
    hint: str = ""  # on a failure: what the port probably is, when it is no sidecar

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.error is None and self.conn.handshake_done:
                self.conn.close()
                self.sock.sendall(self.conn.data_to_send())
        self.sock.close()


def connect(host: str, port: int, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except OSError as e:  # refused, unknown host, timeout: the user's to fix, not a crash
        why = e.strerror or str(e) or type(e).__name__
        raise PkiError(
            f"{host}:{port}: cannot connect ({why}); is a sidecar listening there? "
            "(`make run` prints the ledger sidecar's address)"
        ) from None


def handshake(
    host: str,
    port: int,
    config: HandshakeConfig,
    now: dt.datetime | None = None,
    timeout: float = 5.0,
) -> Attempt:
    """Run the client side of one handshake; the socket stays open for data."""
    sock = connect(host, port, timeout)
    conn = world.connection("client", config, now)
    error: ProtocolError | None = None
    conn.start()
    first = b""
    try:
        sock.sendall(conn.data_to_send())
        while not conn.handshake_done:
            data = sock.recv(65536)
            first = first or data
            conn.receive_data(data)  # b"" (EOF) raises truncated, or the peer's alert
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
    except ProtocolError as e:
        error = e
        with contextlib.suppress(OSError):
            sock.sendall(conn.data_to_send())  # our alert, if we are the one refusing
    except OSError as e:  # reset or timeout: the peer ended it without an alert
        error = ProtocolError(
            Reason.TRUNCATED, f"connection ended: {e}", origin="remote_unverified"
        )
    return Attempt(conn, sock, error, wrong_port_hint(first) if error is not None else "")


SIDECAR = f"the ledger's sidecar speaks MTD/1 on the address `make run` prints ({local('ledger')})"


def wrong_port_hint(first: bytes) -> str:
    """What a port that failed an MTD/1 handshake probably is, from its first bytes."""
    if first.startswith(b"HTTP/"):
        return (
            f"this port speaks HTTP (the console, or a sidecar's admin port), not MTD/1; {SIDECAR}"
        )
    if first[:1] in (b"\x15", b"\x16") and first[1:2] == b"\x03":
        return (
            "this port answered in TLS (a native gRPC mTLS port, such as the gateway's "
            f"{local('gateway')}: see it with `mtlsdemo handshake --tls13`), not MTD/1; {SIDECAR}"
        )
    if not first:
        return (
            "the server closed without a word after our ClientHello, as a TLS or gRPC port "
            f"does (the gateway's {local('gateway')}?); {SIDECAR}"
        )
    return ""
