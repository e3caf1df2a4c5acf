"""``mtlsdemo loadgen``: steady traffic against the gateway, with a summary.

Opens a few accounts, funds them, then issues a mix of transfers, deposits and
balance reads at a fixed rate from a pool of worker threads.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections import Counter
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
from mtlsdemo.gateway.client import explain, gateway_channel
from mtlsdemo.pki.material import IdentitySource


@dataclass
class LoadResult:
    requests: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def errors(self) -> int:
        return sum(n for code, n in self.codes.items() if code != "OK")

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(p / 100 * len(s)))]

    def summary(self) -> str:
        rate = self.requests / self.seconds if self.seconds else 0.0
        codes = ", ".join(f"{c}={n}" for c, n in sorted(self.codes.items()))
        return (
            f"requests {self.requests} in {self.seconds:.1f}s ({rate:.1f}/s); "
            f"codes: {codes or 'none'}; latency ms p50 {self.percentile(50) * 1e3:.2f} "
            f"p90 {self.percentile(90) * 1e3:.2f} p99 {self.percentile(99) * 1e3:.2f}"
        )


def _one_call(stub: pb_grpc.GatewayServiceStub, accounts: list[str], rng: random.Random) -> None:
    op = rng.random()
    if op < 0.6:
        a, b = rng.sample(accounts, 2)
        stub.Transfer(
            pb.TransferRequest(
                from_account_id=a, to_account_id=b, amount_cents=rng.randint(1, 500)
            ),
            timeout=5,
        )
    elif op < 0.7:
        stub.Deposit(
            pb.DepositRequest(
                account_id=rng.choice(accounts), amount_cents=rng.randint(100, 10_000)
            ),
            timeout=5,
        )
    else:
        stub.GetBalance(pb.GetBalanceRequest(account_id=rng.choice(accounts)), timeout=5)


class LoadSetupError(RuntimeError):
    """The load could not start (its accounts were not opened): one line, exit 1."""


def run_load(
    address: str,
    tls_dir: Path,
    server_name: str,
    rps: float,
    duration: float,
    concurrency: int = 4,
    accounts: int = 4,
    progress: bool = True,
    transport: str = "auto",
) -> LoadResult:
    material = IdentitySource(tls_dir).current  # read once: the calls and the diagnosis
    channel = gateway_channel(address, tls_dir, server_name, transport, material)
    stub = pb_grpc.GatewayServiceStub(channel)
    ids = []
    try:
        for i in range(accounts):
            r = stub.OpenAccount(pb.OpenAccountRequest(owner=f"loadgen-{i}"), timeout=10)
            stub.Deposit(
                pb.DepositRequest(account_id=r.account_id, amount_cents=1_000_000), timeout=10
            )
            ids.append(r.account_id)
    except grpc.RpcError as e:  # as `mtlsdemo client` says it: who refused whom, or why
        said = explain(e, channel, material, address, server_name, tls_dir)
        raise LoadSetupError(f"loadgen: its accounts could not be opened: {said}") from None
    result = LoadResult()
    lock = threading.Lock()
    rng = random.Random()

    def call() -> None:
        t0 = time.perf_counter()
        try:
            _one_call(stub, ids, rng)
            code = "OK"
        except grpc.RpcError as e:
            code = e.code().name
        dt = time.perf_counter() - t0
        with lock:
            result.requests += 1
            result.codes[code] += 1
            result.latencies.append(dt)

    start = time.perf_counter()
    interval = 1.0 / rps if rps > 0 else 0.0
    pending: set[futures.Future[Any]] = set()
    with futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        n = 0
        last_draw = 0.0
        while (now := time.perf_counter() - start) < duration:
            pending = {f for f in pending if not f.done()}
            if len(pending) < concurrency * 2:  # bounded backlog: never queue without limit
                pending.add(pool.submit(call))
                n += 1
            if progress and now - last_draw >= 0.25:
                last_draw = now
                done = int(30 * now / duration)
                sys.stderr.write(
                    f"\r[{'#' * done}{'.' * (30 - done)}] {now:4.1f}s "
                    f"{result.requests} requests, {result.errors} errors"
                )
                sys.stderr.flush()
            next_at = n * interval
            if next_at > now:
                time.sleep(next_at - now)
        futures.wait(pending)
    result.seconds = time.perf_counter() - start
    if progress:
        sys.stderr.write(
            f"\r[{'#' * 30}] {result.seconds:4.1f}s {result.requests} requests, "
            f"{result.errors} errors\n"
        )
    channel.close()
    return result
