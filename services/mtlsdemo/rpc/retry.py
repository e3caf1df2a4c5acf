"""Retrying a money movement the safe way: the same idempotency key on every
attempt (the ledger applies a key once and replays its first result), each attempt
under its own deadline, bounded exponential backoff, and only for failures that
say "try again": UNAVAILABLE (nothing reached the ledger, or the connection broke
on the way back) and DEADLINE_EXCEEDED (the attempt may or may not have been
applied: the replay tells). Everything else is an answer, not a glitch."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from mtlsdemo.rpc.diagnose import is_tls_refusal

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# Channel options: reconnect within a second of a peer coming back (gRPC's default
# backoff starts at 1 s and grows to two minutes while a restarting peer refuses).
FAST_RECONNECT: list[tuple[str, object]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


@dataclass(frozen=True)
class RetryPolicy:
    deadline: float = 5.0  # seconds per attempt
    budget: float = 30.0  # seconds for all attempts and waits together
    first_backoff: float = 0.05
    max_backoff: float = 1.0


@dataclass(frozen=True)
class CallAttempt:
    number: int
    code: str  # "OK" or the status name
    seconds: float


def call_with_retry(
    call: Callable[..., Any],
    request: Any,
    policy: RetryPolicy,
    on_attempt: Callable[[CallAttempt], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """``call(request, timeout=…)`` until it answers; raises the last RpcError."""
    start = clock()
    backoff = policy.first_backoff
    n = 0
    while True:
        n += 1
        left = policy.budget - (clock() - start)
        t0 = clock()
        try:
            response = call(request, timeout=max(0.1, min(policy.deadline, left)))
        except grpc.RpcError as e:
            if on_attempt is not None:
                on_attempt(CallAttempt(n, e.code().name, clock() - t0))
            if (
                e.code() not in RETRYABLE
                or is_tls_refusal(e.details())  # the same certificate is refused again
                or clock() - start + backoff >= policy.budget
            ):
                raise
            sleep(backoff)
            backoff = min(backoff * 2, policy.max_backoff)
            continue
        if on_attempt is not None:
            on_attempt(CallAttempt(n, "OK", clock() - t0))
        return response
