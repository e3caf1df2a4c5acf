"""Flags with environment-variable twins (12-factor), as ghostunnel does.

Every flag ``--ledger-addr`` has the twin ``MTLSDEMO_LEDGER_ADDR``; the flag wins
over the environment, the environment over the default. List flags take a
comma-separated environment value. ``--help`` shows each twin.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from mtlsdemo.trust.spiffe import DEFAULT_TRUST_DOMAIN

PREFIX = "MTLSDEMO_"
_TRUE = {"1", "true", "yes", "on"}


class FlagError(ValueError):
    """An environment twin whose value the flag's type refuses (the command line's
    own bad values are argparse's to report)."""


def checked(convert: Callable[[str], Any], what: str | None = None) -> Callable[[str], Any]:
    """A flag type from a parser that raises ValueError: argparse then prints its
    message ("argument --suites: unknown suite 'FOO' …", exit 2) instead of a traceback."""

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = what or str(getattr(convert, "__name__", "value"))
    return parse


def at_least(minimum: float, kind: Callable[[str], Any] = float) -> Callable[[str], Any]:
    """A number flag that refuses values below ``minimum``."""

    def parse(text: str) -> Any:
        value = kind(text)
        if value < minimum:
            raise ValueError(f"must be at least {minimum:g}, got {text}")
        return value

    return checked(parse, kind.__name__)


class BadEnv:
    """An environment twin the flag's type refused, kept as the default and
    reported only if the command that owns the flag runs: the same variable may be
    meant for another command (compose sets one environment per container)."""

    def __init__(self, error: FlagError) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"<{self.error}>"


def _from_env(name: str, flag: str, convert: Callable[[str], Any], raw: str) -> Any:
    try:
        return convert(raw)
    except (ValueError, argparse.ArgumentTypeError) as e:
        return BadEnv(FlagError(f"{name}={raw!r}: {e} (the environment twin of {flag})"))


def env_name(flag: str) -> str:
    return PREFIX + flag.lstrip("-").upper().replace("-", "_")


def add(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    help: str,
    default: Any = None,
    type: Any = str,
    multiple: bool = False,
    boolean: bool = False,
    choices: Any = None,
    metavar: str | None = None,
    old: str | None = None,
) -> None:
    """``old``: the flag's former name, still accepted (hidden) for one release,
    its environment twin too."""
    name = env_name(flag)
    raw = os.environ.get(name)
    if old is not None:
        if raw is None:
            raw = os.environ.get(env_name(old))
        parser.add_argument(
            old, dest=_dest(flag), type=type, default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    text = f"{help} [env {name}]"
    if raw is not None and flag in WEAKENS:
        # said at start (weakened()): a leftover export must not weaken checks silently
        parser.set_defaults(_env_twins=[*(parser.get_default("_env_twins") or []), flag])
    if boolean:
        value = default if raw is None else raw.strip().lower() in _TRUE
        parser.add_argument(
            flag, action=argparse.BooleanOptionalAction, default=bool(value), help=text
        )
        return
    if multiple:
        env_values: Any = (
            [_from_env(name, flag, type, v.strip()) for v in raw.split(",") if v.strip()]
            if raw
            else None
        )
        bad = [v for v in env_values or [] if isinstance(v, BadEnv)]
        if bad:
            env_values = bad[0]
        parser.add_argument(
            flag,
            action="append",
            type=type,
            default=None,
            metavar=metavar,
            choices=choices,
            help=text,
        )
        parser.set_defaults(**{_dest(flag) + "__env": env_values or list(default or [])})
        return
    if raw is not None:
        default = _from_env(name, flag, type, raw)
    parser.add_argument(
        flag,
        type=type,
        default=default,
        choices=choices,
        metavar=metavar,
        help=text
        + (
            f" (default: {default})"
            if default not in (None, "") and not isinstance(default, BadEnv)
            else ""
        ),
    )


def add_trust_domain(p: argparse.ArgumentParser) -> None:
    """``--trust-domain``, the same flag (and default) on every command that names workloads."""
    add(p, "--trust-domain", default=DEFAULT_TRUST_DOMAIN, help="SPIFFE trust domain")


def add_namespace(p: argparse.ArgumentParser, help: str = "namespace in SPIFFE IDs") -> None:
    """``--namespace``: the ``ns/<namespace>`` segment of every workload's SPIFFE ID."""
    add(p, "--namespace", default="default", help=help)


# how a caller reaches the gateway (gateway/caller.py resolves "auto"); kept here so a
# command's parser does not import the sidecar
TRANSPORTS = ("auto", "tls", "mtd")


def add_transport(p: argparse.ArgumentParser, help: str) -> None:
    """``--transport``: native gRPC TLS or MTD/1 through a sidecar in the caller's process."""
    add(p, "--transport", default="auto", choices=list(TRANSPORTS), help=help)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _names_rsa(value: Any) -> bool:
    return any("RSA" in str(getattr(v, "name", v)) for v in (value or ()))


# flags whose value weakens checking: what it weakens, given the value in effect
WEAKENS: dict[str, Callable[[Any], str | None]] = {
    "--require-status": lambda v: (
        None
        if v == "hard"
        else f"stapled status checking is {v}: a revoked or stale peer is accepted"
    ),
    "--suites": lambda v: (
        "RSA key transport offered: no forward secrecy" if _names_rsa(v) else None
    ),
    "--versions": lambda v: (
        "older MTD/1 versions accepted: handshakes with them lack 1.2's protections"
        if v and min(v) < 0x0102
        else None
    ),
    "--max-handshakes-per-source": lambda v: (
        "no per-source cap: one address can fill the waiting room" if v == 0 else None
    ),
    "--keylog": lambda v: (
        f"key log on ({v}): anyone with the file reads the traffic" if v else None
    ),
    "--crl-required": lambda v: (
        None if v else "a missing CRL is not required: nothing is revoked then"
    ),
}


def weakened(args: argparse.Namespace) -> list[str]:
    """One loud line per environment twin in effect that weakens checking (status
    off, RSA key transport, a cap at 0, a key log): `mtlsdemo run` used to start
    its children under a leftover MTLSDEMO_REQUIRE_STATUS=off with nothing said."""
    lines = []
    for flag in getattr(args, "_env_twins", None) or []:
        what = WEAKENS[flag](getattr(args, _dest(flag), None))
        if what:
            lines.append(f"!! {env_name(flag)} (from the environment) weakens {flag}: {what}")
    if hasattr(args, "_env_twins"):
        delattr(args, "_env_twins")
    return lines


def resolve_lists(args: argparse.Namespace) -> argparse.Namespace:
    """Fill multi-value flags not given on the command line from their env/default;
    then raise FlagError for an environment twin of *this* command that its type
    refused (other commands' flags never reach this namespace)."""
    for key in [k for k in vars(args) if k.endswith("__env")]:
        dest = key[: -len("__env")]
        if getattr(args, dest, None) is None:
            setattr(args, dest, getattr(args, key))
        delattr(args, key)
    for value in vars(args).values():
        if isinstance(value, BadEnv):
            raise value.error
    return args
