"""``mtlsdemo run``: the whole system as local processes on 127.0.0.1.

Bootstraps certificates, starts the ledger and the gateway as child processes
(their logs prefixed by component), waits until both report SERVING over mTLS,
sends a little traffic, prints where everything is, then waits for Ctrl-C.
A child that dies is reported with its last log lines.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mtlsdemo.loadgen import run_load
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.identity import spiffe_id
from mtlsdemo.rpc.credentials import secure_channel

COLORS = {"ledger": "\033[36m", "gateway": "\033[35m"}


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=20))

    def start(self, color: bool) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env, text=True, bufsize=1, start_new_session=True)
        prefix = f"{COLORS.get(self.name, '')}[{self.name}]\033[0m " if color else f"[{self.name}] "
        threading.Thread(target=self._pump, args=(prefix,), daemon=True).start()

    def _pump(self, prefix: str) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            self.tail.append(line.rstrip())
            sys.stdout.write(prefix + line)
            sys.stdout.flush()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_serving(address: str, tls_dir: Path, server_name: str, deadline: float,
                 children: list[Child]) -> None:
    channel = secure_channel(address, tls_dir, server_name)
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        while True:
            for c in children:
                if c.proc and c.proc.poll() is not None:
                    raise ChildDied(c)
            try:
                r = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{server_name} at {address} not SERVING in time")
            time.sleep(0.1)
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


def run(args) -> int:  # noqa: ANN001
    certs = Path(args.certs_dir)
    td, ns = args.trust_domain, args.namespace
    ports = {"--ledger-port": args.ledger_port, "--gateway-port": args.gateway_port,
             "--ledger-metrics-port": args.ledger_metrics_port,
             "--gateway-metrics-port": args.gateway_metrics_port}
    for flag, port in ports.items():
        if not port_free(port):
            print(f"error: {flag} {port}: 127.0.0.1:{port} is in use (another `mtlsdemo run`?)",
                  file=sys.stderr)
            return 2
    print(f"== certificates ({certs}/)")
    for change in bootstrap(BootstrapRequest(out=certs, services=("ledger", "gateway", "cli"),
                                             trust_domain=td, namespace=ns)):
        print(f"   {change}")
    ledger_addr = f"127.0.0.1:{args.ledger_port}"
    gateway_addr = f"127.0.0.1:{args.gateway_port}"
    py = [sys.executable, "-m", "mtlsdemo"]
    children = [
        Child("ledger", py + ["serve", "ledger", "--listen", ledger_addr,
                              "--tls-dir", str(certs / "ledger"),
                              "--allow-id", spiffe_id(td, ns, "gateway"),
                              "--db", str(Path(args.data_dir) / "ledger.db"),
                              "--metrics-listen", f"127.0.0.1:{args.ledger_metrics_port}"]),
        Child("gateway", py + ["serve", "gateway", "--listen", gateway_addr,
                               "--tls-dir", str(certs / "gateway"),
                               "--allow-id", spiffe_id(td, ns, "cli"),
                               "--ledger-addr", ledger_addr,
                               "--metrics-listen", f"127.0.0.1:{args.gateway_metrics_port}"]),
    ]
    color = sys.stdout.isatty()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        print("== starting ledger and gateway")
        for c in children:
            c.start(color)
        deadline = time.monotonic() + 30
        wait_serving(ledger_addr, certs / "cli", "ledger", deadline, children)
        wait_serving(gateway_addr, certs / "cli", "gateway", deadline, children)
        if args.traffic_seconds > 0:
            print(f"== traffic: {args.traffic_seconds:.0f}s of transfers through the gateway")
            result = run_load(gateway_addr, certs / "cli", "gateway", rps=20,
                              duration=args.traffic_seconds, concurrency=2,
                              progress=sys.stderr.isatty())
            print(f"   {result.summary()}")
        print_summary(args, certs, ledger_addr, gateway_addr)
        if args.exit_after_traffic:
            return 0
        print("== running; Ctrl-C stops everything")
        while not stopping.is_set():
            for c in children:
                if c.proc and c.proc.poll() is not None:
                    raise ChildDied(c)
            stopping.wait(0.5)
        return 0
    except ChildDied as e:
        report_death(e.child)
        return 1
    except KeyboardInterrupt:
        print("\n== stopping")
        return 0
    finally:
        for c in reversed(children):
            c.stop()


def print_summary(args, certs: Path, ledger_addr: str, gateway_addr: str) -> None:  # noqa: ANN001
    cli = f"mtlsdemo client --gateway-addr {gateway_addr} --tls-dir {certs / 'cli'}"
    print(f"""== mtlsdemo is up ({dt.datetime.now(dt.UTC):%H:%M:%S}Z)
   gateway  {gateway_addr}  gRPC mTLS, callers allowed: {spiffe_id(args.trust_domain, args.namespace, 'cli')}
   ledger   {ledger_addr}  gRPC mTLS, callers allowed: {spiffe_id(args.trust_domain, args.namespace, 'gateway')}
   metrics  http://127.0.0.1:{args.gateway_metrics_port}/metrics (gateway)
            http://127.0.0.1:{args.ledger_metrics_port}/metrics (ledger)
   try (in another terminal; `. .venv/bin/activate` first):
     {cli} open alice --id alice
     {cli} deposit alice 100.00
     {cli} open bob --id bob
     {cli} transfer alice bob 12.50
     {cli} balance bob
     {cli} statement alice --follow
     mtlsdemo loadgen --gateway-addr {gateway_addr} --tls-dir {certs / 'cli'} --rps 50 --duration 10
     mtlsdemo certs inspect {certs / 'gateway' / 'tls.crt'} --ca {certs / 'ca' / 'ca.crt'}""",
          flush=True)
