"""Amounts as the user types them ("12.50") and as the ledger stores them (cents)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MAX_CENTS = 2**63 - 1  # the ledger's amounts are int64 cents (protobuf int64, SQLite INTEGER)


def parse_amount(text: str) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount (examples: 10, 12.50)") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not an amount (examples: 10, 12.50)")
    if value <= 0:
        raise ValueError(f"{text!r}: an amount must be positive")
    try:
        exact = value == value.quantize(Decimal("0.01"))
    except InvalidOperation:  # too many digits to quantize: far beyond any amount
        exact = True
    if not exact:
        raise ValueError(f"{text!r} has more than two decimal places")
    cents = int(value * 100)
    if cents > MAX_CENTS:
        raise ValueError(f"{text!r} is more than the ledger can hold ({format_cents(MAX_CENTS)})")
    return cents


def format_cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"
