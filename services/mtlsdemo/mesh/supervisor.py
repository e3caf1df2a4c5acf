"""``mtlsdemo run``: the whole system as local processes on 127.0.0.1.

Bootstraps certificates, starts the ledger and the gateway as child processes
(their logs prefixed by component), waits until both report SERVING over mTLS,
sends a little traffic, prints where everything is, then waits for Ctrl-C.
A child that dies is reported with its last log lines.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mtlsdemo.addresses import DEFAULT_PORTS, bindable
from mtlsdemo.gateway.caller import caller_channel
from mtlsdemo.gateway.loadgen import run_load
from mtlsdemo.handshake.suites import Suite
from mtlsdemo.mesh import scenario_policy, start_here
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.durations import human
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.files import load_cert
from mtlsdemo.pki.keys import DEFAULT_KEY_TYPE, key_type_of
from mtlsdemo.pki.lifecycle import refresh_status
from mtlsdemo.pki.revocation import DEFAULT_WINDOW as STATUS_WINDOW
from mtlsdemo.pki.stores import FileStore
from mtlsdemo.sidecar.adminclient import AdminClient
from mtlsdemo.sidecar.config import SidecarConfigError
from mtlsdemo.trust.spiffe import DEFAULT_TRUST_DOMAIN, workload_id
from mtlsdemo.waiting import WaitTimeout, wait_until

SERVICES = ("ledger", "gateway", "cli")


@dataclass(frozen=True)
class RunConfig:
    """`mtlsdemo run`, typed (built from the flags in commands/run.py)."""

    certs_dir: Path = Path("certs")
    data_dir: Path = Path("var")
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    namespace: str = "default"
    mode: str = "sidecar"
    ledger_port: int = DEFAULT_PORTS["ledger"]
    gateway_port: int = DEFAULT_PORTS["gateway"]
    ledger_metrics_port: int = DEFAULT_PORTS["ledger_metrics"]
    gateway_metrics_port: int = DEFAULT_PORTS["gateway_metrics"]
    ledger_app_port: int = DEFAULT_PORTS["ledger_app"]
    route_port: int = DEFAULT_PORTS["route"]
    gateway_admin_port: int = DEFAULT_PORTS["gateway_admin"]
    ledger_admin_port: int = DEFAULT_PORTS["ledger_admin"]
    console_port: int = DEFAULT_PORTS["console"]  # 0: no console
    traffic_seconds: float = 3.0
    exit_after_traffic: bool = False
    key_type: str | None = None  # None: keep the existing leaves' type
    suites: tuple[Suite, ...] | None = None
    gateway_app_port: int = DEFAULT_PORTS["gateway_app"]
    # how callers reach the gateway: "tls" (native gRPC mTLS) or "mtd" (its sidecar);
    # None: decided by run() from the key type (ML-DSA needs mtd)
    gateway_transport: str | None = None
    # both sidecars append their sessions' traffic secrets here (`sidecar --keylog`)
    keylog: Path | None = None
    # who may call what, in place of the --allow-id lists (`sidecar`/`serve --authz-policy`)
    authz_policy: Path | None = None
    # without authz_policy: the empty policy file beside the lists that `break authz-*`
    # rewrites (mesh/scenario_policy.py); set by run()
    scenario_policy: Path | None = None
    # identities from a Workload API agent (`mtlsdemo agent`) instead of certs/<service>
    workload_api: bool = False
    svid_ttl: dt.timedelta = dt.timedelta(hours=24)
    agent_admin_port: int = DEFAULT_PORTS["agent_admin"]
    agent_sockets: Path | None = None  # set by run(): a private directory of its own
    # 2: the ledger in a second trust domain (its own CA and agent), federated by bundle
    domains: int = 1
    agent_b_admin_port: int = DEFAULT_PORTS["agent_b_admin"]

    @property
    def ledger_domain(self) -> str:
        """The ledger's trust domain: ours, or the second one's with --domains 2."""
        return second_domain(self.trust_domain) if self.domains == 2 else self.trust_domain

    @property
    def transport(self) -> str:
        """The caller transport, once run() has decided it."""
        return self.gateway_transport or "tls"


def second_domain(trust_domain: str) -> str:
    """`run --domains 2`'s other trust domain: b.<ours>."""
    return f"b.{trust_domain}"


def domain_b_certs(certs: Path) -> Path:
    """Where the second trust domain's CA and the ledger's bootstrap identity live."""
    return certs / "domain-b"


