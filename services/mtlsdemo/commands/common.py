"""What every command module shares: flag types that turn bad values into
argparse's one line, and the Namespace -> typed config step at the edge."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

from mtlsdemo.commands import flags

T = TypeVar("T")


def _parse_amount(text: str) -> int:
    from mtlsdemo.ledger.money import parse_amount

    return parse_amount(text)


def _parse_suites(text: str) -> tuple[Any, ...]:  # tuple[Suite, ...]
    from mtlsdemo.handshake import parse_suites  # lazily: most commands never need it

    return parse_suites(text)


def _parse_versions(text: str) -> tuple[int, ...]:
    from mtlsdemo.handshake.suites import parse_versions

    return parse_versions(text)


def _parse_connect(text: str) -> tuple[str, int]:
    from mtlsdemo.addresses import parse_hostport

    return parse_hostport(text, default_host="127.0.0.1")


# Flag types that turn a bad value into argparse's one line and exit 2.
AMOUNT = flags.checked(_parse_amount, "amount")
SUITE_LIST = flags.checked(_parse_suites, "suite list")
HOST_PORT = flags.checked(_parse_connect, "HOST:PORT")
VERSION_LIST = flags.checked(_parse_versions, "version list")


def typed(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """A config dataclass from the parsed flags of the same names: the one place a
    Namespace becomes a typed value; nothing below the commands sees a Namespace."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {n: getattr(args, n) for n in names if hasattr(args, n)}
    return cls(**{**values, **overrides})
