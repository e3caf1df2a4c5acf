"""`mtlsdemo bench`: speed as ratios against references."""

from __future__ import annotations

import argparse
from typing import Any

from mtlsdemo.commands import flags


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="speed as ratios against references measured in the same run")
    p.set_defaults(handler=main)
    p.add_argument(
        "what", nargs="?", choices=["handshake", "sidecar", "scale", "all"], default="all"
    )
    flags.add(p, "--n", type=flags.at_least(4, int), default=400, help="samples per measurement")
    flags.add(
        p,
        "--tunnels",
        type=flags.at_least(1, int),
        default=10_000,
        help="scale: tunnels to open and hold through one sidecar pair",
    )
    flags.add(
        p,
        "--burst",
        type=flags.at_least(1, int),
        default=1000,
        help="scale: simultaneous connects per burst",
    )
    flags.add(p, "--json", boolean=True, default=False, help="one JSON object with every figure")


def main(args: argparse.Namespace) -> int:
    import datetime as dt
    import json
    import os
    import platform
    import sys
    from importlib.metadata import version

    from mtlsdemo.handshake import build

    out: dict[str, Any] = {
        "meta": {
            "build": build(),  # which core ran: a compiled run is its own JSON (make perf-doc)
            "date": f"{dt.datetime.now(dt.UTC):%Y-%m-%d}",
            "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}",
            "python": platform.python_version(),
            **{name: version(name) for name in ("cryptography", "grpcio", "uvloop")},
        }
    }
    if args.what in ("handshake", "all"):
        from mtlsdemo.bench import handshake

        out["handshake"] = handshake.run(n=args.n)
        if not args.json:
            print(handshake.table(out["handshake"]), flush=True)
    if args.what in ("sidecar", "all"):
        from mtlsdemo.bench import sidecar

        out["sidecar"] = sidecar.run(n=args.n)
        if not args.json:
            print(sidecar.table(out["sidecar"]), flush=True)
    if args.what in ("scale", "all"):
        from mtlsdemo.bench import scale

        try:
            out["scale"] = scale.run(tunnels=args.tunnels, burst=args.burst)
        except RuntimeError as e:  # a limit the machine sets: say which, and what to do
            print(f"mtlsdemo bench scale: {e}", file=sys.stderr)
            return 2
        if not args.json:
            print(scale.table(out["scale"]), flush=True)
    if args.json:
        print(json.dumps(out, indent=2))
    return 0
