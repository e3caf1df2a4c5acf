"""Ledger invariants under random operation sequences (hypothesis), idempotency,
validation, and durability across reopening the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from mtlsdemo.ledger.store import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    LedgerError,
    LedgerStore,
    NotFound,
)

ACCOUNTS = ["a", "b", "c"]
KEYS = [f"k{i}" for i in range(8)]  # few keys: replays and conflicting reuse happen often


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.store = LedgerStore(":memory:")
        for a in ACCOUNTS:
            self.store.create_account(a, f"owner {a}")
        self.model = dict.fromkeys(ACCOUNTS, 0)
        self.applied: dict[str, tuple] = {}

    def _apply(self, key: str, movement: tuple, fn) -> None:
        before = dict(self.model)
        try:
            result, replayed = fn()
        except FailedPrecondition:
            assert self.model == before
            if key in self.applied:
                assert self.applied[key] != movement
            return
        except InvalidArgument:
            return
        if key in self.applied:
            assert replayed and self.applied[key] == movement
            return
        assert not replayed
        self.applied[key] = movement
        kind, src, dst, amount = movement
        if src:
            self.model[src] -= amount
        self.model[dst] += amount
        assert result.amount_cents == amount

    @rule(
        account=st.sampled_from(ACCOUNTS), amount=st.integers(-5, 1000), key=st.sampled_from(KEYS)
    )
    def deposit(self, account: str, amount: int, key: str) -> None:
        self._apply(
            key, ("deposit", "", account, amount), lambda: self.store.deposit(account, amount, key)
        )

    @rule(
        src=st.sampled_from(ACCOUNTS),
        dst=st.sampled_from(ACCOUNTS),
        amount=st.integers(-5, 1500),
        key=st.sampled_from(KEYS),
    )
    def transfer(self, src: str, dst: str, amount: int, key: str) -> None:
        if src == dst:
            with pytest.raises(InvalidArgument):
                self.store.transfer(src, dst, amount, key)
            return
        if amount > 0 and key not in self.applied and self.model[src] < amount:
            with pytest.raises(FailedPrecondition, match="insufficient funds"):
                self.store.transfer(src, dst, amount, key)
            return
        self._apply(
            key, ("transfer", src, dst, amount), lambda: self.store.transfer(src, dst, amount, key)
        )

    @invariant()
    def balances_match_model_and_never_negative(self) -> None:
        for a in ACCOUNTS:
            bal = self.store.get_account(a).balance_cents
            assert bal == self.model[a] and bal >= 0

    @invariant()
    def total_equals_deposits(self) -> None:
        balances, deposits = self.store.totals()
        assert balances == deposits == sum(self.model.values())


TestLedgerInvariants = LedgerMachine.TestCase
TestLedgerInvariants.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    suppress_health_check=[HealthCheck.too_slow],
    deadline=None,
)


def test_replay_returns_first_result_and_moves_money_once() -> None:
    s = LedgerStore(":memory:")
    s.create_account("a", "A")
    s.create_account("b", "B")
    s.deposit("a", 1000, "d1")
    first, replayed1 = s.transfer("a", "b", 300, "t1")
    again, replayed2 = s.transfer("a", "b", 300, "t1")
    assert (replayed1, replayed2) == (False, True)
    assert again == first
    assert s.get_account("a").balance_cents == 700
    with pytest.raises(FailedPrecondition, match="already used for a different movement"):
        s.transfer("a", "b", 301, "t1")


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.create_account("bad id!", "x"), InvalidArgument),
        (lambda s: s.create_account("a", "dup"), AlreadyExists),
        (lambda s: s.create_account("z", "   "), InvalidArgument),
        (lambda s: s.get_account("nobody"), NotFound),
        (lambda s: s.deposit("a", 0, "k"), InvalidArgument),
        (lambda s: s.deposit("a", 10**14, "k"), InvalidArgument),
        (lambda s: s.deposit("nobody", 5, "k"), NotFound),
        (lambda s: s.deposit("a", 5, ""), InvalidArgument),
        (lambda s: s.transfer("a", "a", 5, "k"), InvalidArgument),
        (lambda s: s.transfer("a", "nobody", 5, "k"), NotFound),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(call, error: type[LedgerError]) -> None:
    s = LedgerStore(":memory:")
    s.create_account("a", "A")
    s.deposit("a", 100, "seed")
    with pytest.raises(error):
        call(s)
    assert s.get_account("a").balance_cents == 100
    assert len(s.list_transfers()) == 1


def test_committed_transfers_survive_reopen(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    s = LedgerStore(db)
    s.create_account("a", "A")
    s.create_account("b", "B")
    s.deposit("a", 500, "d")
    s.transfer("a", "b", 200, "t")
    s.close()
    s2 = LedgerStore(db)
    assert s2.get_account("b").balance_cents == 200
    assert [t.idempotency_key for t in s2.list_transfers()] == ["d", "t"]
    assert s2.transfer("a", "b", 200, "t")[1] is True  # the key is remembered too
    assert s2.totals() == (500, 500)
