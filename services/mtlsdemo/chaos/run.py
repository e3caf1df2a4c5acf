"""`mtlsdemo chaos` on local processes: its own mesh (own certificates, own ledger,
free ports, the fault proxy on the MTD/1 hop), steady transfers, the fault
schedule, recovery measured after each fault and after the last one, the audit.

It supervises the processes itself: `mtlsdemo run` stops when a child dies, and
here dying is the point."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import signal
import statistics
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
from mtlsdemo.addresses import local, run_ports
from mtlsdemo.chaos.audit import AuditResult, audit, read_ledger
from mtlsdemo.chaos.calllog import Journal, read_journal
from mtlsdemo.chaos.faultproxy import FaultProxy
from mtlsdemo.chaos.load import Load
from mtlsdemo.chaos.schedule import KINDS, Fault, plan
from mtlsdemo.mesh.supervisor import Child, RunConfig, mesh_children, start_mesh
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.files import load_cert
from mtlsdemo.pki.lifecycle import revoke, rotate_ca
from mtlsdemo.pki.stores import FileStore
from mtlsdemo.rpc.retry import RetryPolicy
from mtlsdemo.sidecar.adminclient import AdminClient
from mtlsdemo.waiting import WaitTimeout, wait_until

SERVICES = ("ledger", "gateway", "cli")
HANDSHAKE_TIMEOUT = 2.0  # the sidecars' deadline here: pauses are held past it
SETTLE = 1.0  # seconds after a fault's end still counted as "during" for latencies


@dataclass(frozen=True)
class ChaosConfig:
    duration: float = 60.0
    seed: int = 1
    work_dir: Path = Path("var/chaos")
    rate: float = 20.0  # transfers per second
    concurrency: int = 4
    deadline: float = 3.0  # per attempt
    budget: float = 30.0  # per transfer, all attempts
    recovery_bound: float = 20.0  # after the last fault: all ready, a fresh transfer acknowledged
    faults: tuple[str, ...] = tuple(KINDS)
    json: bool = False
    compose_project: str | None = None  # None: local processes
    compose_file: Path = Path("deploy/compose/docker-compose.yml")
    gateway_addr: str = local("gateway")  # compose: the published gateway port
    workload_api: bool = False  # identities from a Workload API agent (local only)
    svid_ttl: dt.timedelta = dt.timedelta(minutes=1)
    gateway_transport: str = "tls"  # mtd: the load's calls over MTD/1 (local only)


@dataclass
class Applied:
    fault: Fault
    start: float  # wall clock
    end: float = 0.0
    detail: str = ""
    recovered_in: float | None = None


@dataclass
class ChaosReport:
    config: dict[str, Any]
    faults: list[Applied] = field(default_factory=list)
    audit: AuditResult = field(default_factory=AuditResult)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    final_recovery: float | None = None
    # --workload-api: each SVID's rotations during the run, and which sidecars restarted
    identity: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        bound = self.config["recovery_bound"]
        return self.audit.ok and self.final_recovery is not None and self.final_recovery <= bound

    def as_dict(self) -> dict[str, Any]:
        per_kind: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0, "recovery_s": []})
        for a in self.faults:
            k = per_kind[a.fault.kind]
            k["count"] += 1
            if a.recovered_in is not None:
                k["recovery_s"].append(round(a.recovered_in, 3))
        return {
            "config": self.config,
            "faults_injected": {k: v["count"] for k, v in per_kind.items()},
            "recovery_seconds_max_by_kind": {
                k: max(v["recovery_s"]) if v["recovery_s"] else None for k, v in per_kind.items()
            },
            "faults": [
                {
                    "kind": a.fault.kind,
                    "at_s": a.fault.at,
                    "held_s": round(a.end - a.start, 3),
                    "detail": a.detail,
                    "recovered_in_s": None if a.recovered_in is None else round(a.recovered_in, 3),
                }
                for a in self.faults
            ],
            "audit": self.audit.as_dict(),
            "latency_ms": self.latency_ms,
            "final_recovery_s": None
            if self.final_recovery is None
            else round(self.final_recovery, 3),
            "identity": self.identity,
            "ok": self.ok,
        }


class ChaosMesh:
    """The mesh's processes under our control, logs to a file, the proxy between
    the gateway's sidecar and the ledger's."""

    def __init__(
        self,
        work: Path,
        seed: int,
        svid_ttl: dt.timedelta | None = None,
        transport: str = "tls",
    ) -> None:
        self.certs, self.data = work / "certs", work / "var"
        self.ports = run_ports()
        self.proxy: FaultProxy | None = FaultProxy(("127.0.0.1", self.ports["ledger"]), seed=seed)
        ports: dict[str, Any] = {f"{k}_port": v for k, v in self.ports.items()}
        # with an SVID lifetime: a Workload API agent, its sockets in a private directory
        self.sockets = Path(tempfile.mkdtemp(prefix="mtlsdemo-agent-")) if svid_ttl else None
        self.rc = RunConfig(
            certs_dir=self.certs,
            data_dir=self.data,
            **{**ports, "console_port": 0},
            workload_api=svid_ttl is not None,
            svid_ttl=svid_ttl or dt.timedelta(hours=24),
            agent_sockets=self.sockets,
            gateway_transport=transport,
        )
        self.log = (work / "mesh.log").open("a")
        self.children: dict[str, Child] = {}

    def start(self) -> None:
        bootstrap(BootstrapRequest(out=self.certs, services=SERVICES))
        assert self.proxy is not None
        proxy_port = self.proxy.start()
        kids = mesh_children(
            self.rc,
            self.certs,
            ledger_remote=f"127.0.0.1:{proxy_port}",
            extra=("--handshake-timeout", str(HANDSHAKE_TIMEOUT)),
        )
        for c in kids:
            c.out = self.log
            self.children[c.name] = c
        start_mesh(kids, self.rc, self.certs, time.monotonic() + 60)

    @property
    def gateway(self) -> str:
        return f"127.0.0.1:{self.rc.gateway_port}"

    def ready(self) -> bool:
        for port in (self.rc.gateway_admin_port, self.rc.ledger_admin_port):
            if not AdminClient.local(port, timeout=1).ready():
                return False
        return all(c.proc is not None and c.proc.poll() is None for c in self.children.values())

    @property
    def cli_dir(self) -> Path:
        return self.certs / "cli"

    def ledger_db(self) -> Path:
        return self.data / "ledger.db"

    def kill(self, target: str, hold: float) -> str:
        child = self.children[target]
        child.signal(signal.SIGKILL)
        time.sleep(hold)
        child.start(False)
        return f"down {hold:.1f}s, restarted"

    def pause(self, target: str, hold: float) -> str:
        child = self.children[target]
        child.signal(signal.SIGSTOP)
        time.sleep(hold)
        child.signal(signal.SIGCONT)
        return f"stopped {hold:.1f}s (handshake deadline {HANDSHAKE_TIMEOUT:g}s)"

    def renew(self) -> str:
        changes = bootstrap(
            BootstrapRequest(out=self.certs, services=("gateway", "ledger"), force=True)
        )
        return f"{sum(1 for c in changes if 'issued' in str(c))} leaves re-issued"

    def revoke_and_reissue(self) -> str:
        now = dt.datetime.now(dt.UTC)
        revoke(FileStore(self.certs), SERVICES, now, service="ledger", reason="key_compromise")
        bootstrap(BootstrapRequest(out=self.certs, services=SERVICES))  # re-issues it at once
        return "ledger revoked and re-issued"

    def rotate_ca(self, load: Load) -> str:
        """The three stages of `certs rotate-ca`, each taken by both sidecars and the
        client before the next, as an operator following docs/operations.md would
        (the native gateway reads its files at each new handshake: nothing to wait for)."""
        req = BootstrapRequest(out=self.certs, services=SERVICES)
        t0 = time.monotonic()
        for stage, cas in (("prepare", 2), ("switch", 2), ("finish", 1)):
            rotate_ca(req, stage, FileStore(self.certs), dt.datetime.now(dt.UTC))
            serial = {
                s: f"{load_cert(self.certs / s / 'tls.crt').serial_number:x}" for s in SERVICES
            }

            def taken(cas: int = cas, serial: dict[str, str] = serial) -> bool:
                return (
                    self._sidecar_on("gateway", serial["gateway"], cas)
                    and self._sidecar_on("ledger", serial["ledger"], cas)
                    and load.holds(serial["cli"], cas)
                )

            wait_until(
                taken, timeout=30, interval=0.1, what=f"every workload on the rollover's {stage}"
            )
        return f"prepare, switch, finish in {time.monotonic() - t0:.1f}s, each taken by all"

    def _sidecar_on(self, service: str, serial: str, cas: int) -> bool:
        port = self.rc.gateway_admin_port if service == "gateway" else self.rc.ledger_admin_port
        try:
            st = AdminClient.local(port, timeout=1).status()
        except (OSError, ValueError):
            return False
        return st["certificate"]["serial"] == serial and len(st["ca_fingerprints_sha256"]) == cas

    def stop(self) -> None:
        for c in reversed(list(self.children.values())):
            c.signal(signal.SIGCONT)  # a paused child cannot take its SIGTERM
            c.stop()
        if self.proxy is not None:
            self.proxy.stop()
        if self.sockets is not None:
            shutil.rmtree(self.sockets, ignore_errors=True)
        self.log.close()

    def identity_facts(self) -> dict[str, Any]:
        """What the agent renewed and whether a sidecar restarted (its instance id)."""
        out: dict[str, Any] = {"svid_ttl_s": self.rc.svid_ttl.total_seconds()}
        try:
            agent = AdminClient.local(self.rc.agent_admin_port, timeout=2).status()
        except (OSError, ValueError):
            return out
        out["rotations"] = {w: s["renewals"] for w, s in agent["workloads"].items()}
        out["renewal_failures"] = {w: s["failures"] for w, s in agent["workloads"].items()}
        return out

    def instances(self) -> dict[str, str]:
        out = {}
        for name, port in (
            ("gateway-sidecar", self.rc.gateway_admin_port),
            ("ledger-sidecar", self.rc.ledger_admin_port),
        ):
            try:
                body = AdminClient.local(port, timeout=2).get("/certificates")
                out[name] = str(json.loads(body)["instance"])
            except (OSError, ValueError, KeyError):
                out[name] = "?"
        return out


class Mesh(Protocol):
    """What the chaos driver needs from a mesh: local processes, or compose."""

    proxy: FaultProxy | None

    @property
    def gateway(self) -> str: ...
    @property
    def cli_dir(self) -> Path: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def ready(self) -> bool: ...
    def ledger_db(self) -> Path: ...
    def kill(self, target: str, hold: float) -> str: ...
    def pause(self, target: str, hold: float) -> str: ...
    def renew(self) -> str: ...
    def revoke_and_reissue(self) -> str: ...
    def rotate_ca(self, load: Load) -> str: ...


def apply(mesh: Mesh, f: Fault, load: Load) -> Applied:
    a = Applied(f, time.time())
    kind, _, target = f.kind.partition(":")
    proxy = mesh.proxy
    if kind == "kill":
        a.detail = mesh.kill(target, f.hold)
    elif kind == "pause":
        a.detail = mesh.pause(target, f.hold)
    elif f.kind == "certs:renew":
        a.detail = mesh.renew()
    elif f.kind == "certs:revoke":
        a.detail = mesh.revoke_and_reissue()
    elif f.kind == "certs:rotate-ca":
        a.detail = mesh.rotate_ca(load)
    elif proxy is None:
        raise ValueError(f"{f.kind}: needs the fault proxy (local runs only)")
    elif f.kind == "net:latency":
        proxy.set_latency(f.latency)
        time.sleep(f.hold)
        proxy.set_latency(0.0)
        a.detail = f"+{f.latency * 1e3:.0f} ms per chunk for {f.hold:.1f}s"
    elif f.kind == "net:partial":
        proxy.set_partial(True)
        time.sleep(f.hold)
        proxy.set_partial(False)
        a.detail = f"1-7 byte writes for {f.hold:.1f}s"
    elif f.kind == "net:stall":
        proxy.stall(True)
        time.sleep(f.hold)
        proxy.stall(False)
        a.detail = f"nothing forwarded for {f.hold:.1f}s"
    elif f.kind == "net:reset":
        a.detail = f"{proxy.reset_all()} connection(s) reset"
    elif f.kind == "net:corrupt":
        proxy.corrupt(3)
        a.detail = "next 3 chunks corrupted"
    a.end = time.time()
    return a


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return {"n": len(values), "p50": round(q[49] * 1e3, 2), "p99": round(q[98] * 1e3, 2)}


def figures(report: ChaosReport, journal: list[dict[str, Any]]) -> None:
    """Latency during and outside faults; per fault, the time from its end to the
    first acknowledged transfer."""
    windows = [(a.start, a.end + SETTLE) for a in report.faults]
    started = {e["key"]: e["t"] for e in journal if e["e"] == "attempt"}
    during: list[float] = []
    outside: list[float] = []
    acks = sorted(e["t"] for e in journal if e["e"] == "ack")
    for e in journal:
        if e["e"] in ("ack", "fail") and e["key"] in started:
            t = started[e["key"]]
            hit = any(lo <= t <= hi for lo, hi in windows) or any(
                t <= lo <= e["t"] for lo, _ in windows
            )
            (during if hit else outside).append(e["seconds"])
    report.latency_ms = {
        "outside_faults": _percentiles(outside),
        "during_faults": _percentiles(during),
    }
    for a in report.faults:
        first = next((t for t in acks if t >= a.end), None)
        a.recovered_in = None if first is None else max(0.0, first - a.end)


def final_recovery(mesh: Mesh, load: Load, bound: float) -> float | None:
    """Seconds until every sidecar is ready and a fresh transfer is acknowledged."""
    t0 = time.monotonic()
    try:
        wait_until(mesh.ready, timeout=bound, what="every sidecar ready", interval=0.1)
        a, b = load.accounts[:2]

        def fresh() -> bool:
            key = f"{load.prefix}-final-{uuid.uuid4().hex[:8]}"
            req = pb.TransferRequest(
                from_account_id=a, to_account_id=b, amount_cents=1, idempotency_key=key
            )
            return load.movement("Transfer", req, key, kind="transfer", frm=a, to=b, cents=1)

        left = bound - (time.monotonic() - t0)
        wait_until(fresh, timeout=max(left, 0.1), what="a fresh transfer", interval=0.2)
    except WaitTimeout:
        return None
    return time.monotonic() - t0


def run(cfg: ChaosConfig) -> ChaosReport:
    work = Path(cfg.work_dir)
    for old in ("certs", "var", "journal.jsonl", "mesh.log"):
        path = work / old
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    work.mkdir(parents=True, exist_ok=True)
    schedule = plan(cfg.seed, cfg.duration, cfg.faults)
    report = ChaosReport({k: _plain(v) for k, v in dataclasses.asdict(cfg).items()})
    prefix = f"chaos{cfg.seed}-{uuid.uuid4().hex[:6]}"
    journal = Journal(work / "journal.jsonl")
    mesh: Mesh
    local_mesh: ChaosMesh | None = None
    if cfg.compose_project is None:
        mesh = local_mesh = ChaosMesh(
            work, cfg.seed, cfg.svid_ttl if cfg.workload_api else None, cfg.gateway_transport
        )
    else:
        from mtlsdemo.chaos.compose import ComposeMesh

        mesh = ComposeMesh(cfg.compose_project, cfg.compose_file, work, cfg.gateway_addr)
    load: Load | None = None
    stop = threading.Event()  # the load's end, also when a fault could not be applied
    driver: threading.Thread | None = None
    try:
        mesh.start()
        started = local_mesh.instances() if local_mesh is not None else {}
        policy = RetryPolicy(deadline=cfg.deadline, budget=cfg.budget)
        load = Load(
            mesh.gateway, mesh.cli_dir, journal, prefix, policy,
            rate=cfg.rate, concurrency=cfg.concurrency, seed=cfg.seed,
            transport=cfg.gateway_transport,
        )  # fmt: skip
        load.setup()
        driver = threading.Thread(target=load.run, args=(stop,), daemon=True, name="chaos-load")
        driver.start()
        t0 = time.monotonic()
        for f in schedule:
            delay = t0 + f.at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            report.faults.append(apply(mesh, f, load))
        time.sleep(max(0.0, t0 + cfg.duration - time.monotonic()))
        stop.set()
        driver.join(cfg.budget + 10)
        report.final_recovery = final_recovery(mesh, load, cfg.recovery_bound)
        if local_mesh is not None and cfg.workload_api:
            now = local_mesh.instances()
            report.identity = {
                **local_mesh.identity_facts(),
                "sidecars_restarted": sorted(n for n in now if now[n] != started.get(n)),
            }
    finally:
        # the workers end before their channel closes (an error above must not leave
        # them calling on a closed channel)
        stop.set()
        if driver is not None:
            driver.join(cfg.budget + 10)
        if load is not None:
            load.close()
        mesh.stop()
        journal.close()
    entries = read_journal(work / "journal.jsonl")
    rows, balances = read_ledger(mesh.ledger_db())
    report.audit = audit(entries, rows, balances, prefix, cfg.deadline)
    figures(report, entries)
    return report


def _plain(value: Any) -> Any:
    """A config value as JSON writes it: paths as text, durations in seconds."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def render(report: ChaosReport) -> str:
    d = report.as_dict()
    a = d["audit"]
    c = report.config
    lines = [
        f"== chaos: {c['duration']:g}s of transfers at {c['rate']:g}/s, seed {c['seed']}, "
        f"{len(report.faults)} faults"
        + (
            ", over MTD/1 into the gateway's sidecar" if c.get("gateway_transport") == "mtd" else ""
        ),
        f"   {'fault':<22} {'at':>6} {'held':>6}  {'first ack after':>15}  what",
    ]
    for f in d["faults"]:
        rec = "never" if f["recovered_in_s"] is None else f"{f['recovered_in_s']:.2f}s"
        lines.append(
            f"   {f['kind']:<22} {f['at_s']:>5.1f}s {f['held_s']:>5.1f}s  {rec:>15}  {f['detail']}"
        )
    failed = ", ".join(f"{k} {v}" for k, v in sorted(a["failed"].items())) or "none"
    lat = d["latency_ms"]

    def pct(x: dict[str, float]) -> str:
        return (
            f"p50 {x['p50']:.1f} ms, p99 {x['p99']:.1f} ms (n={x['n']})" if x.get("n") else "none"
        )

    lines += [
        "== audit (the ledger's rows against the client's journal)",
        f"   attempted {a['attempted']}, acknowledged {a['acknowledged']}, failed: {failed}"
        f" ({a['failed_but_applied']} of them applied anyway, as the ledger shows)",
        f"   lost {a['lost']}   duplicated {a['duplicated']}   never sent {a['phantom']}   "
        f"wrong id {a['mismatched']}   balance drift {a['balance_drift_cents']} cents   "
        f"attempts past their deadline {a['hung_attempts']} (of {a['attempts']})",
        f"   latency outside faults: {pct(lat['outside_faults'])}",
        f"   latency during faults:  {pct(lat['during_faults'])}",
    ]
    fr = d["final_recovery_s"]
    lines.append(
        "   after the last fault: "
        + (
            f"every sidecar ready and a fresh transfer acknowledged in {fr:.2f}s "
            f"(bound {c['recovery_bound']:g}s)"
            if fr is not None
            else f"NOT recovered within {c['recovery_bound']:g}s"
        )
    )
    for what, keys in a.get("examples", {}).items():
        lines.append(f"   !! {what}: {', '.join(keys)}")
    ident = d["identity"]
    if ident:
        rot = ", ".join(f"{w} {n}" for w, n in sorted(ident.get("rotations", {}).items()))
        restarted = ", ".join(ident.get("sidecars_restarted", [])) or "none"
        lines.append(
            f"   identities: SVIDs living {ident['svid_ttl_s']:g}s from the Workload API agent; "
            f"rotations during the run: {rot or 'unknown'}; sidecars restarted: {restarted}"
        )
    lines.append(
        "== "
        + ("PASS: nothing lost, nothing twice, no money made or destroyed" if report.ok else "FAIL")
    )
    return "\n".join(lines)


def to_json(report: ChaosReport) -> str:
    return json.dumps(report.as_dict(), indent=2)
