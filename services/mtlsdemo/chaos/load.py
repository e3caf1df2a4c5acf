"""The chaos run's steady load: transfers among a fixed set of accounts through
the gateway, each with a key the client made, retried with that same key
(`rpc/retry.py`), every step journaled before it counts."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import grpc

from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
from mtlsdemo.chaos.calllog import Journal
from mtlsdemo.gateway.client import gateway_channel
from mtlsdemo.pki.material import IdentitySource
from mtlsdemo.rpc.retry import CallAttempt, RetryPolicy, call_with_retry

FUNDS_CENTS = 1_000_000  # per account: transfers of 1..100 cents never run it dry


class Load:
    def __init__(
        self,
        gateway_addr: str,
        cli_dir: Path,
        journal: Journal,
        prefix: str,
        policy: RetryPolicy,
        accounts: int = 4,
        rate: float = 20.0,
        concurrency: int = 4,
        seed: int = 0,
        transport: str = "tls",
    ) -> None:
        self.gateway_addr = gateway_addr
        self.transport = transport  # tls: native gRPC; mtd: a sidecar in this process
        self.source = IdentitySource(cli_dir)
        self.cli_dir = cli_dir
        self.channel = gateway_channel(
            gateway_addr, cli_dir, "gateway", transport, self.source.current
        )
        self.stub = pb_grpc.GatewayServiceStub(self.channel)
        self.journal, self.prefix, self.policy = journal, prefix, policy
        self.accounts = [f"{prefix}-a{i}" for i in range(accounts)]
        self.rate, self.concurrency = rate, concurrency
        self.rng = random.Random(seed)
        self._n = 0
        self._lock = threading.Lock()

    def _key(self, what: str) -> str:
        with self._lock:
            self._n += 1
            return f"{self.prefix}-{what}{self._n}"

    def movement(self, method: str, request: Any, key: str, **fields: Any) -> bool:
        """One money movement, retried; journaled: attempt, each try, then ack or fail.
        The stub is looked up at each attempt: a rollover may have replaced the channel."""

        def call(req: Any, timeout: float) -> Any:
            return getattr(self.stub, method)(req, timeout=timeout)

        j = self.journal
        j.write("attempt", key=key, **fields)

        def tried(a: CallAttempt) -> None:
            j.write("try", key=key, n=a.number, code=a.code, seconds=round(a.seconds, 4))

        t0 = time.monotonic()
        try:
            r = call_with_retry(call, request, self.policy, tried)
        except grpc.RpcError as e:
            j.write("fail", key=key, code=e.code().name, seconds=round(time.monotonic() - t0, 4))
            return False
        j.write(
            "ack",
            key=key,
            transfer_id=r.transfer_id,
            replayed=r.replayed,
            seconds=round(time.monotonic() - t0, 4),
        )
        return True

    def setup(self) -> None:
        """Open and fund the accounts (retried like everything else)."""
        for account in self.accounts:
            try:
                call_with_retry(
                    self.stub.OpenAccount,
                    pb.OpenAccountRequest(owner="chaos", account_id=account),
                    self.policy,
                )
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.ALREADY_EXISTS:  # a retry after it worked
                    raise
            key = self._key("fund")
            request = pb.DepositRequest(
                account_id=account, amount_cents=FUNDS_CENTS, idempotency_key=key
            )
            if not self.movement("Deposit", request, key, kind="deposit", to=account):
                raise RuntimeError(f"could not fund {account}: see the journal")

    def transfer(self) -> None:
        a, b = self.rng.sample(self.accounts, 2)
        amount = self.rng.randint(1, 100)
        key = self._key("t")
        request = pb.TransferRequest(
            from_account_id=a, to_account_id=b, amount_cents=amount, idempotency_key=key
        )
        self.movement("Transfer", request, key, kind="transfer", frm=a, to=b, cents=amount)

    def run(self, stop: threading.Event) -> None:
        """``concurrency`` workers sharing one rate until ``stop``."""
        interval = self.concurrency / self.rate

        def worker(offset: float) -> None:
            next_at = time.monotonic() + offset
            while not stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    return
                next_at = max(next_at + interval, time.monotonic())
                self.transfer()

        threads = [
            threading.Thread(target=worker, args=(i * interval / self.concurrency,), daemon=True)
            for i in range(self.concurrency)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def refresh(self) -> None:
        """New cli files (a CA rollover): new calls go on a channel built from them;
        the old channel is closed once its calls have had their deadline."""
        material = self.source.check()
        if material is None:
            return
        old = self.channel
        self.channel = gateway_channel(
            self.gateway_addr, self.cli_dir, "gateway", self.transport, material
        )
        self.stub = pb_grpc.GatewayServiceStub(self.channel)
        timer = threading.Timer(self.policy.deadline + 1, old.close)
        timer.daemon = True
        timer.start()

    def holds(self, serial: str, cas: int) -> bool:
        """After refreshing: are we on this cli certificate, trusting ``cas`` CAs?"""
        self.refresh()
        m = self.source.current
        return f"{m.leaf.serial_number:x}" == serial and len(m.cas) == cas

    def close(self) -> None:
        self.channel.close()
