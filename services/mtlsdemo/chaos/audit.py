"""The audit of a chaos run: the ledger's own rows against the client's journal.

- every acknowledged movement is in the ledger exactly once, under the transfer id
  the client was told;
- nothing of this run is in the ledger that the client never attempted;
- money is neither made nor destroyed: the balances equal what the rows say, and
  their sum equals the sum of deposits;
- every attempt ended within its deadline (plus a second of slack) with a status.

Pure: rows and journal in, verdict out (``read_ledger`` is the only I/O)."""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    transfer_id: int
    kind: str
    from_account: str | None
    to_account: str
    amount_cents: int
    idempotency_key: str


@dataclass
class AuditResult:
    attempted: int = 0
    acknowledged: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # final status, by name
    failed_but_applied: int = 0  # the client was told a failure; the ledger has it: allowed
    lost: list[str] = field(default_factory=list)  # acknowledged, not in the ledger
    duplicated: list[str] = field(default_factory=list)  # in the ledger more than once
    phantom: list[str] = field(default_factory=list)  # in the ledger, never attempted
    mismatched: list[str] = field(default_factory=list)  # told another transfer id
    drift_cents: int = 0  # balances vs rows, and balances vs deposits
    hung: list[str] = field(default_factory=list)  # an attempt past its deadline + slack
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.phantom
            or self.mismatched
            or self.drift_cents
            or self.hung
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempted": self.attempted,
            "acknowledged": self.acknowledged,
            "failed": dict(self.failed),
            "failed_but_applied": self.failed_but_applied,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "phantom": len(self.phantom),
            "mismatched": len(self.mismatched),
            "balance_drift_cents": self.drift_cents,
            "hung_attempts": len(self.hung),
            "attempts": self.attempts,
            "examples": {
                k: v[:5]
                for k, v in (
                    ("lost", self.lost),
                    ("duplicated", self.duplicated),
                    ("phantom", self.phantom),
                    ("mismatched", self.mismatched),
                    ("hung", self.hung),
                )
                if v
            },
            "ok": self.ok,
        }


def audit(
    journal: list[dict[str, Any]],
    rows: list[Row],
    balances: dict[str, int],
    prefix: str,
    deadline: float,
    slack: float = 1.0,
) -> AuditResult:
    r = AuditResult()
    attempted = {e["key"] for e in journal if e["e"] == "attempt"}
    acks: dict[str, set[int]] = defaultdict(set)
    for e in journal:
        if e["e"] == "ack":
            acks[e["key"]].add(int(e["transfer_id"]))
        elif e["e"] == "fail":
            r.failed[e["code"]] += 1
        elif e["e"] == "try":
            r.attempts += 1
            if e["seconds"] > deadline + slack:
                r.hung.append(f"{e['key']} attempt {e['n']}: {e['seconds']:.1f}s ({e['code']})")
    r.attempted, r.acknowledged = len(attempted), len(acks)
    ours = [row for row in rows if row.idempotency_key.startswith(prefix)]
    by_key: dict[str, list[Row]] = defaultdict(list)
    for row in ours:
        by_key[row.idempotency_key].append(row)
    for key, ids in sorted(acks.items()):
        present = by_key.get(key, [])
        if not present:
            r.lost.append(key)
        elif len(ids) > 1 or {row.transfer_id for row in present} != ids:
            r.mismatched.append(
                f"{key}: told {sorted(ids)}, ledger {[x.transfer_id for x in present]}"
            )
    r.duplicated = sorted(k for k, v in by_key.items() if len(v) > 1)
    r.phantom = sorted(k for k in by_key if k not in attempted)
    failed_keys = {e["key"] for e in journal if e["e"] == "fail"}
    r.failed_but_applied = len(failed_keys & set(by_key))
    # money: every account's balance is what the rows say, and all of it was deposited
    expected: Counter[str] = Counter()
    for row in rows:
        expected[row.to_account] += row.amount_cents
        if row.from_account is not None:
            expected[row.from_account] -= row.amount_cents
    per_account = sum(abs(balances.get(a, 0) - expected[a]) for a in set(expected) | set(balances))
    deposits = sum(row.amount_cents for row in rows if row.kind == "deposit")
    r.drift_cents = per_account + abs(sum(balances.values()) - deposits)
    return r


def read_ledger(db: Path) -> tuple[list[Row], dict[str, int]]:
    """The ledger's rows and balances, read-only (the file the ledger wrote)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = [
            Row(*r)
            for r in con.execute(
                "SELECT transfer_id, kind, from_account_id, to_account_id, amount_cents, "
                "idempotency_key FROM transfers ORDER BY transfer_id"
            )
        ]
        balances = dict(con.execute("SELECT account_id, balance_cents FROM accounts"))
    finally:
        con.close()
    return rows, balances
