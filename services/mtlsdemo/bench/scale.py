"""``mtlsdemo bench scale``: many tunnels through one sidecar pair, opened in
bursts of simultaneous connects and held.

app (this process) -> client sidecar -> MTD/1 -> server sidecar -> TCP echo.
Every connection sends one byte at once; its latency is connect-to-first-byte
(the echo of that byte: the TCP connect, the MTD/1 handshake between the
sidecars, the dial to the echo and the way back). Bursts run one after another;
every tunnel stays open until the end, when each one carries one more byte (so
"held" means working, not just not closed). RSS per tunnel is each sidecar's
growth from before the first burst, divided by the tunnels held.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mtlsdemo.bench.servers import run_fast
from mtlsdemo.bench.sidecar import Proc, relay_pair, start_sidecar_pair
from mtlsdemo.bench.stats import summarize
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.sidecar.adminclient import AdminClient
from mtlsdemo.sidecar.server import raise_fd_limit

FIRST_BYTE_TIMEOUT = 30.0  # a tunnel not echoing within this is an error, not a number
FD_MARGIN = 2048  # listeners, admin, logs, the interpreter's own
SIDECAR_FD_MARGIN = 100  # a sidecar's own descriptors besides its tunnels' two each


class _Probe(asyncio.Protocol):
    """One app connection: sends a byte when connected, resolves ``reply`` on the echo."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reply: asyncio.Future[float] = loop.create_future()
        self.sent = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.ping()

    def ping(self) -> None:
        assert self.transport is not None
        if self.reply.done():
            self.reply = self.loop.create_future()
        self.sent = time.perf_counter()
        self.transport.write(b"x")

    def data_received(self, data: bytes) -> None:
        if not self.reply.done():
            self.reply.set_result(time.perf_counter())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.reply.done():
            self.reply.set_exception(ConnectionError(f"tunnel closed: {exc or 'EOF'}"))


async def _open(port: int, probes: list[_Probe], errors: list[str]) -> float | None:
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    try:
        _t, probe = await loop.create_connection(lambda: _Probe(loop), "127.0.0.1", port)
        got = await asyncio.wait_for(probe.reply, FIRST_BYTE_TIMEOUT)
    except (TimeoutError, OSError) as e:
        errors.append(f"{type(e).__name__}: {e}")
        return None
    probes.append(probe)
    return got - t0


async def _still_working(probes: list[_Probe], errors: list[str]) -> int:
    for p in probes:
        p.ping()
    results = await asyncio.gather(
        *(asyncio.wait_for(p.reply, FIRST_BYTE_TIMEOUT) for p in probes), return_exceptions=True
    )
    bad = [r for r in results if isinstance(r, BaseException)]
    errors.extend(f"held tunnel: {type(r).__name__}: {r}" for r in bad[:10])
    return len(results) - len(bad)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _active_sessions(admin: int) -> int:
    return int(AdminClient.local(admin, timeout=10).status()["active_sessions"])


def _handshakes_by_resumed(admin: int) -> dict[str, int]:
    """The client sidecar's successful handshakes, full and resumed (its /metrics)."""
    from mtlsdemo.telemetry import samples

    text = AdminClient.local(admin, timeout=10).metrics()
    out = {"full": 0, "resumed": 0}
    for sample in samples(text, ("mtls_handshakes_total",)):
        if sample.labels["result"] == "success":
            kind = "resumed" if sample.labels["resumed"] == "true" else "full"
            out[kind] += int(sample.value)
    return out


