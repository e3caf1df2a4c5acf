"""Starting mtlsdemo components as real processes on 127.0.0.1 for tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mtlsdemo.addresses import mesh_env, run_port_flags, run_ports
from mtlsdemo.rpc.credentials import secure_channel
from mtlsdemo.waiting import wait_until

from support.identities import CLI_ID, GATEWAY_ID  # noqa: F401  (re-exported)


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


def wait_for(
    cond: Callable[[], object],
    timeout: float = 10.0,
    what: str = "condition",
    ignore: tuple[type[BaseException], ...] = (),
    check: Callable[[], None] | None = None,
    describe: Callable[[], object] | None = None,
    interval: float = 0.05,
) -> object:
    """Wait on the condition itself (never a fixed sleep); the timeout names it."""
    return wait_until(
        cond,
        timeout=timeout,
        what=what,
        ignore=ignore,
        check=check,
        describe=describe,
        interval=interval,
    )


def run_command(
    root: Path, *extra: str, data_dir: Path | None = None
) -> tuple[list[str], dict[str, int]]:
    """`mtlsdemo run` with every port its own free one (never the fixed defaults,
    which an earlier test's processes or sockets may still hold) and the ports."""
    ports = run_ports()
    argv = [
        sys.executable,
        "-m",
        "mtlsdemo",
        "run",
        "--certs-dir",
        str(root / "certs"),
        "--data-dir",
        str(data_dir or root / "var"),
    ]
    return argv + run_port_flags(ports) + list(extra), ports


@contextlib.contextmanager
def running_mesh(root: Path, *extra: str):
    """`mtlsdemo run` on free ports, up (its "== running" line seen); yields the
    ports and the environment with which `break`/`tour` find it; stops it after."""
    argv, ports = run_command(root, "--traffic-seconds", "0", *extra)
    log_path = root / "run.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(
                lambda: "== running" in log_path.read_text(),
                timeout=60,
                what="mtlsdemo run to be up",
                check=lambda: proc.poll() is None or pytest.fail(log_path.read_text()),
            )
            yield ports, {**os.environ, **mesh_env(ports)}
        finally:
            proc.terminate()
            proc.wait(30)
