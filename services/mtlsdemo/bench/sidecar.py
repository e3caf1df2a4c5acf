"""``mtlsdemo bench sidecar``: what the sidecar path costs, against references
measured in the same run.

- gRPC unary calls (100 B and 64 KiB), sequential and 8 concurrent callers, for
  (a) plaintext gRPC, (b) direct gRPC mTLS, (c) through two sidecars (MTD/1);
- bulk throughput through the tunnel, against a Python ``ssl`` TLS 1.3 socket
  moving the same bytes.

Servers (the gRPC echo, the byte sinks, both sidecars) run in their own
processes; the callers run here.
"""

from __future__ import annotations

import importlib.util
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from mtlsdemo.addresses import free_port
from mtlsdemo.bench.servers import SINK_BUFFER
from mtlsdemo.bench.stats import ratio, spread, summarize
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.sidecar.adminclient import AdminClient
from mtlsdemo.trust.spiffe import DEFAULT_TRUST_DOMAIN, workload_id

BULK_RUNS = 5
ident = lambda b: b  # noqa: E731
LEDGER_ID = workload_id(DEFAULT_TRUST_DOMAIN, "default", "ledger")
GATEWAY_ID = workload_id(DEFAULT_TRUST_DOMAIN, "default", "gateway")


class Proc:
    def __init__(self, argv: list[str], lines: int = 0) -> None:
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout
        self.lines = [self.proc.stdout.readline().strip() for _ in range(lines)]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def relay_pair(target: int) -> tuple[list[Proc], int]:
    """Two bare asyncio relays in a row in front of ``target`` (no crypto: the floor
    any pair of Python proxies pays): the processes, and the first relay's port."""
    py = [sys.executable, "-m", "mtlsdemo.bench.servers"]
    second = Proc(py + ["relay", "-", str(target)], lines=1)
    first = Proc(py + ["relay", "-", second.lines[0]], lines=1)
    return [first, second], int(first.lines[0])


def _wait_ready(admin: int) -> None:
    AdminClient.local(admin, timeout=1).wait_ready(10)


def start_sidecar_pair(certs: Path, target: int) -> tuple[list[Proc], int, int]:
    inbound, route, a1, a2 = (free_port() for _ in range(4))
    py = [sys.executable, "-m", "mtlsdemo", "--log-level", "warning", "sidecar"]
    server = Proc(
        py
        + [
            "--identity-dir",
            str(certs / "ledger"),
            "--inbound-listen",
            f"127.0.0.1:{inbound}",
            "--inbound-target",
            f"127.0.0.1:{target}",
            "--allow-id",
            GATEWAY_ID,
            "--admin-listen",
            f"127.0.0.1:{a1}",
        ]
    )
    client = Proc(
        py
        + [
            "--identity-dir",
            str(certs / "gateway"),
            "--route",
            f"127.0.0.1:{route}=127.0.0.1:{inbound}@{LEDGER_ID}",
            "--admin-listen",
            f"127.0.0.1:{a2}",
        ]
    )
    _wait_ready(a1)
    _wait_ready(a2)
    return [server, client], route, a2


def _calls(call: Callable[..., bytes], payload: bytes, n: int, concurrency: int) -> list[float]:
    def one(_: int) -> float:
        t0 = time.perf_counter()
        if call(payload, timeout=30) != payload:
            raise RuntimeError("echo mismatch")
        return time.perf_counter() - t0

    if concurrency == 1:
        return [one(0) for _ in range(n)]
    with futures.ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(n)))


def _throughput_calls(
    call: Callable[..., bytes], payload: bytes, n: int, concurrency: int
) -> float:
    t0 = time.perf_counter()
    _calls(call, payload, n, concurrency)
    return n / (time.perf_counter() - t0)


def _bulk(send: Callable[[int], int], total: int) -> float:
    t0 = time.perf_counter()
    got = send(total)
    elapsed = time.perf_counter() - t0
    if got != total:
        raise RuntimeError(f"sink got {got} of {total} bytes")
    return total / elapsed / 1e6


def _push(sock: socket.socket, total: int) -> int:
    """The sink's protocol: an 8-byte length, the bytes, then it answers the count."""
    chunk = b"\x5a" * (256 * 1024)
    sock.sendall(total.to_bytes(8, "big"))
    left = total
    while left:
        n = min(left, len(chunk))
        sock.sendall(chunk[:n])
        left -= n
    return int(sock.recv(64) or b"0")