STATUS_REFRESH = dt.timedelta(minutes=15)  # a quarter of the window: three misses still fine
COLORS = {
    "ledger": "\033[36m",
    "gateway": "\033[35m",
    "ledger-sidecar": "\033[34m",
    "gateway-sidecar": "\033[33m",
    "console": "\033[32m",
    "agent": "\033[31m",
}


def child_environment() -> dict[str, str]:
    """This environment without its MTLSDEMO_* twins: ``run`` says what it means to
    each child as flags, and a leftover export (MTLSDEMO_REQUIRE_STATUS=off) must
    not change a child's checks unseen. ``dropped_twins`` names what was left out."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MTLSDEMO_")}


def dropped_twins() -> list[str]:
    return sorted(k for k in os.environ if k.startswith("MTLSDEMO_"))


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[str] | None = None
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))
    out: TextIO | None = None  # where its lines go (None: our stdout)

    def start(self, color: bool) -> None:
        env = dict(child_environment(), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        prefix = f"{COLORS.get(self.name, '')}[{self.name}]\033[0m " if color else f"[{self.name}] "
        threading.Thread(target=self._pump, args=(prefix,), daemon=True).start()

    def _pump(self, prefix: str) -> None:
        assert self.proc and self.proc.stdout
        out = self.out or sys.stdout
        for line in self.proc.stdout:
            self.tail.append(line.rstrip())
            out.write(prefix + line)
            out.flush()

    def signal(self, sig: int) -> None:
        """SIGKILL, SIGSTOP, SIGCONT… to a running child (`mtlsdemo chaos`)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            if sig == signal.SIGKILL:
                self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_serving(
    address: str,
    tls_dir: Path | None,
    server_name: str,
    deadline: float,
    children: list[Child],
    transport: str = "tls",
) -> None:
    """Poll gRPC health (as a caller with tls_dir over ``transport``, else
    plaintext) until SERVING."""
    channel = (
        caller_channel(address, tls_dir, server_name, transport)
        if tls_dir is not None
        else grpc.insecure_channel(address)
    )
    stub = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    try:
        wait_until(
            lambda: stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == serving,
            timeout=deadline - time.monotonic(),
            what=f"{server_name} at {address} SERVING",
            interval=0.1,
            ignore=(grpc.RpcError,),
            check=lambda: _check_alive(children),
        )
    finally:
        channel.close()


class ChildDied(Exception):
    def __init__(self, child: Child) -> None:
        self.child = child
        super().__init__(child.name)


def report_death(c: Child) -> None:
    code = c.proc.returncode if c.proc else "?"
    print(f"\n!! {c.name} exited with status {code}; its last log lines:", file=sys.stderr)
    for line in c.tail:
        print(f"   {c.name}| {line}", file=sys.stderr)


def wait_ready(admin_port: int, deadline: float, children: list[Child]) -> None:
    AdminClient.local(admin_port, timeout=1).wait_ready(
        deadline - time.monotonic(), check=lambda: _check_alive(children)
    )


def wait_http(url: str, deadline: float, children: list[Child]) -> None:
    def ready() -> bool:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)

    wait_until(
        ready,
        timeout=deadline - time.monotonic(),
        interval=0.1,
        ignore=(OSError,),
        what=f"{url} to answer 200",
        check=lambda: _check_alive(children),
    )


def console_argv(cfg: RunConfig, certs: Path) -> list[str]:
    """The console for this run: watching both sidecars and both services, with the
    break buttons (on loopback: they re-issue this run's certificates)."""
    return [
        "console",
        "--listen",
        f"127.0.0.1:{cfg.console_port}",
        "--allow-break",
        "--certs-dir",
        str(certs),
        "--ledger-sidecar",
        f"127.0.0.1:{cfg.ledger_port}",
        "--gateway-addr",
        f"127.0.0.1:{cfg.gateway_port}",
        "--gateway-admin",
        f"127.0.0.1:{cfg.gateway_admin_port}",
        "--ledger-admin",
        f"127.0.0.1:{cfg.ledger_admin_port}",
        "--gateway-route",
        f"127.0.0.1:{cfg.route_port}",
        "--gateway-metrics",
        f"127.0.0.1:{cfg.gateway_metrics_port}",
        "--agent-admin",
        f"127.0.0.1:{cfg.agent_admin_port}",
        "--trust-domain",
        cfg.trust_domain,
        "--namespace",
        cfg.namespace,
        "--transport",
        cfg.transport,
        "--metrics",
        f"127.0.0.1:{cfg.gateway_metrics_port}",
        "--metrics",
        f"127.0.0.1:{cfg.ledger_metrics_port}",
        # the second trust domain's agent too: each domain's SVIDs on the page
        *(
            ["--federated-agent-admin", f"127.0.0.1:{cfg.agent_b_admin_port}"]
            if cfg.domains == 2
            else []
        ),
    ]


