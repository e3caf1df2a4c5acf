"""`mtlsdemo capture`: one pcapng of the running local mesh with every hop of the same
calls in it (the app and its sidecar in plaintext, the sidecars in MTD/1, the gateway's
TLS 1.3), a key log beside it for the MTD/1 sessions, and a Python-``ssl`` TLS 1.3 call
whose secrets are embedded in the file (Wireshark decrypts it with no setting).

The capture itself is a real tool's (``dumpcap`` from Wireshark, or ``tcpdump``), on
the loopback interface, filtered to the mesh's ports."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from mtlsdemo.addresses import parse_hostport
from mtlsdemo.mesh.client import LocalMesh, MeshConfig
from mtlsdemo.waiting import WaitTimeout, wait_until
from mtlsdemo.wire.errors import CaptureError
from mtlsdemo.wire.pcapread import has_marker, segments
from mtlsdemo.wire.tables import dissector_path

STARTUP_TIMEOUT = 10.0  # for the capture tool to say it is listening


@dataclass(frozen=True)
class CaptureConfig:
    """`mtlsdemo capture`, typed."""

    mesh: MeshConfig
    seconds: float = 5.0
    out: Path = Path("mesh.pcapng")
    interface: str = "lo"


@dataclass(frozen=True)
class Hop:
    """One hop of the mesh the capture filters on: its port and what travels there."""

    port: int
    kind: str  # "plaintext", "mtd" or "tls"
    what: str
    # which hop, as code asks for it: "caller" (cli -> gateway), "gateway-in" (the
    # gateway's sidecar to the gateway, MTD/1 transport), "gateway-app" (the gateway to
    # its sidecar), "mesh" (sidecar to sidecar), "ledger-app" (the ledger's sidecar to it)
    name: str = ""


@dataclass
class Capture:
    """What the capture holds, for the summary."""

    out: Path
    keys: Path
    packets: int
    hops: list[Hop]
    calls: list[str]
    account: str
    mtd_sessions_keyed: bool
    tls_call: bool
    closed: int = 0  # sessions ended before the window (their next handshakes are in it)
    probe_port: int = 0  # the capture's own UDP start/end markers
    # the hops (ports) whose packets carry the account name in clear, read back from the file
    name_seen_on: tuple[int, ...] = ()
    notes: list[str] = field(default_factory=list)


def keys_path(out: Path) -> Path:
    """The key log beside a capture: ``FILE.keys`` for ``FILE.pcapng``."""
    return out.with_suffix(".keys")


def hops(mesh: LocalMesh) -> tuple[list[Hop], list[Path]]:
    """The mesh's hops, read from the sidecars' own /status, and their key logs."""
    cfg = mesh.config
    try:
        gw, ld = mesh.status(cfg.gateway_admin), mesh.status(cfg.ledger_admin)
    except (OSError, urllib.error.URLError, ValueError):
        raise CaptureError(
            f"no mesh answers on the sidecars' admin ports {cfg.gateway_admin[1]} and "
            f'{cfg.ledger_admin[1]}: start one with `make run ARGS="--keylog sidecars.keys"` '
            "(or pass --gateway-admin/--ledger-admin)"
        ) from None
    out: list[Hop] = []
    if cfg.transport == "mtd" or gw.get("inbound"):
        port = parse_hostport(gw["inbound"]["listen"])[1]
        out.append(
            Hop(
                port,
                "mtd",
                "cli -> gateway-sidecar: MTD/1 (the caller's in-process sidecar)",
                "caller",
            )
        )
        out.append(
            Hop(
                parse_hostport(gw["inbound"]["target"])[1],
                "plaintext",
                "gateway-sidecar -> gateway: plaintext gRPC (a sidecar and its app, on loopback)",
                "gateway-in",
            )
        )
    else:
        out.append(
            Hop(
                cfg.gateway[1],
                "tls",
                "cli -> gateway: TLS 1.3 (grpcio writes no key log: its hellos are readable, "
                "the rest is not) and one call over Python's ssl (its keys are in the file)",
                "caller",
            )
        )
    for route in gw.get("routes", []):
        out.append(
            Hop(
                parse_hostport(route["listen"])[1],
                "plaintext",
                "gateway -> gateway-sidecar: plaintext gRPC (an app and its own sidecar, on loopback)",
                "gateway-app",
            )
        )
    if ld.get("inbound"):
        out.append(
            Hop(
                parse_hostport(ld["inbound"]["listen"])[1],
                "mtd",
                "gateway-sidecar == MTD/1 ==> ledger-sidecar: encrypted records (the key log opens them)",
                "mesh",
            )
        )
        out.append(
            Hop(
                parse_hostport(ld["inbound"]["target"])[1],
                "plaintext",
                "ledger-sidecar -> ledger: plaintext gRPC (a sidecar and its app, on loopback)",
                "ledger-app",
            )
        )
    keylogs = [Path(s["keylog"]["path"]) for s in (gw, ld) if s.get("keylog")]
    return out, keylogs


def capture_tool() -> str:
    """dumpcap (Wireshark's) or tcpdump, whichever is installed, or why neither is."""
    for name in ("dumpcap", "tcpdump"):
        if shutil.which(name):
            return name
    raise CaptureError("no capture tool: install dumpcap (Debian: `apt install tshark`) or tcpdump")


def _argv(tool: str, interface: str, bpf: str, path: Path) -> list[str]:
    if tool == "dumpcap":
        return ["dumpcap", "-i", interface, "-f", bpf, "-w", str(path)]
    return ["tcpdump", "-i", interface, "-U", "-n", "-w", str(path), bpf]


class Recorder:
    """The capture tool as a child process: started, seen capturing, stopped with every
    packet written. Readiness and the end are proven, not waited for: a UDP datagram to a
    port of our own (in the filter) is sent until it is in the file, at the start and
    again at the end (the tool writes in order, so all before it is there too)."""

    def __init__(self, interface: str, bpf: str, path: Path) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            self.probe = s.getsockname()  # a port nobody listens on: the probe goes nowhere
        self.path = path
        self.argv = _argv(capture_tool(), interface, f"({bpf}) or (udp port {self.probe[1]})", path)
        self.name = self.argv[0]
        self.interface = interface
        self.lines: list[str] = []
        self._listening = threading.Event()
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._listening.wait(STARTUP_TIMEOUT) or not self._mark(b"start"):
            self.proc.kill()
            self._reader.join(5)
            said = next((ln for ln in reversed(self.lines) if ln.strip()), "no output")
            raise CaptureError(
                f"{self.name} cannot capture on {interface}: {said.strip()}; capturing needs "
                "root or the capture capability (Debian: `sudo dpkg-reconfigure "
                "wireshark-common` and join the wireshark group)"
            )

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if "Capturing on" in line or "listening on" in line:
                self._listening.set()
        self._listening.set()  # ended: the caller looks at the exit status

    def _mark(self, what: bytes) -> bool:
        """Send the probe until the tool has written it (bounded); False if it never does."""
        marker = b"mtlsdemo-capture-" + what
        deadline = time.monotonic() + STARTUP_TIMEOUT
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while time.monotonic() < deadline and self.proc.poll() is None:
                s.sendto(marker, self.probe)
                try:
                    wait_until(
                        lambda: has_marker(self.path, marker),
                        timeout=0.5,
                        interval=0.02,
                        what=f"{self.name} to write its probe",
                    )
                except WaitTimeout:
                    continue  # lost before the tool was capturing: send it again
                return True
        return False

    def stop(self) -> int:
        if self.proc.poll() is None:
            self._mark(b"end")
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        for line in self.lines:  # dumpcap: "Packets captured: N"; tcpdump: "N packets captured"
            words = line.replace(":", " ").split()
            if "captured" in words and "received" not in words:
                numbers = [int(w) for w in words if w.isdigit()]
                if numbers:
                    return numbers[0]
        return -1


def close_sessions(admins: list[tuple[str, int]]) -> int:
    """Ask each key-logging sidecar to end its sessions: their next handshake is then in
    the capture (a session can be decrypted only from its handshake on, as with TLS)."""
    closed = 0
    for host, port in admins:
        req = urllib.request.Request(f"http://{host}:{port}/sessions/close", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=3) as r:
                closed += int(json.loads(r.read())["closed"])
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            continue  # a sidecar without a key log has no such endpoint
    return closed


def drive_calls(mesh: LocalMesh, account: str, tls_keys: Path) -> tuple[list[str], bool]:
    """A few calls through the gateway (each crossing every hop), and one unary call over
    Python's ssl whose TLS secrets go to ``tls_keys``."""
    from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
    from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
    from mtlsdemo.gateway.client import gateway_channel
    from mtlsdemo.wire import tlscall

    cfg = mesh.config
    cli = cfg.certs_dir / "cli"
    address = f"{cfg.gateway[0]}:{cfg.gateway[1]}"
    channel = gateway_channel(address, cli, "gateway", cfg.transport)
    calls = []
    try:
        stub = pb_grpc.GatewayServiceStub(channel)
        stub.OpenAccount(
            pb.OpenAccountRequest(owner="wire", account_id=account), timeout=cfg.timeout
        )
        calls.append(f"OpenAccount {account}")
        stub.Deposit(
            pb.DepositRequest(account_id=account, amount_cents=100, idempotency_key=f"{account}-1"),
            timeout=cfg.timeout,
        )
        calls.append(f"Deposit {account} 1.00")
        stub.GetBalance(pb.GetBalanceRequest(account_id=account), timeout=cfg.timeout)
        calls.append(f"GetBalance {account}")
    except Exception as e:  # grpc.RpcError: the mesh is not serving
        raise CaptureError(f"the calls through the gateway at {address} failed: {e}") from None
    finally:
        channel.close()
    if mesh.caller_transport() != "tls":
        return calls, False
    ctx = tlscall.tls_context(cli, tls_keys)
    reply = tlscall.unary(
        cfg.gateway,
        "gateway",
        ctx,
        "/mtlsdemo.gateway.v1.GatewayService/GetBalance",
        pb.GetBalanceRequest(account_id=account).SerializeToString(),
        cfg.timeout,
    )
    pb.Balance.FromString(reply)  # a real answer, not an error
    calls.append(f"GetBalance {account} over Python's ssl (TLS 1.3, keys embedded)")
    return calls, True


def _key_lines(paths: list[Path], prefix: str) -> list[str]:
    seen: dict[str, None] = {}
    for p in paths:
        try:
            text = p.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith(prefix):
                seen.setdefault(line, None)
    return list(seen)


def write_keys(path: Path, mtd_logs: list[Path], tls_log: Path) -> tuple[int, int]:
    """The capture's key log: the sidecars' MTD/1 lines and the TLS call's, readable by
    the owner only. Returns (MTD lines, TLS lines)."""
    mtd = _key_lines(mtd_logs, "MTD_")
    tls = [ln for ln in _key_lines([tls_log], "") if not ln.startswith("#")]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# mtlsdemo capture key log: anyone with this file decrypts the sessions below\n")
        f.write("".join(line + "\n" for line in mtd + tls))
    return len(mtd), len(tls)


def take(cfg: CaptureConfig) -> Capture:
    out = cfg.out
    capture_tool()  # a missing tool is said first: nothing to start without it
    if out.suffix != ".pcapng":
        raise CaptureError(f"--out {out}: name the file *.pcapng (its key log goes beside it)")
    if not out.parent.is_dir():
        raise CaptureError(f"--out {out}: the directory {out.parent} does not exist")
    mesh = LocalMesh(cfg.mesh)
    the_hops, keylogs = hops(mesh)
    bpf = " or ".join(f"tcp port {h.port}" for h in the_hops)
    account = f"wire-{dt.datetime.now(dt.UTC):%H%M%S}"
    with tempfile.TemporaryDirectory(prefix="mtlsdemo-capture-") as tmp:
        raw, tls_keys = Path(tmp) / "raw.pcapng", Path(tmp) / "tls.keys"
        os.chmod(tmp, 0o755)  # dumpcap may drop to another user to write the file
        started = time.monotonic()
        closed = 0
        if keylogs:  # before the window: their close_notify belongs to no handshake in it
            closed = close_sessions([cfg.mesh.gateway_admin, cfg.mesh.ledger_admin])
        recorder = Recorder(cfg.interface, bpf, raw)
        try:
            calls, tls_call = drive_calls(mesh, account, tls_keys)
            threading.Event().wait(max(0.0, cfg.seconds - (time.monotonic() - started)))
        finally:
            packets = recorder.stop()
        keys = keys_path(out)
        _mtd_lines, tls_lines = write_keys(keys, keylogs, tls_keys)
        notes = []
        if tls_lines and shutil.which("editcap"):
            subprocess.run(
                ["editcap", "--inject-secrets", f"tls,{tls_keys}", str(raw), str(out)],
                check=True,
                capture_output=True,
            )
        else:
            shutil.copyfile(raw, out)
            if tls_lines:
                notes.append(
                    "editcap not found: the TLS 1.3 call's secrets are in the key log only "
                    f"(add -o tls.keylog_file:{keys})"
                )
    if not keylogs:
        notes.append(
            "the sidecars log no keys: MTD/1 records stay opaque (start the mesh with "
            '`make run ARGS="--keylog sidecars.keys"` to decrypt them)'
        )
    return Capture(
        out,
        keys,
        packets,
        the_hops,
        calls,
        account,
        bool(keylogs),
        tls_call,
        closed,
        recorder.probe[1],
        carrying(out, account.encode(), [h.port for h in the_hops]),
        notes,
    )


def carrying(path: Path, needle: bytes, ports: list[int]) -> tuple[int, ...]:
    """The hops whose segments hold ``needle`` in clear, from the file just written."""
    found = {
        port
        for seg in segments(path)
        if needle in seg.payload
        for port in (seg.src_port, seg.dst_port)
        if port in ports
    }
    return tuple(sorted(found))


def open_command(c: Capture, gui: bool = False) -> str:
    """The exact command that opens the capture with the dissector and its keys."""
    plain = [h.port for h in c.hops if h.kind == "plaintext"]
    decode = "".join(f" -d tcp.port=={p},http2" for p in plain)
    mtd = ",".join(str(h.port) for h in c.hops if h.kind == "mtd")
    if mtd != "50051":  # the dissector's default port; others mid-session need naming
        decode = f" -o mtd.ports:{mtd}" + decode
    tool = "wireshark" if gui else "tshark"
    read = f" {c.out}" if gui else f" -r {c.out}"
    return f"{tool} -X lua_script:{dissector_path()} -o mtd.keylog_file:{c.keys}{decode}{read}"


def name_line(c: Capture) -> str:
    """Where the capture found the account name in clear: read from the file, not assumed."""
    by_kind = {h.port: h.kind for h in c.hops}
    clear = [p for p in c.name_seen_on if by_kind.get(p) == "plaintext"]
    leaked = [p for p in c.name_seen_on if by_kind.get(p) != "plaintext"]
    where = ", ".join(str(p) for p in clear) or "no port"
    if leaked:
        return (
            f'   !! the account name "{c.account}" is in clear on an encrypted hop: port(s) '
            + ", ".join(str(p) for p in leaked)
        )
    return (
        f'   the account name "{c.account}" is in clear on port(s) {where} (the apps and their '
        "sidecars) and in no packet of the MTD/1 or TLS hops (checked in the file)"
    )


def summary(c: Capture) -> list[str]:
    lines = [
        f"== capture: {c.packets} packets -> {c.out} (key log: {c.keys})",
        "   hops, each its own port in the file:",
        *(f"     127.0.0.1:{h.port:<6} {h.what}" for h in c.hops),
        f"     (the UDP datagrams to 127.0.0.1:{c.probe_port} are the capture's own start and "
        "end markers)",
        f"   sessions ended before the window: {c.closed} (so every MTD/1 session in the file "
        "starts with its handshake, which decryption needs)"
        if c.mtd_sessions_keyed
        else "   MTD/1 sessions are not decrypted: the sidecars log no keys",
        "   calls made during the window (each crosses every hop): " + "; ".join(c.calls),
        name_line(c),
        f"   !! {c.keys} decrypts every session in the file: share it only with the capture",
        *(f"   note: {n}" for n in c.notes),
        "== open it",
        f"   {open_command(c)}",
        f"   {open_command(c, gui=True)}",
        f"   tshark -r {c.out} -Y 'frame contains \"{c.account}\"'   # which hops carry it in clear",
    ]
    return lines
