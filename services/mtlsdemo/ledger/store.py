"""Accounts and money movements in SQLite (WAL), with the ledger's invariants.

Invariants, enforced here and by the schema:
- a balance is never negative (CHECK constraint, and checked before debiting);
- every movement is one transaction: both balances and the journal row, or nothing;
- an idempotency key names one movement forever: replaying it returns the first
  result and moves no money; reusing it for a different movement is refused;
- the sum of balances equals the sum of deposits (transfers only move money).
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mtlsdemo.ledger.money import format_cents

MAX_AMOUNT_CENTS = 10**13  # one hundred billion: rejects typos and overflow games
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    balance_cents INTEGER NOT NULL DEFAULT 0 CHECK (balance_cents >= 0),
    created_unix_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS transfers (
    transfer_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('deposit', 'transfer')),
    from_account_id TEXT REFERENCES accounts(account_id),
    to_account_id TEXT NOT NULL REFERENCES accounts(account_id),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    idempotency_key TEXT NOT NULL UNIQUE,
    created_unix_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS transfers_from ON transfers(from_account_id, transfer_id);
CREATE INDEX IF NOT EXISTS transfers_to ON transfers(to_account_id, transfer_id);
"""


class LedgerError(Exception):
    """Base of the ledger's refusals; the service maps each to a gRPC status."""


class InvalidArgument(LedgerError):
    pass


class NotFound(LedgerError):
    pass


class AlreadyExists(LedgerError):
    pass


class FailedPrecondition(LedgerError):
    pass


@dataclass(frozen=True)
class Account:
    account_id: str
    owner: str
    balance_cents: int
    created_unix_ms: int


@dataclass(frozen=True)
class Transfer:
    transfer_id: int
    kind: str
    from_account_id: str
    to_account_id: str
    amount_cents: int
    idempotency_key: str
    created_unix_ms: int


def _now_ms() -> int:
    return int(time.time() * 1000)


