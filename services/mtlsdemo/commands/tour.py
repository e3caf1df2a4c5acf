"""`mtlsdemo tour`: the four steps of TLS on the running mesh."""

from __future__ import annotations

import argparse
import sys

from mtlsdemo.pki.errors import PkiError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from mtlsdemo.commands.breakcmd import add_compose_flags, add_mesh_flags

    t = sub.add_parser(
        "tour",
        help="the four steps of TLS, walked through on the running mesh, then openssl's "
        "self-signed example for real",
    )
    t.set_defaults(handler=main)
    t.add_argument(
        "--non-interactive", action="store_true", help="print everything at once (no pauses)"
    )
    t.add_argument("--markdown", action="store_true", help="write it as a Markdown document")
    add_mesh_flags(t)
    add_compose_flags(t)


def main(args: argparse.Namespace) -> int:
    import logging

    from mtlsdemo.commands.breakcmd import ELSEWHERE, config, in_compose

    if args.compose:
        command = ["tour"]
        command += [f for f, on in (("--non-interactive", args.non_interactive),
                                    ("--markdown", args.markdown)) if on]  # fmt: skip
        return in_compose(args, "tour --compose", command)
    from mtlsdemo.explain.tour import openssl_binary, render, run_tour
    from mtlsdemo.mesh.client import LocalMesh, reachable

    mesh = LocalMesh(config(args))
    c = mesh.config
    if not reachable(c.ledger_admin):
        raise PkiError(
            f"tour: no mesh at {c.ledger_admin[0]}:{c.ledger_admin[1]} (the ledger sidecar's "
            "admin); start `make run` (sidecar mode, the default) in another terminal first"
            + ELSEWHERE
        )
    logging.getLogger("mtlsdemo.pki.material").setLevel(logging.ERROR)  # the self-signed one
    interactive = not args.non_interactive and sys.stdin.isatty()
    try:
        text = render(
            run_tour(mesh, openssl_binary()), args.markdown, _pause if interactive else None
        )
    except _Ended:
        print("\n   tour ended (run `mtlsdemo tour` again to start over)")
        return 0
    if text:
        print(text)
    return 0


class _Ended(Exception):
    """Ctrl-D (or Ctrl-C) at a pause: the reader is done, not an error."""


def _pause() -> None:
    try:
        input("   (Enter for the next step, Ctrl-D to stop) ")
    except (EOFError, KeyboardInterrupt):
        raise _Ended from None