def _send_plain(port: int) -> Callable[[int], int]:
    def send(total: int) -> int:
        with socket.create_connection(("127.0.0.1", port)) as s:
            return _push(s, total)

    return send


def _send_tls(port: int, certs: Path) -> Callable[[int], int]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(certs / "gateway" / "ca.crt")
    ctx.load_cert_chain(certs / "gateway" / "tls.crt", certs / "gateway" / "tls.key")

    def send(total: int) -> int:
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            ctx.wrap_socket(raw, server_hostname="ledger") as s,
        ):
            return _push(s, total)

    return send


def _rtt(port: int, n: int) -> list[float]:
    out = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            t0 = time.perf_counter()
            s.sendall(b"x" * 100)
            got = 0
            while got < 100:
                data = s.recv(1000)
                if not data:  # the other side closed: a bench bug, not a number
                    raise RuntimeError(f"127.0.0.1:{port} closed during the ping-pong")
                got += len(data)
            out.append(time.perf_counter() - t0)
    return out


def _round_trips(certs: Path, py: list[str], n: int) -> dict[str, Any]:
    """100-byte TCP ping-pong: direct, through two bare asyncio relays (no crypto:
    the floor of any Python proxy pair), and through the two sidecars."""
    echo = Proc(py + ["echo", str(certs)], lines=1)
    port = int(echo.lines[0])
    relays, relay_port = relay_pair(port)
    procs, route, _admin = start_sidecar_pair(certs, port)
    ports = {"direct": port, "bare_asyncio_relay_pair": relay_port, "through_sidecars": route}
    try:
        for port_ in ports.values():
            _rtt(port_, 100)
        samples: dict[str, list[float]] = {k: [] for k in ports}
        for _ in range(4):
            for k, port_ in ports.items():
                samples[k] += _rtt(port_, n // 4)
        out: dict[str, Any] = {k: summarize(v) for k, v in samples.items()}
        out["relay_loop"] = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
        out["sidecars_added_p50_ms"] = round(
            out["through_sidecars"]["p50_ms"] - out["direct"]["p50_ms"], 3
        )
        out["bare_relays_added_p50_ms"] = round(
            out["bare_asyncio_relay_pair"]["p50_ms"] - out["direct"]["p50_ms"], 3
        )
        out["ratio_sidecars_vs_bare_relays_added"] = ratio(
            out["sidecars_added_p50_ms"], out["bare_relays_added_p50_ms"]
        )
        return out
    finally:
        for p in (*procs, *relays, echo):
            p.stop()


def run(n: int = 400) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n, "unary": {}, "bulk": {}}
    with tempfile.TemporaryDirectory() as tmp:
        certs = Path(tmp)
        bootstrap(BootstrapRequest(out=certs, services=("gateway", "ledger")))
        py = [sys.executable, "-m", "mtlsdemo.bench.servers"]
        echo = Proc(py + ["grpc-echo", str(certs / "ledger")], lines=2)
        plain_port, tls_port = (int(x) for x in echo.lines)
        procs, route, _admin = start_sidecar_pair(certs, plain_port)
        # the floor: the same two hops through crypto-free asyncio relays
        bare, relay_port = relay_pair(plain_port)
        procs += bare
        channels = {
            "plaintext_grpc": grpc.insecure_channel(f"127.0.0.1:{plain_port}"),
            "direct_grpc_mtls": grpc.secure_channel(
                f"127.0.0.1:{tls_port}",
                grpc.ssl_channel_credentials(
                    (certs / "gateway" / "ca.crt").read_bytes(),
                    (certs / "gateway" / "tls.key").read_bytes(),
                    (certs / "gateway" / "tls.crt").read_bytes(),
                ),
                options=[("grpc.ssl_target_name_override", "ledger")],
            ),
            "through_bare_relays": grpc.insecure_channel(f"127.0.0.1:{relay_port}"),
            "through_sidecars": grpc.insecure_channel(f"127.0.0.1:{route}"),
        }
        calls = {
            k: ch.unary_unary(
                "/bench.Echo/Echo", request_serializer=ident, response_deserializer=ident
            )
            for k, ch in channels.items()
        }
        try:
            for size_name, payload in (("100B", b"x" * 100), ("64KiB", b"y" * 65536)):
                for conc in (1, 8):
                    key = f"{size_name}_{'sequential' if conc == 1 else 'concurrency8'}"
                    figs: dict[str, Any] = {}
                    for call in calls.values():
                        _calls(call, payload, 50, conc)  # warm the connection
                    samples: dict[str, list[float]] = {m: [] for m in calls}
                    rates: dict[str, list[float]] = {m: [] for m in calls}
                    for _ in range(4):  # interleave modes so load drift hits all equally
                        for mode, call in calls.items():
                            t0 = time.perf_counter()
                            samples[mode] += _calls(call, payload, n // 4, conc)
                            rates[mode].append((n // 4) / (time.perf_counter() - t0))
                    for mode in calls:
                        figs[mode] = summarize(samples[mode])
                        figs[mode]["calls_per_second"] = sum(rates[mode]) / len(rates[mode])
                    figs["bare_relays_added_p50_ms_vs_plaintext"] = round(
                        figs["through_bare_relays"]["p50_ms"] - figs["plaintext_grpc"]["p50_ms"], 3
                    )
                    figs["sidecar_added_p50_ms_vs_direct_mtls"] = round(
                        figs["through_sidecars"]["p50_ms"] - figs["direct_grpc_mtls"]["p50_ms"], 3
                    )
                    figs["ratio_p50_sidecars_vs_direct_mtls"] = ratio(
                        figs["through_sidecars"]["p50_ms"], figs["direct_grpc_mtls"]["p50_ms"]
                    )
                    figs["ratio_rate_sidecars_vs_direct_mtls"] = ratio(
                        figs["through_sidecars"]["calls_per_second"],
                        figs["direct_grpc_mtls"]["calls_per_second"],
                    )
                    out["unary"][key] = figs
        finally:
            for ch in channels.values():
                ch.close()
            for p in procs:
                p.stop()
            echo.stop()

        out["tcp_round_trip"] = _round_trips(certs, py, n * 2)
        out["record_path"] = _record_path(certs)

        sink = Proc(py + ["sink", str(certs / "ledger")], lines=1)
        sink_tls = Proc(py + ["sink-tls", str(certs / "ledger")], lines=1)
        procs, route, admin = start_sidecar_pair(certs, int(sink.lines[0]))
        # the hops alone: the same sender and sink through two crypto-free relays
        # (what any pair of proxy processes costs before any cryptography)
        hops, relay_port = relay_pair(int(sink.lines[0]))
        procs += hops
        try:
            total = 256 * 1024 * 1024
            tunnel, reference = _send_plain(route), _send_tls(int(sink_tls.lines[0]), certs)
            relays = _send_plain(relay_port)
            for send in (tunnel, reference, relays):
                _bulk(send, 16 << 20)
            t_rates, r_rates, b_rates = [], [], []
            for _ in range(BULK_RUNS):  # interleaved, so drift hits all alike
                t_rates.append(_bulk(tunnel, total))
                r_rates.append(_bulk(reference, total))
                b_rates.append(_bulk(relays, total))
            t, r_, b = spread(t_rates), spread(r_rates), spread(b_rates)
            out["bulk"] = {
                "bytes_per_run": total,
                "tunnel_MBps": t["median"],
                "tunnel_MBps_spread": t,
                "python_ssl_tls13_MBps": r_["median"],
                "python_ssl_tls13_MBps_spread": r_,
                "ratio_tunnel_vs_ssl": ratio(t["median"], r_["median"]),
                "bare_relays_MBps": b["median"],
                "bare_relays_MBps_spread": b,
                "ratio_tunnel_vs_bare_relays": ratio(t["median"], b["median"]),
                "method": {
                    "tunnel": "app -> client sidecar -> MTD/1 -> server sidecar -> sink on "
                    "127.0.0.1; sender sendall() of 256 KiB chunks",
                    "reference": "Python ssl TLS 1.3 with mutual auth, same sender; both sinks "
                    f"read with recv_into() on one reused {SINK_BUFFER >> 10} KiB buffer",
                    "bare_relays": "app -> two crypto-free asyncio relays (the sidecars' "
                    "event loop) -> the tunnel's sink: the cost of the two extra hops alone",
                    "figure": f"median of {BULK_RUNS} interleaved runs (min and max in *_spread)",
                },
            }
            status = AdminClient.local(admin, timeout=10).status()
            out["bulk"]["client_sidecar_handshakes"] = status["handshakes"]
        finally:
            for p in (*procs, sink, sink_tls):
                p.stop()
    return out


def _record_path(certs: Path, batches: int = 15, per_batch: int = 2000) -> dict[str, Any]:
    """One 100 B record sealed by one Connection and opened by its peer, in this
    process (no socket): the share of a sidecar hop that is the core's own work.
    Per batch the mean; the figure is the median of the batches."""
    import datetime as dt

    from mtlsdemo.endpoint.identity import identity_config
    from mtlsdemo.endpoint.memory import handshake_in_memory
    from mtlsdemo.handshake import build

    c, s, error = handshake_in_memory(
        identity_config(certs / "gateway"),
        identity_config(certs / "ledger"),
        dt.datetime.now(dt.UTC),
    )
    if error is not None:
        raise RuntimeError(f"record path: the in-memory handshake failed: {error}")
    payload, means = b"x" * 100, []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(per_batch):
            c.send_data(payload)
            s.receive_data(b"".join(c.data_to_send_parts()))
        means.append((time.perf_counter() - t0) / per_batch * 1e6)
    figs = spread(means)
    return {
        "build": build(),
        "us_per_100B_record": figs["median"],
        "us_per_100B_record_spread": figs,
        "method": f"send_data + data_to_send_parts + the peer's receive_data of one 100 B "
        f"record, in process; median of {batches} batches of {per_batch}",
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        f"gRPC unary echo, n={results['n']} per cell (callers here; servers and sidecars in "
        "their own processes)",
        f"{'case':<24} {'mode':<20} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>9}",
    ]
    for case, figs in results["unary"].items():
        for mode in (
            "plaintext_grpc",
            "direct_grpc_mtls",
            "through_bare_relays",
            "through_sidecars",
        ):
            f = figs[mode]
            lines.append(
                f"{case:<24} {mode:<20} {f['p50_ms']:>8.3f} {f['p99_ms']:>8.3f} "
                f"{f['calls_per_second']:>9.0f}"
            )
        lines.append(
            f"{case:<24}   sidecars add {figs['sidecar_added_p50_ms_vs_direct_mtls']:+.3f} ms "
            f"p50 vs direct mTLS; p50 ratio {figs['ratio_p50_sidecars_vs_direct_mtls']:.2f}x, "
            f"rate ratio {figs['ratio_rate_sidecars_vs_direct_mtls']:.2f}x; crypto-free relays "
            f"alone add {figs['bare_relays_added_p50_ms_vs_plaintext']:+.3f} ms"
        )
    rt = results["tcp_round_trip"]
    lines.append(
        f"TCP 100 B ping-pong p50: direct {rt['direct']['p50_ms']:.3f} ms, bare "
        f"{rt.get('relay_loop', 'asyncio')} relay pair "
        f"{rt['bare_asyncio_relay_pair']['p50_ms']:.3f} ms, sidecars "
        f"{rt['through_sidecars']['p50_ms']:.3f} ms; sidecars add {rt['sidecars_added_p50_ms']:.3f} ms "
        f"= {rt['ratio_sidecars_vs_bare_relays_added']:.2f}x what two crypto-free relays add"
    )
    b = results["bulk"]
    lines.append(
        f"bulk {b['bytes_per_run'] >> 20} MiB, median of {b['tunnel_MBps_spread']['runs']}: "
        f"tunnel {b['tunnel_MBps']:.0f} MB/s ({b['tunnel_MBps_spread']['min']:.0f}-"
        f"{b['tunnel_MBps_spread']['max']:.0f}), Python ssl TLS 1.3 (recv_into) "
        f"{b['python_ssl_tls13_MBps']:.0f} MB/s ({b['python_ssl_tls13_MBps_spread']['min']:.0f}-"
        f"{b['python_ssl_tls13_MBps_spread']['max']:.0f}), ratio {b['ratio_tunnel_vs_ssl']:.2f}x"
    )
    return "\n".join(lines)
