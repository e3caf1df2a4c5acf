"""Reference and subject servers for the handshake benchmark, each in its own
process: ``python -m mtlsdemo.bench.servers (mtd|openssl) CERT_DIR``.

Both are the simplest blocking loops: accept, complete a mutual handshake, send
one application byte (so the client knows the server verified *it*), close.
Prints the port on stdout, then serves until killed.
"""

from __future__ import annotations

import socket
import ssl
import sys
from pathlib import Path
from typing import Any

from mtlsdemo.endpoint import world
from mtlsdemo.handshake import SUITES, HandshakeComplete, ProtocolError


def _listener() -> socket.socket:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    print(srv.getsockname()[1], flush=True)
    return srv


def serve_mtd(cert_dir: Path, cache: bool = True, tickets: bool = False) -> None:
    import dataclasses

    from mtlsdemo.endpoint.identity import identity_config
    from mtlsdemo.handshake.tickets import TicketKeys

    cfg = identity_config(cert_dir, SUITES)
    if not cache:
        cfg.trust.cache_size = 0
        cfg.trust.statuses.size = 0
    if tickets:  # the resumption bench: uses enough for every sample from one ticket
        cfg = dataclasses.replace(cfg, tickets=TicketKeys(max_uses=1_000_000))
    srv = _listener()
    while True:
        sock, _ = srv.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = world.connection("server", cfg)
        try:
            done = False
            while not done:
                data = sock.recv(65536)
                if not data:
                    break
                for ev in conn.receive_data(data):
                    if isinstance(ev, HandshakeComplete):
                        conn.send_data(b"x")
                        done = True
                out = conn.data_to_send()
                if out:
                    sock.sendall(out)
        except (ProtocolError, OSError):
            pass
        finally:
            sock.close()


def serve_openssl(cert_dir: Path, tickets: bool = False) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
    ctx.load_verify_locations(cert_dir / "ca.crt")
    ctx.verify_mode = ssl.CERT_REQUIRED
    # full handshakes only, or one ticket per handshake for the resumption bench
    # (TLS 1.3 PSK with (EC)DHE: OpenSSL's default resumption mode)
    ctx.num_tickets = 1 if tickets else 0
    srv = _listener()
    while True:
        sock, _ = srv.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            with ctx.wrap_socket(sock, server_side=True) as tls:
                tls.sendall(b"x")
        except (ssl.SSLError, OSError):
            sock.close()


SINK_BUFFER = 256 * 1024


def _sink_conn(sock: socket.socket) -> None:
    # 8-byte length, then that many bytes; answer how many arrived (no EOF games:
    # TLS through Python's ssl has no half-close).
    head = b""
    while len(head) < 8:
        more = sock.recv(8 - len(head))
        if not more:
            return
        head += more
    want, total = int.from_bytes(head, "big"), 0
    # The fastest honest read: recv_into one reused buffer (an ssl socket returns at
    # most one 16 KiB record per call; recv(1 MiB) would allocate 1 MiB each time).
    buf = memoryview(bytearray(SINK_BUFFER))
    while total < want and (n := sock.recv_into(buf)):
        total += n
    sock.sendall(str(total).encode())


def serve_sink(cert_dir: Path, tls: bool = False) -> None:
    """Count the bytes of a bulk transfer and answer the count."""
    import threading

    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
        ctx.load_verify_locations(cert_dir / "ca.crt")
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.num_tickets = 0
    srv = _listener()

    def one(sock: socket.socket) -> None:
        try:
            if ctx is not None:
                with ctx.wrap_socket(sock, server_side=True) as tls_sock:
                    _sink_conn(tls_sock)
            else:
                with sock:
                    _sink_conn(sock)
        except (OSError, ssl.SSLError):
            pass

    while True:
        sock, _ = srv.accept()
        threading.Thread(target=one, args=(sock,), daemon=True).start()


