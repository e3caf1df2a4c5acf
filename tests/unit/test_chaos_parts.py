"""The chaos run's parts, alone: the audit (it must fail on a lost, duplicated,
phantom or mismatched transfer, on drift and on a hung attempt), the seeded
schedule, the safe retry, and the fault proxy against a local echo server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from mtlsdemo.chaos.audit import Row, audit
from mtlsdemo.chaos.faultproxy import FaultProxy
from mtlsdemo.chaos.schedule import KINDS, plan
from mtlsdemo.rpc.retry import RetryPolicy, call_with_retry

P = "run1"


def journal_and_ledger() -> tuple[list[dict], list[Row], dict[str, int]]:
    """Two accounts funded, two transfers acknowledged (one after a retry), one
    failed but applied: a consistent run."""
    j = [
        {"e": "attempt", "key": f"{P}-fund1"},
        {"e": "try", "key": f"{P}-fund1", "n": 1, "code": "OK", "seconds": 0.01},
        {"e": "ack", "key": f"{P}-fund1", "transfer_id": 1, "seconds": 0.01},
        {"e": "attempt", "key": f"{P}-fund2"},
        {"e": "ack", "key": f"{P}-fund2", "transfer_id": 2, "seconds": 0.01},
        {"e": "attempt", "key": f"{P}-t3"},
        {"e": "try", "key": f"{P}-t3", "n": 1, "code": "UNAVAILABLE", "seconds": 0.2},
        {"e": "try", "key": f"{P}-t3", "n": 2, "code": "OK", "seconds": 0.01},
        {"e": "ack", "key": f"{P}-t3", "transfer_id": 3, "seconds": 0.3},
        {"e": "attempt", "key": f"{P}-t4"},
        {"e": "fail", "key": f"{P}-t4", "code": "DEADLINE_EXCEEDED", "seconds": 3.0},
    ]
    rows = [
        Row(1, "deposit", None, "a", 1000, f"{P}-fund1"),
        Row(2, "deposit", None, "b", 1000, f"{P}-fund2"),
        Row(3, "transfer", "a", "b", 10, f"{P}-t3"),
        Row(4, "transfer", "b", "a", 5, f"{P}-t4"),
        Row(5, "deposit", None, "c", 7, "someone-else"),  # not this run's: ignored but counted
    ]
    return j, rows, {"a": 995, "b": 1005, "c": 7}


def test_a_consistent_run_passes() -> None:
    j, rows, balances = journal_and_ledger()
    r = audit(j, rows, balances, P, deadline=3.0)
    assert r.ok, r.as_dict()
    assert (r.attempted, r.acknowledged, r.failed_but_applied) == (4, 3, 1)
    assert r.failed == {"DEADLINE_EXCEEDED": 1} and r.attempts == 3


@pytest.mark.parametrize(
    ("change", "finding"),
    [
        ("lose", "lost"),
        ("duplicate", "duplicated"),
        ("phantom", "phantom"),
        ("wrong-id", "mismatched"),
        ("drift", "balance_drift_cents"),
        ("hang", "hung_attempts"),
    ],
)
def test_each_kind_of_damage_fails_the_audit(change: str, finding: str) -> None:
    j, rows, balances = journal_and_ledger()
    if change == "lose":  # acknowledged, but the ledger never had it
        rows = [r for r in rows if r.idempotency_key != f"{P}-t3"]
        balances = {"a": 1000 + 5, "b": 1000 - 5, "c": 7}
    elif change == "duplicate":  # the same movement applied twice
        rows.append(Row(6, "transfer", "a", "b", 10, f"{P}-t3"))
        balances = {"a": 985, "b": 1015, "c": 7}
    elif change == "phantom":  # in the ledger, never sent by the client
        rows.append(Row(6, "transfer", "a", "b", 1, f"{P}-t99"))
        balances = {"a": 994, "b": 1006, "c": 7}
    elif change == "wrong-id":
        j = [
            dict(e, transfer_id=9) if e.get("key") == f"{P}-t3" and e["e"] == "ack" else e
            for e in j
        ]
    elif change == "drift":  # money made from nothing
        balances = {**balances, "a": balances["a"] + 1}
    elif change == "hang":
        j.append(
            {"e": "try", "key": f"{P}-t4", "n": 2, "code": "DEADLINE_EXCEEDED", "seconds": 9.0}
        )
    r = audit(j, rows, balances, P, deadline=3.0)
    assert not r.ok
    assert r.as_dict()[finding], r.as_dict()


def test_the_schedule_is_seeded_bounded_and_kills_every_process_first() -> None:
    a, b = plan(7, 60), plan(7, 60)
    assert a == b and a != plan(8, 60)
    assert len(a) == 16 and {f.kind for f in a} == set(KINDS)
    assert {f.kind for f in a[:4]} == {k for k in KINDS if k.startswith("kill:")}
    starts = [f.at for f in a]
    assert starts == sorted(starts) and starts[-1] < 60 * 0.8
    for f, nxt in zip(a, a[1:], strict=False):
        assert f.at + f.hold < nxt.at  # never two at once
    with pytest.raises(ValueError, match="unknown fault"):
        plan(1, 60, ("kill:everything",))


class FakeError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_retry_repeats_the_same_request_only_for_transient_failures() -> None:
    seen: list[object] = []
    outcomes = [
        FakeError(grpc.StatusCode.UNAVAILABLE),
        FakeError(grpc.StatusCode.DEADLINE_EXCEEDED),
        "ok",
    ]

    def call(request: object, timeout: float) -> object:
        seen.append(request)
        out = outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return out

    request = object()
    assert call_with_retry(call, request, RetryPolicy(), sleep=lambda _s: None) == "ok"
    assert seen == [request] * 3  # the same request (and idempotency key) every time
    for error in (
        FakeError(grpc.StatusCode.FAILED_PRECONDITION, "insufficient funds"),
        FakeError(grpc.StatusCode.UNAVAILABLE, "Ssl handshake failed: CERTIFICATE_VERIFY_FAILED"),
    ):
        calls: list[int] = []

        def refuse(
            _r: object, timeout: float, error: Exception = error, calls: list[int] = calls
        ) -> None:
            calls.append(1)
            raise error

        with pytest.raises(grpc.RpcError):
            call_with_retry(refuse, request, RetryPolicy(), sleep=lambda _s: None)
        assert calls == [1]  # an answer, not a glitch: asked once


def test_retry_gives_up_within_its_budget() -> None:
    now = [0.0]

    def call(_r: object, timeout: float) -> None:
        now[0] += timeout
        raise FakeError(grpc.StatusCode.DEADLINE_EXCEEDED)

    def sleep(s: float) -> None:
        now[0] += s

    with pytest.raises(grpc.RpcError):
        call_with_retry(
            call, None, RetryPolicy(deadline=1.0, budget=5.0), clock=lambda: now[0], sleep=sleep
        )
    assert now[0] <= 5.0 + 1.0


@pytest.fixture
def echo() -> Iterator[int]:
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return

            def one(c: socket.socket) -> None:
                with c, contextlib.suppress(OSError):  # the proxy's resets
                    while data := c.recv(65536):
                        c.sendall(data)

            threading.Thread(target=one, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield port
    srv.close()


def roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def test_the_fault_proxy_passes_bytes_and_injects_each_fault(echo: int) -> None:
    proxy = FaultProxy(("127.0.0.1", echo), seed=3)
    port = proxy.start()
    try:
        payload = bytes(range(256)) * 40
        assert roundtrip(port, payload) == payload
        proxy.set_partial(True)  # tiny writes: the same bytes arrive
        assert roundtrip(port, payload) == payload and proxy.counts["partial_chunks"] >= 1
        proxy.set_partial(False)
        proxy.set_latency(0.2)
        t0 = time.monotonic()
        assert roundtrip(port, b"x") == b"x"
        assert time.monotonic() - t0 >= 0.4  # added each way
        proxy.set_latency(0.0)
        proxy.corrupt(1)
        got = roundtrip(port, payload)
        assert (
            len(got) == len(payload) and sum(a != b for a, b in zip(got, payload, strict=True)) == 1
        )
        proxy.stall(True)
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"held")
            with pytest.raises(TimeoutError):
                s.recv(10)
            proxy.stall(False)
            s.settimeout(5)
            assert s.recv(10) == b"held"
            assert proxy.reset_all() == 1
            with pytest.raises(ConnectionResetError):
                s.recv(10)
    finally:
        proxy.stop()


def test_a_reset_meeting_a_connection_that_is_ending_resets_the_rest(echo: int) -> None:
    """net:reset while a relayed connection is closing: its socket may already be
    closed (setsockopt: EBADF); the fault must still reset what is open, not abort
    the whole soak (it did: the run ended with its workers on a closed channel)."""
    proxy = FaultProxy(("127.0.0.1", echo), seed=3)
    port = proxy.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"open")
            assert s.recv(10) == b"open"
            (pair,) = proxy._conns  # the relay's own view of it
            ending = pair[1].get_extra_info("socket")
            ending._sock.close()  # its fd gone, as in a connection ending
            assert proxy.reset_all() == 1
            with pytest.raises(ConnectionResetError):
                s.recv(10)
    finally:
        proxy.stop()