async def _drive(port: int, tunnels: int, burst: int, while_held: Any = None) -> dict[str, Any]:
    """``while_held``: called (in a thread) once every tunnel is open and has
    carried its last byte, before any closes (they close with this loop)."""
    probes: list[_Probe] = []
    errors: list[str] = []
    bursts = []
    opened = 0
    while opened < tunnels:
        size = min(burst, tunnels - opened)
        t0 = time.perf_counter()
        got = await asyncio.gather(*(_open(port, probes, errors) for _ in range(size)))
        wall = time.perf_counter() - t0
        ok = [x for x in got if x is not None]
        figs = summarize(ok) if ok else {"p50_ms": float("nan"), "p99_ms": float("nan")}
        bursts.append(
            {
                "size": size,
                "held_before": opened,
                "ok": len(ok),
                "p50_ms": figs["p50_ms"],
                "p99_ms": figs["p99_ms"],
                "max_ms": max(ok) * 1e3 if ok else float("nan"),
                "wall_s": wall,
            }
        )
        opened += size
    working = await _still_working(probes, errors)
    held = await asyncio.get_running_loop().run_in_executor(None, while_held or dict)
    for p in probes:
        assert p.transport is not None
        p.transport.close()
    return {"errors": errors, "bursts": bursts, "working": working, "held": held}


FLOOR_BURSTS = 3  # bursts through the bare relays: the floor is read from idle relays


def _floor(tunnels: int, burst: int) -> dict[str, Any]:
    """The same bursts through two bare asyncio relays (no handshake, no crypto, the
    sidecars' own loop) in front of the same echo: what any pair of Python proxies
    pays per connection, so the sidecars' figures read as a multiple of it."""
    echo = Proc([sys.executable, "-m", "mtlsdemo.bench.servers", "many-echo", "-"], lines=1)
    pair, port = relay_pair(int(echo.lines[0]))
    relays = {"first": pair[0].proc.pid, "second": pair[1].proc.pid}
    try:
        before = {k: _cpu_seconds(pid) for k, pid in relays.items()}
        driven = run_fast(_drive(port, tunnels, burst))
        after = {k: _cpu_seconds(pid) for k, pid in relays.items()}
    finally:
        for p in (*pair, echo):
            p.stop()
    bursts = driven["bursts"]
    return {
        "tunnels": tunnels,
        "errors": len(driven["errors"]),
        "bursts": bursts,
        f"burst_{burst}_p99_ms": bursts[0]["p99_ms"],
        "cpu_ms_per_tunnel_by_relay": {k: (after[k] - before[k]) * 1e3 / tunnels for k in relays},
        "method": (
            f"{tunnels} app connections in bursts of {burst} -> a bare asyncio relay -> "
            "another -> the same echo (Protocols, uvloop, no crypto)"
        ),
    }