def _check_alive(children: list[Child]) -> None:
    for c in children:
        if c.proc and c.proc.poll() is not None:
            raise ChildDied(c)


def fetch_status(admin_port: int) -> dict[str, Any]:
    return AdminClient.local(admin_port, timeout=2).status()


def run(cfg: RunConfig) -> int:
    certs = Path(cfg.certs_dir)
    td, ns = cfg.trust_domain, cfg.namespace
    sidecars = cfg.mode == "sidecar"
    key_type = cfg.key_type or existing_key_type(certs) or DEFAULT_KEY_TYPE
    suites = cfg.suites
    if suites and not sidecars:
        print(
            "error: --suites: only the sidecars (--mode sidecar) speak MTD/1's suites",
            file=sys.stderr,
        )
        return 2
    if suites and any(s.kx.value == "RSA-OAEP" for s in suites) and not key_type.startswith("rsa"):
        print(
            f"error: --suites {','.join(s.name for s in suites)}: RSA key transport needs RSA "
            f"leaves (the leaves are {key_type}); add --key-type rsa-2048",
            file=sys.stderr,
        )
        return 2
    post_quantum = key_type.startswith("ml-dsa")
    transport = cfg.gateway_transport or ("mtd" if post_quantum else "tls")
    if transport == "mtd" and not sidecars:
        print(
            "error: --gateway-transport mtd: the gateway's sidecar speaks MTD/1, and "
            "--mode native has no sidecars; drop --mode native",
            file=sys.stderr,
        )
        return 2
    if post_quantum and transport == "tls":
        # native gRPC TLS (grpcio's BoringSSL) cannot verify or present ML-DSA certificates
        print(
            f"error: --key-type {key_type} with --gateway-transport tls: native gRPC TLS has "
            "no ML-DSA; drop --gateway-transport (ML-DSA leaves put the gateway behind its "
            "sidecar, MTD/1, which has)",
            file=sys.stderr,
        )
        return 2
    if cfg.keylog is not None and not sidecars:
        raise SidecarConfigError(
            "--keylog: only the sidecars (--mode sidecar) log keys; grpcio's native TLS "
            "cannot write a key log, so drop --mode native"
        )
    if cfg.domains == 2:
        cfg = dataclasses.replace(cfg, workload_api=True)
    if cfg.workload_api and (not sidecars or transport == "mtd"):
        # the callers (`mtlsdemo client`, the demo traffic) keep certs/cli's files and
        # require a stapled status, which an SVID from the Workload API does not carry
        print(
            "error: --workload-api: the sidecars and the gateway's native TLS take SVIDs "
            + (
                "from the agent, and --mode native has no sidecars; drop --mode native"
                if not sidecars
                else "from the agent; the MTD/1 callers of --gateway-transport mtd (and "
                "ML-DSA leaves) require the staples SVIDs lack: use the default transport"
            ),
            file=sys.stderr,
        )
        return 2
    cfg = dataclasses.replace(cfg, gateway_transport=transport)
    ports = {
        "--ledger-port": cfg.ledger_port,
        "--gateway-port": cfg.gateway_port,
        "--ledger-metrics-port": cfg.ledger_metrics_port,
        "--gateway-metrics-port": cfg.gateway_metrics_port,
    }
    if sidecars:
        ports |= {
            "--ledger-app-port": cfg.ledger_app_port,
            "--route-port": cfg.route_port,
            "--gateway-admin-port": cfg.gateway_admin_port,
            "--ledger-admin-port": cfg.ledger_admin_port,
        }
        if cfg.console_port:
            ports["--console-port"] = cfg.console_port
        if cfg.transport == "mtd":
            ports["--gateway-app-port"] = cfg.gateway_app_port
        if cfg.workload_api:
            ports["--agent-admin-port"] = cfg.agent_admin_port
        if cfg.domains == 2:
            ports["--agent-b-admin-port"] = cfg.agent_b_admin_port
    for flag, port in ports.items():
        if not bindable(port):
            print(
                f"error: {flag} {port}: 127.0.0.1:{port} is in use (another `mtlsdemo run`?)",
                file=sys.stderr,
            )
            return 2
    print(f"== certificates ({certs}/)")
    for change in bootstrap(
        # cfg.key_type, not key_type: unset, the bootstrap keeps each leaf's (or
        # follows a CA of the other family, mid-rollover)
        BootstrapRequest(
            out=certs, services=SERVICES, trust_domain=td, namespace=ns, key_type=cfg.key_type
        )
    ):
        print(f"   {change}")
    if cfg.domains == 2:  # the second trust domain's own CA (its agent issues the ledger's)
        for change in bootstrap(
            BootstrapRequest(
                out=domain_b_certs(certs),
                services=("ledger",),
                trust_domain=cfg.ledger_domain,
                namespace=ns,
                key_type=cfg.key_type,
            )
        ):
            print(f"   {cfg.ledger_domain}: {change}")
    ledger_addr = f"127.0.0.1:{cfg.ledger_port}"
    gateway_addr = f"127.0.0.1:{cfg.gateway_port}"
    sockets = None
    if cfg.workload_api:
        # the agent's sockets in a directory only this user reaches, short enough for a
        # Unix socket path wherever the data dir is; removed when the mesh stops
        sockets = Path(tempfile.mkdtemp(prefix="mtlsdemo-agent-"))
        cfg = dataclasses.replace(cfg, agent_sockets=sockets, key_type=key_type)
    if cfg.authz_policy is None:
        beside = scenario_policy.path_in(cfg.data_dir).resolve()
        try:
            scenario_policy.reset(beside)
        except OSError:
            # an unusable data dir: the ledger says so (with its log) as it starts; the
            # mesh runs without the scenarios' file (`break authz-*` then says why)
            pass
        else:
            cfg = dataclasses.replace(cfg, scenario_policy=beside)
    children = mesh_children(cfg, certs)
    color = sys.stdout.isatty()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    # a script's `mtlsdemo run &` inherits SIGINT ignored (POSIX shells do that to
    # background jobs): take it back, so Ctrl-C / kill -INT stop the mesh there too
    signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(
        target=keep_statuses_fresh, args=(certs, stopping), daemon=True, name="refresh-status"
    ).start()
    try:
        print(f"== starting {', '.join(c.name for c in children)} ({cfg.mode} mode)")
        if dropped := dropped_twins():
            print(
                f"   not passed to them: {', '.join(dropped)} (run gives its children flags; "
                "set these through run's own flags)"
            )
        start_mesh(children, cfg, certs, time.monotonic() + 30, color)
        if cfg.traffic_seconds > 0:
            print(f"== traffic: {cfg.traffic_seconds:.0f}s of transfers through the gateway")
            result = run_load(
                gateway_addr,
                certs / "cli",
                "gateway",
                rps=20,
                duration=cfg.traffic_seconds,
                concurrency=2,
                progress=sys.stderr.isatty(),
                transport=cfg.transport,
            )
            print(f"   {result.summary()}")
        print_summary(cfg, certs, ledger_addr, gateway_addr)
        if cfg.exit_after_traffic:
            return 0
        print("== running; Ctrl-C stops everything")
        while not stopping.is_set():
            _check_alive(children)
            stopping.wait(0.5)
        return 0
    except ChildDied as e:
        report_death(e.child)
        return 1
    except WaitTimeout as e:
        print(f"!! {e}; the children's logs are above", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\n== stopping")
        return 0
    finally:
        for c in reversed(children):
            c.stop()
        if sockets is not None:
            shutil.rmtree(sockets, ignore_errors=True)


def wait_federated(admin_port: int, deadline: float, children: list[Child]) -> None:
    def fetched() -> bool:
        _check_alive(children)
        status = AdminClient.local(admin_port, timeout=2).status()
        return all(f["authorities"] for f in status["federated"].values())

    wait_until(
        fetched,
        timeout=max(0.1, deadline - time.monotonic()),
        what=f"the agent on {admin_port} to fetch the other trust domain's bundle",
        interval=0.2,
        ignore=(OSError, ValueError),
    )


def start_mesh(
    children: list[Child], cfg: RunConfig, certs: Path, deadline: float, color: bool = False
) -> None:
    """Start the mesh's processes in order, each once the one before answers (the
    ledger over gRPC health, a sidecar on /readyz, the console on its page), then
    wait for the gateway to serve mTLS; a child that dies ends the wait (ChildDied)."""
    for c in children:
        c.start(color)
        if c.name == "ledger":
            if cfg.mode == "sidecar":
                wait_serving(f"127.0.0.1:{cfg.ledger_app_port}", None, "ledger", deadline, children)
            else:
                ledger = f"127.0.0.1:{cfg.ledger_port}"
                wait_serving(ledger, certs / "cli", "ledger", deadline, children)
        elif c.name in ("agent", "agent-b"):
            port = cfg.agent_admin_port if c.name == "agent" else cfg.agent_b_admin_port
            wait_http(f"http://127.0.0.1:{port}/healthz", deadline, children)
            if c.name == "agent-b":  # each has the other's bundle before any workload starts
                for p in (cfg.agent_admin_port, cfg.agent_b_admin_port):
                    wait_federated(p, deadline, children)
        elif c.name == "console":
            wait_http(f"http://127.0.0.1:{cfg.console_port}/api/options", deadline, children)
        elif c.name.endswith("sidecar"):
            admin = cfg.ledger_admin_port if c.name.startswith("ledger") else cfg.gateway_admin_port
            wait_ready(admin, deadline, children)
    gateway = f"127.0.0.1:{cfg.gateway_port}"
    wait_serving(gateway, certs / "cli", "gateway", deadline, children, cfg.transport)


def mesh_children(
    cfg: RunConfig, certs: Path, ledger_remote: str | None = None, extra: tuple[str, ...] = ()
) -> list[Child]:
    """The mesh's processes, in start order (not started). ``ledger_remote``: where
    the gateway's sidecar dials the ledger's (default its MTD/1 port; `mtlsdemo chaos`
    puts its fault proxy there); ``extra``: flags for both sidecars."""
    td, ns, suites = cfg.trust_domain, cfg.namespace, cfg.suites
    ledger_addr = f"127.0.0.1:{cfg.ledger_port}"
    gateway_addr = f"127.0.0.1:{cfg.gateway_port}"
    gw_id, cli_id = (workload_id(td, ns, s) for s in ("gateway", "cli"))
    ledger_id = workload_id(cfg.ledger_domain, ns, "ledger")  # another domain's: --domains 2
    policy = cfg.authz_policy

    def allow(who: str) -> list[str]:
        """--allow-id, or the policy file that replaces the lists; beside the lists,
        the scenarios' policy file (empty: it allows all, the list decides)."""
        if policy:
            return ["--authz-policy", str(policy)]
        beside = cfg.scenario_policy
        return ["--allow-id", who, *(("--authz-policy", str(beside)) if beside else ())]

    def asks(admin_port: int) -> list[str]:
        """A plaintext app behind a sidecar: the policy per call, the caller from it."""
        if not policy:
            return []
        return ["--authz-policy", str(policy), "--caller-from-sidecar", f"127.0.0.1:{admin_port}"]

    py = [sys.executable, "-m", "mtlsdemo"]
    data = Path(cfg.data_dir)

    def identity(service: str) -> list[str]:
        """Where a long-running child takes its identity: its files, or the agent's
        socket for it (the CRLs in force kept in the data dir: no identity dir then)."""
        if cfg.agent_sockets is None:
            return ["--identity-dir", str(certs / service)]
        sock = agent_sockets(cfg, service) / service / "agent.sock"
        return [
            "--spiffe-endpoint-socket",
            f"unix://{sock}",
            "--crl-state",
            str(data / f"{service}.crl-seen"),
        ]

    db = ["--db", str(data / "ledger.db")]
    # the ledger's CA: the mesh's, or the second trust domain's (--domains 2)
    ledger_ca = (domain_b_certs(certs) if cfg.domains == 2 else certs) / "ca"
    ledger_metrics = ["--metrics-listen", f"127.0.0.1:{cfg.ledger_metrics_port}"]
    gateway_metrics = ["--metrics-listen", f"127.0.0.1:{cfg.gateway_metrics_port}"]
    gateway_app = f"127.0.0.1:{cfg.gateway_app_port}"
    if cfg.transport == "mtd":
        # the gateway's sidecar also takes the callers (MTD/1, checking their identity);
        # the gateway serves plaintext behind it on loopback
        gateway_inbound = [
            *("--inbound-listen", gateway_addr, "--inbound-target", gateway_app),
            *allow(cli_id),
        ]
        gateway_common = [
            *("serve", "gateway", "--plaintext", "--listen", gateway_app),
            *asks(cfg.gateway_admin_port),
        ]
    else:
        gateway_inbound = []
        gateway_common = [
            *("serve", "gateway", "--listen", gateway_addr),
            *identity("gateway"),
            *allow(cli_id),
            *("--crl", str(certs / "ca" / "crl.pem")),
        ]
    gateway_common += gateway_metrics
    suite_flags = ["--suites", ",".join(s.name for s in suites)] if suites else []
    suite_flags += list(extra)
    if cfg.keylog is not None:
        suite_flags += ["--keylog", str(Path(cfg.keylog).resolve())]
    if cfg.mode == "sidecar":
        ledger_app = f"127.0.0.1:{cfg.ledger_app_port}"
        route = f"127.0.0.1:{cfg.route_port}"
        children = [
            Child(
                "ledger",
                py
                + ["serve", "ledger", "--plaintext", "--listen", ledger_app, *db, *ledger_metrics]
                + asks(cfg.ledger_admin_port),
            ),
            Child(
                "ledger-sidecar",
                py
                + [
                    "sidecar",
                    "--name",
                    "ledger-sidecar",
                    *identity("ledger"),
                    "--inbound-listen",
                    ledger_addr,
                    "--inbound-target",
                    ledger_app,
                    *allow(gw_id),
                    "--admin-listen",
                    f"127.0.0.1:{cfg.ledger_admin_port}",
                    "--crl",
                    str(ledger_ca / "crl.pem"),
                    *suite_flags,
                ],
            ),
            Child(
                "gateway-sidecar",
                py
                + [
                    "sidecar",
                    "--name",
                    "gateway-sidecar",
                    *identity("gateway"),
                    "--route",
                    f"{route}={ledger_remote or ledger_addr}@{ledger_id}",
                    *gateway_inbound,
                    "--admin-listen",
                    f"127.0.0.1:{cfg.gateway_admin_port}",
                    "--crl",
                    str(certs / "ca" / "crl.pem"),
                    *suite_flags,
                ],
            ),
            Child("gateway", py + gateway_common + ["--ledger-addr", route, "--ledger-plaintext"]),
        ]
        if cfg.console_port:
            children.append(Child("console", py + console_argv(cfg, certs)))
        if cfg.agent_sockets is not None:
            children.insert(0, Child("agent", py + agent_argv(cfg, certs)))
        if cfg.agent_sockets is not None and cfg.domains == 2:
            children.insert(1, Child("agent-b", py + agent_argv(cfg, certs, second=True)))
    else:
        children = [
            Child(
                "ledger",
                py
                + [
                    "serve",
                    "ledger",
                    "--listen",
                    ledger_addr,
                    "--identity-dir",
                    str(certs / "ledger"),
                    *allow(gw_id),
                    "--crl",
                    str(certs / "ca" / "crl.pem"),
                    *db,
                    *ledger_metrics,
                ],
            ),
            Child("gateway", py + gateway_common + ["--ledger-addr", ledger_addr]),
        ]
    return children


def agent_sockets(cfg: RunConfig, service: str) -> Path:
    """The socket directory of the agent that serves ``service``: with --domains 2,
    one agent per trust domain (the ledger's is the second's)."""
    assert cfg.agent_sockets is not None
    if cfg.domains == 1:
        return cfg.agent_sockets
    return cfg.agent_sockets / ("b" if service == "ledger" else "a")


def agent_argv(cfg: RunConfig, certs: Path, second: bool = False) -> list[str]:
    """The Workload API agent of the mesh (`--workload-api`), or with --domains 2 the
    agent of either trust domain, each federated with the other's bundle endpoint."""
    assert cfg.agent_sockets is not None
    workloads = ("ledger",) if second else ("gateway",) if cfg.domains == 2 else SERVICES[:2]
    own, other = cfg.agent_admin_port, cfg.agent_b_admin_port
    if second:
        own, other = other, own
    td = cfg.ledger_domain if second else cfg.trust_domain
    federation = (
        [
            "--federate-with",
            f"{cfg.trust_domain if second else cfg.ledger_domain}=http://127.0.0.1:{other}/bundle",
        ]
        if cfg.domains == 2
        else []
    )
    return [
        *("agent", "--certs-dir", str(domain_b_certs(certs) if second else certs)),
        *("--socket-dir", str(agent_sockets(cfg, workloads[0]))),
        *("--svid-ttl", f"{cfg.svid_ttl.total_seconds():g}s"),
        *("--trust-domain", td, "--namespace", cfg.namespace),
        *(a for w in workloads for a in ("--workload", w)),
        *federation,
        *("--key-type", cfg.key_type or DEFAULT_KEY_TYPE),
        *("--admin-listen", f"127.0.0.1:{own}"),
    ]


def existing_key_type(certs: Path) -> str | None:
    """The key type of the leaves already there: `run` never re-keys a user's
    certificates unless --key-type asks for it (and then the bootstrap says so)."""
    path = certs / "gateway" / "tls.crt"
    if not path.exists():
        return None
    try:
        return key_type_of(load_cert(path).public_key())
    except (PkiError, ValueError):
        return None  # the bootstrap will report the broken file


def keep_statuses_fresh(certs: Path, stopping: threading.Event) -> None:
    """What the compose loop and the Kubernetes CronJob do: re-sign every stapled
    status and the CRL every STATUS_REFRESH, well inside their window."""
    while not stopping.wait(STATUS_REFRESH.total_seconds()):
        try:
            refresh_status(FileStore(certs), SERVICES, dt.datetime.now(dt.UTC), STATUS_WINDOW)
        except PkiError as e:
            print(f"!! refresh-status: {e}", file=sys.stderr, flush=True)


def lifetimes(certs: Path, now: dt.datetime, services: tuple[str, ...] = SERVICES) -> list[str]:
    """The remaining time of the CA(s) and of every identity, for the summary."""
    out = []
    for label, path in [("CA", certs / "ca" / "ca.crt"), ("next CA", certs / "ca" / "next.crt")] + [
        (s, certs / s / "tls.crt") for s in services
    ]:
        if path.exists():
            cert = load_cert(path)
            left = cert.not_valid_after_utc - now
            out.append(f"{label} {human(left)}" if left.total_seconds() > 0 else f"{label} EXPIRED")
    return out


def accounts_present(
    gateway_addr: str, cli_dir: Path, names: tuple[str, ...], transport: str = "tls"
) -> set[str]:
    """Which of the demo accounts an earlier run already opened: the "try" lines
    then skip `open` (it would fail with ALREADY_EXISTS)."""
    from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
    from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc

    found = set()
    with caller_channel(gateway_addr, cli_dir, "gateway", transport) as channel:
        stub = pb_grpc.GatewayServiceStub(channel)
        for name in names:
            try:
                stub.GetBalance(pb.GetBalanceRequest(account_id=name), timeout=5)
                found.add(name)
            except grpc.RpcError:
                pass
    return found


def print_summary(cfg: RunConfig, certs: Path, ledger_addr: str, gateway_addr: str) -> None:
    td, ns = cfg.trust_domain, cfg.namespace
    over = " --transport mtd" if cfg.transport == "mtd" else ""
    cli = f"mtlsdemo client --gateway-addr {gateway_addr} --identity-dir {certs / 'cli'}{over}"
    now = dt.datetime.now(dt.UTC)
    existing = accounts_present(gateway_addr, certs / "cli", ("alice", "bob"), cfg.transport)
    allowed = "per the policy" if cfg.authz_policy else workload_id(td, ns, "cli")
    # the identities read from files (with --workload-api the services' come from the agent)
    files = ("cli",) if cfg.workload_api else SERVICES
    lines = [
        f"== mtlsdemo is up ({now:%H:%M:%S}Z, {cfg.mode} mode)",
        *(
            [
                f"   !! KEY LOG ON: both sidecars append every session's secrets to {cfg.keylog};"
                " anyone with that file decrypts the mesh's traffic"
            ]
            if cfg.keylog is not None
            else []
        ),
        *(
            [
                f"   authorization: {cfg.authz_policy} decides who may call what (in place of "
                "--allow-id): mtlsdemo authz matrix --authz-policy FILE shows it"
            ]
            if cfg.authz_policy is not None
            else []
        ),
        *(
            [
                f"   identities: SVIDs from the Workload API agent, each living "
                f"{human(cfg.svid_ttl)} and renewed at half of it, swapped in without a "
                f"restart: curl -s http://127.0.0.1:{cfg.agent_admin_port}/status",
                "   !! STATUS CHECKS OFF between the sidecars: SVIDs carry no stapled status; "
                "their short lifetime is the revocation (the agent stops renewing)",
            ]
            if cfg.workload_api
            else []
        ),
        *(
            [
                f"   trust domains: {td} (gateway, cli) and {cfg.ledger_domain} (ledger), each "
                "its own CA and agent, federated: each agent fetches the other's bundle "
                f"(curl -s http://127.0.0.1:{cfg.agent_b_admin_port}/bundle) and the "
                "sidecars verify each peer against its own domain's bundle only"
            ]
            if cfg.domains == 2
            else []
        ),
        f"   certificates left: {', '.join(lifetimes(certs, now, files))}; stapled statuses "
        f"re-signed every {human(STATUS_REFRESH)} (valid {human(STATUS_WINDOW)})",
        f"   gateway  {gateway_addr}  gRPC mTLS, callers allowed: {allowed}"
        if cfg.transport == "tls"
        else f"   gateway  {gateway_addr}  MTD/1 (gateway-sidecar) -> 127.0.0.1:"
        f"{cfg.gateway_app_port} (gateway), callers allowed: {allowed}",
    ]
    if cfg.mode == "sidecar":
        lines += [
            f"   gateway -> 127.0.0.1:{cfg.route_port} (gateway-sidecar, plaintext on loopback)"
            f" == MTD/1 ==> {ledger_addr} (ledger-sidecar) -> 127.0.0.1:{cfg.ledger_app_port} (ledger)",
            *(
                [
                    f"   console  http://127.0.0.1:{cfg.console_port}/  (the mesh, handshake ladders, "
                    "certificates, failures, break buttons)"
                ]
                if cfg.console_port
                else []
            ),
            f"   sidecar admin  http://127.0.0.1:{cfg.gateway_admin_port}/status (gateway-sidecar)",
            f"                  http://127.0.0.1:{cfg.ledger_admin_port}/status (ledger-sidecar)",
        ]
    else:
        lines += [
            f"   ledger   {ledger_addr}  gRPC mTLS, callers allowed: "
            + ("per the policy" if cfg.authz_policy else workload_id(td, ns, "gateway")),
            # the console draws the sidecars' handshakes; grpcio's own TLS shows none
            "   console  none in native mode (no sidecars to watch): `make run` without "
            "--mode native has it; `mtlsdemo handshake --tls13 --connect "
            f"{gateway_addr}` shows a native TLS 1.3 handshake",
        ]
    lines += [
        f"   metrics  http://127.0.0.1:{cfg.gateway_metrics_port}/metrics (gateway)",
        f"            http://127.0.0.1:{cfg.ledger_metrics_port}/metrics (ledger)",
    ]
    if cfg.mode == "sidecar":
        lines.append("== mesh edges (from the sidecars' /status)")
        lines.append(
            f"   {'seen by':<16} {'client':<47} {'server':<46} {'suite':<32} "
            f"{'ok':>4} {'failed':>6}"
        )
        for name, port in (
            ("gateway-sidecar", cfg.gateway_admin_port),
            ("ledger-sidecar", cfg.ledger_admin_port),
        ):
            try:
                status = fetch_status(port)
            except OSError as e:
                lines.append(f"   {name:<16} (status unavailable: {e})")
                continue
            for edge in status["edges"]:
                client, server = (
                    (edge["local"], edge["peer"])
                    if edge["role"] == "client"
                    else (edge["peer"], edge["local"])
                )
                lines.append(
                    f"   {name:<16} {client:<47} {server:<46} {edge['suite']:<32} "
                    f"{edge['ok']:>4} {edge['failed']:>6}"
                )
    if cfg.mode == "sidecar":
        ports = {name: getattr(cfg, f"{name}_port") for name in DEFAULT_PORTS}
        lines += start_here.printed(ports, cfg.certs_dir, cfg.transport)
    lines += [
        "== more to try (in another terminal; `. .venv/bin/activate` first):",
        *[
            f"     {cli} open {name} --id {name}"
            for name in ("alice", "bob")
            if name not in existing
        ],
        f"     {cli} deposit alice 100.00",
        f"     {cli} transfer alice bob 12.50",
        f"     {cli} balance bob",
        f"     {cli} statement alice --follow",
        f"     mtlsdemo loadgen --gateway-addr {gateway_addr} --identity-dir {certs / 'cli'}{over} "
        "--rps 50 --duration 10",
        f"     mtlsdemo certs inspect {certs / 'gateway' / 'tls.crt'} --ca {certs / 'ca' / 'ca.crt'}",
        f"     mtlsdemo certs rotate-ca plan --out {certs}      (then prepare, switch, finish)",
        f"     mtlsdemo certs revoke gateway --out {certs}      (then `certs bootstrap` re-issues)",
    ]
    if cfg.mode == "sidecar":
        lines.append(f"     mtlsdemo handshake --trace --connect {ledger_addr} --certs-dir {certs}")
        lines.append(f"     curl -s http://127.0.0.1:{cfg.ledger_admin_port}/status")
    else:
        lines.append("     mtlsdemo handshake --trace")
    print("\n".join(lines), flush=True)
