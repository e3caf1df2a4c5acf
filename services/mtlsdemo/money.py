"""Amounts as the user types them ("12.50") and as the ledger stores them (cents)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def parse_amount(text: str) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount (examples: 10, 12.50)") from None
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"{text!r} has more than two decimal places")
    return int(value * 100)


def format_cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"
