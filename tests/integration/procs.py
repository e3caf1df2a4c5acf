"""Starting mtlsdemo components as real processes on 127.0.0.1 for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from conftest import metric_value  # noqa: F401  (re-exported for the tests here)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mtlsdemo.rpc.credentials import secure_channel
from mtlsdemo.waiting import wait_until

GATEWAY_ID = "spiffe://mtls-demo.local/ns/default/sa/gateway"
CLI_ID = "spiffe://mtls-demo.local/ns/default/sa/cli"


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> Proc:
        f = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=f,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1", **self.extra_env),
        )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self) -> None:
        """For wait_until's check: a dead process will never become ready."""
        if not self.alive():
            raise AssertionError(f"{self.name} exited early:\n{self.output()}")


def mtlsdemo(*args: str) -> list[str]:
    return [sys.executable, "-m", "mtlsdemo", *args]


def wait_healthy(
    address: str, tls_dir: Path, server_name: str, proc: Proc, timeout: float = 30.0
) -> None:
    channel = secure_channel(address, tls_dir, server_name)
    serving = health_pb2.HealthCheckResponse.SERVING
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        wait_until(
            lambda: stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == serving,
            timeout=timeout,
            what=f"{proc.name} healthy",
            interval=0.1,
            ignore=(grpc.RpcError,),
            check=proc.assert_alive,
        )
    finally:
        channel.close()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()
