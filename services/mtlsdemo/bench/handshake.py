"""``mtlsdemo bench handshake``: full mutual handshakes per second and latency of
(a) MTD/1 in memory, (b) MTD/1 over loopback TCP, (c) OpenSSL TLS 1.3 mutual auth
through Python's ``ssl`` over loopback, for ECDSA P-256 and RSA-2048 certificates,
all in one run on the same certificates."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mtlsdemo.bench.stats import ratio, summarize
from mtlsdemo.endpoint import world
from mtlsdemo.endpoint.identity import identity_config
from mtlsdemo.handshake import (
    DataReceived,
    HandshakeConfig,
    parse_suites,
)
from mtlsdemo.handshake.tickets import TicketCache
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap


def _cfg(d: Path, suites: str | None = None) -> HandshakeConfig:
    # the sidecar's own checks, stapled status included: the figure is what a peer pays
    return identity_config(d, parse_suites(suites) if suites else None)


CLASSIC = "ECDHE-X25519-AES-256-GCM"
HYBRID = "X25519MLKEM768-AES-256-GCM"


def wire_bytes(client: HandshakeConfig, server: HandshakeConfig) -> dict[str, int]:
    """Bytes each way for one full handshake (records and headers included)."""
    c, s = world.connection("client", client), world.connection("server", server)
    c.start()
    sent = {"client_to_server": 0, "server_to_client": 0}
    for _ in range(3):
        for src, dst, way in ((c, s, "client_to_server"), (s, c, "server_to_client")):
            data = src.data_to_send()
            if data:
                sent[way] += len(data)
                dst.receive_data(data)
    assert c.handshake_done and s.handshake_done
    return {**sent, "total": sent["client_to_server"] + sent["server_to_client"]}


def in_memory(client: HandshakeConfig, server: HandshakeConfig, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        c, s = world.connection("client", client), world.connection("server", server)
        c.start()
        s.receive_data(c.data_to_send())
        c.receive_data(s.data_to_send())
        s.receive_data(c.data_to_send())
        s.send_data(b"x")
        c.receive_data(s.data_to_send())
        out.append(time.perf_counter() - t0)
    assert c.handshake_done
    return out


def mtd_loopback(client: HandshakeConfig, port: int, n: int, resumed: bool = False) -> list[float]:
    """``resumed``: the client holds a ticket from this server (its config's cache);
    every sample must be a resumption, or the figure would be a mix."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = world.connection("client", client)
        c.start()
        sock.sendall(c.data_to_send())
        got = False
        while not got:
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("server closed during the handshake")
            for ev in c.receive_data(data):
                got = got or isinstance(ev, DataReceived)
            pending = c.data_to_send()
            if pending:
                sock.sendall(pending)
        out.append(time.perf_counter() - t0)
        sock.close()
        if resumed and not (c.result and c.result.resumed):
            raise RuntimeError(f"a handshake was not resumed: {c.resumption}")
    return out


def openssl_loopback(cert_dir: Path, port: int, n: int, resumed: bool = False) -> list[float]:
    """``resumed``: each connection offers the newest session (ticket) from the one
    before, as a real client does; every sample after the first must be resumed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cert_dir / "ca.crt")
    ctx.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
    out = []
    session = None
    for i in range(n + (1 if resumed else 0)):
        t0 = time.perf_counter()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(sock, server_hostname="ledger", session=session) as tls:
            if tls.recv(1) != b"x":  # the server verified our certificate and answered
                raise RuntimeError("openssl server closed")
            if resumed:
                if i and not tls.session_reused:
                    raise RuntimeError("an OpenSSL handshake was not resumed")
                session = tls.session  # the ticket that came before the byte
        if i or not resumed:  # (the first, full, one only fetches the ticket)
            out.append(time.perf_counter() - t0)
    return out


class ServerProcess:
    def __init__(self, kind: str, cert_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mtlsdemo.bench.servers", kind, str(cert_dir)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout
        self.port = int(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run(n: int = 400, warmup: int = 40) -> dict[str, Any]:
    results: dict[str, Any] = {
        "n": n,
        "unit": "one full mutual handshake, client's view",
        "key_types": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for key_type in ("ecdsa-p256", "rsa-2048"):
            out = Path(tmp) / key_type
            bootstrap(BootstrapRequest(out=out, services=("gateway", "ledger"), key_type=key_type))
            # The OpenSSL reference is classic (the system OpenSSL has no ML-KEM), so the
            # rows compared with it offer classic X25519; the hybrid has its own rows.
            client, server = (
                _cfg(out / "gateway", CLASSIC),
                _cfg(out / "ledger", f"{HYBRID},{CLASSIC},RSA-OAEP-AES-256-GCM"),
            )
            hybrid = _cfg(out / "gateway", HYBRID)
            figures: dict[str, Any] = {}
            in_memory(client, server, warmup)
            in_memory(hybrid, server, warmup)
            classic_s, hybrid_s = [], []
            for _ in range(4):  # interleaved, like the loopback rows
                classic_s += in_memory(client, server, n // 4)
                hybrid_s += in_memory(hybrid, server, n // 4)
            figures["mtd_in_memory"] = summarize(classic_s)
            figures["mtd_in_memory_hybrid"] = summarize(hybrid_s)
            figures["wire_bytes"] = {
                CLASSIC: wire_bytes(client, server),
                HYBRID: wire_bytes(hybrid, server),
            }
            if key_type.startswith("rsa"):
                rsa_client = _cfg(out / "gateway", "RSA-OAEP-AES-256-GCM")
                in_memory(rsa_client, server, warmup)
                figures["mtd_in_memory_rsa_oaep"] = summarize(in_memory(rsa_client, server, n))
            # Without the chain-verification cache: every handshake verifies the
            # whole chain, exactly as the OpenSSL reference does.
            nocache = _cfg(out / "gateway", CLASSIC)
            nocache.trust.cache_size = 0
            nocache.trust.statuses.size = 0  # the status verdicts too: like for like
            # Resumption: a client with a ticket cache; the first handshake is full
            # and fills it, every measured one resumes.
            resuming = dataclasses.replace(
                _cfg(out / "gateway", CLASSIC), ticket_cache=TicketCache(), ticket_peer="ledger"
            )
            mtd = ServerProcess("mtd", out / "ledger")
            mtd_nc = ServerProcess("mtd-nocache", out / "ledger")
            mtd_t = ServerProcess("mtd-tickets", out / "ledger")
            ossl = ServerProcess("openssl", out / "ledger")
            ossl_t = ServerProcess("openssl-tickets", out / "ledger")
            gw = out / "gateway"
            try:
                mtd_loopback(client, mtd.port, warmup)
                mtd_loopback(nocache, mtd_nc.port, warmup)
                mtd_loopback(resuming, mtd_t.port, 1)  # the full one: fetches the ticket
                mtd_loopback(resuming, mtd_t.port, warmup, resumed=True)
                openssl_loopback(gw, ossl.port, warmup)
                openssl_loopback(gw, ossl_t.port, warmup, resumed=True)
                # interleave so drift in machine load hits every mode equally
                a, b, c, d, e = [], [], [], [], []
                for _ in range(4):
                    a += mtd_loopback(client, mtd.port, n // 4)
                    c += mtd_loopback(nocache, mtd_nc.port, n // 4)
                    b += openssl_loopback(gw, ossl.port, n // 4)
                    d += mtd_loopback(resuming, mtd_t.port, n // 4, resumed=True)
                    e += openssl_loopback(gw, ossl_t.port, n // 4, resumed=True)
                figures["mtd_loopback"] = summarize(a)
                figures["mtd_loopback_no_verify_cache"] = summarize(c)
                figures["openssl_tls13_loopback"] = summarize(b)
                figures["mtd_loopback_resumed"] = summarize(d)
                figures["openssl_tls13_resumed"] = summarize(e)
            finally:
                for p in (mtd, mtd_nc, mtd_t, ossl, ossl_t):
                    p.stop()
            figures["ratios"] = {
                "mtd_loopback_p50_vs_openssl": ratio(
                    figures["mtd_loopback"]["p50_ms"], figures["openssl_tls13_loopback"]["p50_ms"]
                ),
                "mtd_loopback_p99_vs_openssl": ratio(
                    figures["mtd_loopback"]["p99_ms"], figures["openssl_tls13_loopback"]["p99_ms"]
                ),
                "mtd_loopback_rate_vs_openssl": ratio(
                    figures["mtd_loopback"]["per_second"],
                    figures["openssl_tls13_loopback"]["per_second"],
                ),
                "mtd_loopback_no_cache_p50_vs_openssl": ratio(
                    figures["mtd_loopback_no_verify_cache"]["p50_ms"],
                    figures["openssl_tls13_loopback"]["p50_ms"],
                ),
                "mtd_resumed_p50_vs_openssl_resumed": ratio(
                    figures["mtd_loopback_resumed"]["p50_ms"],
                    figures["openssl_tls13_resumed"]["p50_ms"],
                ),
                "mtd_in_memory_p50_vs_openssl_loopback": ratio(
                    figures["mtd_in_memory"]["p50_ms"], figures["openssl_tls13_loopback"]["p50_ms"]
                ),
                # the post-quantum price, same run, same identities (moonshot: <= 1.2x)
                "hybrid_in_memory_p50_vs_classic": ratio(
                    figures["mtd_in_memory_hybrid"]["p50_ms"], figures["mtd_in_memory"]["p50_ms"]
                ),
            }
            results["key_types"][key_type] = figures
        # ML-DSA-65 identities (CA and leaves) with the hybrid: quantum-safe both ways
        out = Path(tmp) / "ml-dsa-65"
        bootstrap(
            BootstrapRequest(
                out=out,
                services=("gateway", "ledger"),
                key_type="ml-dsa-65",
                ca_key_type="ml-dsa-65",
            )
        )
        pq_c, pq_s = _cfg(out / "gateway", HYBRID), _cfg(out / "ledger", HYBRID)
        in_memory(pq_c, pq_s, warmup)
        pq = summarize(in_memory(pq_c, pq_s, n))
        results["key_types"]["ml-dsa-65"] = {
            "mtd_in_memory_hybrid": pq,
            "wire_bytes": {HYBRID: wire_bytes(pq_c, pq_s)},
            "ratios": {
                "mldsa_hybrid_in_memory_p50_vs_ecdsa_classic": ratio(
                    pq["p50_ms"], results["key_types"]["ecdsa-p256"]["mtd_in_memory"]["p50_ms"]
                ),
            },
        }
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        f"full mutual handshakes, n={results['n']} each (client's view; loopback servers "
        "in their own process)",
        f"{'key type':<11} {'mode':<32} {'p50 ms':>8} {'p99 ms':>8} {'per s':>8}",
    ]
    for kt, figs in results["key_types"].items():
        for mode, f in figs.items():
            if mode in ("ratios", "wire_bytes"):
                continue
            lines.append(
                f"{kt:<11} {mode:<32} {f['p50_ms']:>8.3f} {f['p99_ms']:>8.3f} "
                f"{f['per_second']:>8.0f}"
            )
        for name, value in figs["ratios"].items():
            lines.append(f"{kt:<11}   ratio {name:<36} {value:>6.2f}x")
        for suite, w in figs.get("wire_bytes", {}).items():
            lines.append(
                f"{kt:<11}   bytes {suite:<36} {w['total']:>6} (c->s {w['client_to_server']}, s->c {w['server_to_client']})"
            )
    return "\n".join(lines)