def serve_grpc_echo(cert_dir: Path) -> None:
    """A gRPC echo on raw bytes, on a plaintext port and an mTLS port (printed in that order)."""
    import threading
    from concurrent import futures

    import grpc

    def echo(request: bytes, context: object) -> bytes:
        return request

    ident = lambda b: b  # noqa: E731
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo, ident, ident)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(16), handlers=[handler])
    plain = server.add_insecure_port("127.0.0.1:0")
    creds = grpc.ssl_server_credentials(
        [((cert_dir / "tls.key").read_bytes(), (cert_dir / "tls.crt").read_bytes())],
        root_certificates=(cert_dir / "ca.crt").read_bytes(),
        require_client_auth=True,
    )
    secure = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    print(plain, flush=True)
    print(secure, flush=True)
    threading.Event().wait()


def serve_relay(_cert_dir: Path, target: int) -> None:
    """A bare asyncio relay (Protocols, no crypto): the floor any Python proxy pays per hop."""
    import asyncio

    class Side(asyncio.Protocol):
        def __init__(self) -> None:
            self.t: asyncio.Transport | None = None
            self.peer: Side | None = None
            self.early: list[bytes] = []  # received before the other side connected

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport  # type: ignore[assignment]
            peer = self.peer
            if peer is not None and peer.t is not None:
                # the other side spoke first (gRPC's preface): hand on what it said.
                # (Buffering, not pause_reading() in connection_made: uvloop may
                # deliver data before a pause requested there takes effect.)
                for chunk in peer.early:
                    transport.write(chunk)  # type: ignore[attr-defined]
                peer.early.clear()

        def data_received(self, data: bytes) -> None:
            assert self.peer is not None
            if self.peer.t is None:
                self.early.append(data)
            else:
                self.peer.t.write(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.peer is not None and self.peer.t is not None:
                self.peer.t.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def factory() -> Side:
            a, b = Side(), Side()
            a.peer, b.peer = b, a
            loop.create_task(loop.create_connection(lambda: b, "127.0.0.1", target))
            return a

        srv = await loop.create_server(factory, "127.0.0.1", 0, backlog=4096)  # as a sidecar's
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    # the floor runs on the sidecars' own default loop (uvloop when installed), so
    # "what the sidecars add beyond bare relays" compares like with like
    run_fast(main())


def serve_echo(_cert_dir: Path) -> None:
    """A plain TCP echo (threads): the app for round-trip measurements."""
    import threading

    srv = _listener()

    def one(sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with sock:
            while data := sock.recv(65536):
                sock.sendall(data)

    while True:
        sock, _ = srv.accept()
        threading.Thread(target=one, args=(sock,), daemon=True).start()


def serve_many_echo(_cert_dir: Path) -> None:
    """A TCP echo for thousands of idle connections (one event loop, no thread per
    connection): the app behind the tunnels of ``bench scale``."""
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t: asyncio.Transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            self.t.write(data)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(Echo, "127.0.0.1", 0, backlog=4096)
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    run_fast(main())


def run_fast(main: Any) -> Any:
    """Run a coroutine on uvloop when installed (the sidecars' own default loop), so
    the bench's relays, echoes and load generator compare like with like."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        return asyncio.run(main)
    return uvloop.run(main)


if __name__ == "__main__":
    kinds = {
        "mtd": serve_mtd,
        "mtd-nocache": lambda d: serve_mtd(d, cache=False),
        "mtd-tickets": lambda d: serve_mtd(d, tickets=True),
        "openssl": serve_openssl,
        "openssl-tickets": lambda d: serve_openssl(d, tickets=True),
        "sink": serve_sink,
        "sink-tls": lambda d: serve_sink(d, tls=True),
        "grpc-echo": serve_grpc_echo,
        "echo": serve_echo,
        "many-echo": serve_many_echo,
        "relay": lambda d: serve_relay(d, int(sys.argv[3])),
    }
    kinds[sys.argv[1]](Path(sys.argv[2]))  # type: ignore[no-untyped-call]
