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

from mtlsdemo.handshake import SUITES, Connection, HandshakeComplete, HandshakeConfig, ProtocolError


def _listener() -> socket.socket:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    print(srv.getsockname()[1], flush=True)
    return srv


def serve_mtd(cert_dir: Path, cache: bool = True) -> None:
    cfg = HandshakeConfig.from_pem((cert_dir / "tls.crt").read_bytes(),
                                   (cert_dir / "tls.key").read_bytes(),
                                   (cert_dir / "ca.crt").read_bytes(), suites=SUITES)
    if not cache:
        cfg.trust.cache_size = 0
    srv = _listener()
    while True:
        sock, _ = srv.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection("server", cfg)
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


def serve_openssl(cert_dir: Path) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
    ctx.load_verify_locations(cert_dir / "ca.crt")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.num_tickets = 0  # no resumption on either side: full handshakes only
    srv = _listener()
    while True:
        sock, _ = srv.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            with ctx.wrap_socket(sock, server_side=True) as tls:
                tls.sendall(b"x")
        except (ssl.SSLError, OSError):
            sock.close()


if __name__ == "__main__":
    kinds = {"mtd": serve_mtd, "mtd-nocache": lambda d: serve_mtd(d, cache=False),
             "openssl": serve_openssl}
    kinds[sys.argv[1]](Path(sys.argv[2]))