def _check_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise InvalidArgument(f"{what} {value!r} must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def _check_amount(amount: int) -> int:
    # messages in money, not in the protocol's cents or field names: users read them
    if amount <= 0:
        raise InvalidArgument(f"the amount must be positive, got {format_cents(amount)}")
    if amount > MAX_AMOUNT_CENTS:
        raise InvalidArgument(
            f"the amount {format_cents(amount)} exceeds the limit {format_cents(MAX_AMOUNT_CENTS)}"
        )
    return amount


def _check_key(key: str) -> str:
    if not 1 <= len(key) <= 128 or not key.isprintable():
        raise InvalidArgument("the idempotency key must be 1-128 printable characters")
    return key


class LedgerStore:
    """Thread-safe: one connection, one lock. SQLite serializes writers anyway,
    and the lock makes read-check-write sequences atomic with respect to ours."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a transfer acknowledged to the caller survives a crash or power loss.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- accounts ---
    def create_account(self, account_id: str, owner: str) -> Account:
        owner = owner.strip()
        if not owner or len(owner) > 200:
            raise InvalidArgument("owner must be 1-200 characters")
        account_id = _check_id(account_id or f"acc_{secrets.token_hex(6)}", "account id")
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO accounts (account_id, owner, created_unix_ms) VALUES (?, ?, ?)",
                    (account_id, owner, _now_ms()),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"account {account_id} already exists") from None
            return self._account(account_id)

    def get_account(self, account_id: str) -> Account:
        _check_id(account_id, "account id")
        with self._lock:
            return self._account(account_id)

    def _account(self, account_id: str) -> Account:
        row = self._db.execute(
            "SELECT * FROM accounts WHERE account_id = ?", (account_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"account {account_id} not found")
        return Account(**dict(row))

    def count_accounts(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM accounts").fetchone()[0])

    # --- money movements ---
    def deposit(self, account_id: str, amount_cents: int, key: str) -> tuple[Transfer, bool]:
        return self._move(
            "deposit",
            "",
            _check_id(account_id, "account id"),
            _check_amount(amount_cents),
            _check_key(key),
        )

    def transfer(
        self, from_id: str, to_id: str, amount_cents: int, key: str
    ) -> tuple[Transfer, bool]:
        _check_id(from_id, "source account")
        _check_id(to_id, "destination account")
        if from_id == to_id:
            raise InvalidArgument("the source and destination accounts must differ")
        return self._move("transfer", from_id, to_id, _check_amount(amount_cents), _check_key(key))

    def _move(
        self, kind: str, from_id: str, to_id: str, amount: int, key: str
    ) -> tuple[Transfer, bool]:
        with self._lock:
            earlier = self._by_key(key)
            if earlier is not None:
                same = (
                    earlier.kind,
                    earlier.from_account_id,
                    earlier.to_account_id,
                    earlier.amount_cents,
                ) == (kind, from_id, to_id, amount)
                if not same:
                    raise FailedPrecondition(
                        f"idempotency_key {key!r} was already used for a different movement "
                        f"(transfer {earlier.transfer_id})"
                    )
                return earlier, True
            self._db.execute("BEGIN IMMEDIATE")
            try:
                to_acc = self._account(to_id)
                if from_id:
                    from_acc = self._account(from_id)
                    if from_acc.balance_cents < amount:
                        raise FailedPrecondition(
                            f"insufficient funds in {from_id}: balance "
                            f"{format_cents(from_acc.balance_cents)}, transfer {format_cents(amount)}"
                        )
                    self._db.execute(
                        "UPDATE accounts SET balance_cents = balance_cents - ? "
                        "WHERE account_id = ?",
                        (amount, from_id),
                    )
                self._db.execute(
                    "UPDATE accounts SET balance_cents = balance_cents + ? WHERE account_id = ?",
                    (amount, to_acc.account_id),
                )
                cur = self._db.execute(
                    "INSERT INTO transfers (kind, from_account_id, to_account_id, amount_cents,"
                    " idempotency_key, created_unix_ms) VALUES (?, ?, ?, ?, ?, ?)",
                    (kind, from_id or None, to_id, amount, key, _now_ms()),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._changed.notify_all()
            row = self._db.execute(
                "SELECT * FROM transfers WHERE transfer_id = ?", (cur.lastrowid,)
            ).fetchone()
            return self._transfer(row), False

    def _by_key(self, key: str) -> Transfer | None:
        row = self._db.execute(
            "SELECT * FROM transfers WHERE idempotency_key = ?", (key,)
        ).fetchone()
        return None if row is None else self._transfer(row)

    @staticmethod
    def _transfer(row: sqlite3.Row) -> Transfer:
        d = dict(row)
        d["from_account_id"] = d["from_account_id"] or ""
        return Transfer(**d)

    # --- reading the journal ---
    def list_transfers(
        self, account_id: str = "", after_id: int = 0, limit: int = 100
    ) -> list[Transfer]:
        if limit <= 0:
            limit = 100
        limit = min(limit, 1000)
        with self._lock:
            return self._list(account_id, after_id, limit)

    def _list(self, account_id: str, after_id: int, limit: int) -> list[Transfer]:
        if account_id:
            _check_id(account_id, "account id")
            rows = self._db.execute(
                "SELECT * FROM transfers WHERE transfer_id > ? AND "
                "(from_account_id = ? OR to_account_id = ?) ORDER BY transfer_id LIMIT ?",
                (after_id, account_id, account_id, limit),
            )
        else:
            rows = self._db.execute(
                "SELECT * FROM transfers WHERE transfer_id > ? ORDER BY transfer_id LIMIT ?",
                (after_id, limit),
            )
        return [self._transfer(r) for r in rows.fetchall()]

    def wait_for_transfers(self, account_id: str, after_id: int, timeout: float) -> list[Transfer]:
        """Transfers after ``after_id``, waiting up to ``timeout`` seconds for one to commit."""
        with self._changed:
            found = self._list(account_id, after_id, 1000)
            if not found:
                self._changed.wait(timeout)
                found = self._list(account_id, after_id, 1000)
            return found

    def totals(self) -> tuple[int, int]:
        """(sum of balances, sum of deposits): equal when the ledger is consistent."""
        with self._lock:
            balances = self._db.execute("SELECT COALESCE(SUM(balance_cents), 0) FROM accounts")
            deposits = self._db.execute(
                "SELECT COALESCE(SUM(amount_cents), 0) FROM transfers WHERE kind = 'deposit'"
            )
            return int(balances.fetchone()[0]), int(deposits.fetchone()[0])