def run(tunnels: int = 10_000, burst: int = 1000) -> dict[str, Any]:
    # this process holds one socket per tunnel, the client sidecar two: raise the
    # limits before the sidecars start, so they inherit them
    asked = tunnels
    soft, hard = raise_fd_limit(need=2 * tunnels + FD_MARGIN)
    fits = (soft - SIDECAR_FD_MARGIN) // 2 // 100 * 100
    if fits < 1:
        raise RuntimeError(
            f"open-files limit {soft} is too low for any tunnels: raise it (ulimit -n)"
        )
    tunnels = min(tunnels, fits)  # a limit the machine sets, said in the result
    out: dict[str, Any] = {
        "tunnels_target": tunnels,
        "tunnels_asked": asked,
        "capped_by": (
            f"open-files hard limit {hard} (2 per tunnel in the client sidecar; raising "
            "it needs CAP_SYS_RESOURCE)"
            if tunnels < asked
            else ""
        ),
        "burst": burst,
        "fd_limit": soft,
        "somaxconn": int(Path("/proc/sys/net/core/somaxconn").read_text()),
    }
    with tempfile.TemporaryDirectory() as tmp:
        certs = Path(tmp)
        bootstrap(BootstrapRequest(out=certs, services=("gateway", "ledger")))
        py = [sys.executable, "-m", "mtlsdemo.bench.servers"]
        echo = Proc(py + ["many-echo", str(certs)], lines=1)
        procs, route, admin = start_sidecar_pair(certs, int(echo.lines[0]))
        server_pid, client_pid = (p.proc.pid for p in procs)

        def while_held() -> dict[str, Any]:
            return {
                "rss": {"client": _rss_kib(client_pid), "server": _rss_kib(server_pid)},
                "cpu": {"client": _cpu_seconds(client_pid), "server": _cpu_seconds(server_pid)},
                "sidecar_active_sessions": _active_sessions(admin),
                "handshakes": _handshakes_by_resumed(admin),
            }

        try:
            before = {"client": _rss_kib(client_pid), "server": _rss_kib(server_pid)}
            cpu_before = {"client": _cpu_seconds(client_pid), "server": _cpu_seconds(server_pid)}
            driven = run_fast(_drive(route, tunnels, burst, while_held))
            after = driven["held"].pop("rss")
            cpu_after = driven["held"].pop("cpu")
            out.update(driven["held"])
            held = driven["working"]
        finally:
            for p in (*procs, echo):
                p.stop()
    bursts = driven["bursts"]
    floor = _floor(min(tunnels, FLOOR_BURSTS * burst), burst)  # after: the sidecars are gone
    per = {k: (after[k] - before[k]) / held if held else float("nan") for k in before}
    out.update(
        {
            "tunnels_held": held,
            "errors": len(driven["errors"]),
            "error_samples": driven["errors"][:10],
            "bursts": bursts,
            # the first burst meets idle sidecars; the worst shows the cost of what is held
            f"burst_{burst}_p99_ms": bursts[0]["p99_ms"],
            "worst_burst_p99_ms": max(b["p99_ms"] for b in bursts),
            "rss_per_tunnel_kib": (per["client"] + per["server"]) / 2,
            "rss_per_tunnel_kib_by_sidecar": per,
            # what bounds a burst: each sidecar's CPU per tunnel set up (one event loop each)
            "cpu_ms_per_tunnel_by_sidecar": {
                k: (cpu_after[k] - cpu_before[k]) * 1e3 / tunnels for k in cpu_before
            },
            "rss_kib_before": before,
            "rss_kib_after": after,
            "method": (
                f"{tunnels} app connections in bursts of {burst} simultaneous connects "
                "(asyncio, one process) -> client sidecar -> MTD/1 -> server sidecar -> "
                "asyncio TCP echo; latency from connect() to the echo of the first byte; "
                "every tunnel carries one more byte at the end"
            ),
            "floor": floor,
            # the first burst of each: both meet idle processes
            "burst_p99_vs_floor": bursts[0]["p99_ms"] / floor[f"burst_{burst}_p99_ms"],
            "fd_hard_limit": hard,
            "rlimit_nofile_now": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        }
    )
    return out


def table(results: dict[str, Any]) -> str:
    r = results
    capped = (
        f" (asked {r['tunnels_asked']}; capped by the {r['capped_by']})" if r["capped_by"] else ""
    )
    lines = [
        f"scale: {r['tunnels_held']} of {r['tunnels_target']} tunnels held and working{capped}, "
        f"{r['errors']} errors; RSS {r['rss_per_tunnel_kib']:.1f} KiB per tunnel per sidecar; "
        f"handshakes: {r['handshakes']['full']} full, {r['handshakes']['resumed']} resumed; "
        "CPU per tunnel: "
        + ", ".join(
            f"{k} sidecar {v:.2f} ms" for k, v in r["cpu_ms_per_tunnel_by_sidecar"].items()
        ),
        floor_line(r),
        "| burst | already held | ok | p50 ms | p99 ms | max ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for i, b in enumerate(r["bursts"], 1):
        lines.append(
            f"| {i} ({b['size']}) | {b['held_before']} | {b['ok']} | {b['p50_ms']:.1f} | "
            f"{b['p99_ms']:.1f} | {b['max_ms']:.1f} |"
        )
    return "\n".join(lines)


def floor_line(r: dict[str, Any]) -> str:
    """The sidecars' first burst against the bare relays' (one line, text and doc)."""
    f = r["floor"]
    p99 = f[f"burst_{r['burst']}_p99_ms"]
    cpu = ", ".join(f"{v:.2f}" for v in f["cpu_ms_per_tunnel_by_relay"].values())
    return (
        f"floor (the same bursts through two bare relays, no crypto): first-burst p99 "
        f"{p99:.0f} ms, CPU per tunnel {cpu} ms per relay; the sidecars' first burst is "
        f"{r['burst_p99_vs_floor']:.1f}x the floor's p99"
    )
