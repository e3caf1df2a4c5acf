"""`mtlsdemo capture`: flags to a CaptureConfig at the edge, then the capture."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtlsdemo.commands import flags


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from mtlsdemo.commands.breakcmd import add_mesh_flags

    p = sub.add_parser(
        "capture",
        help="a pcapng of the running mesh: every hop of the same calls, with the keys to "
        "decrypt them in Wireshark",
    )
    p.set_defaults(handler=main)
    flags.add(p, "--seconds", type=flags.at_least(1), default=5.0, help="how long to capture")
    flags.add(p, "--out", default="mesh.pcapng", help="the capture file (*.pcapng)")
    flags.add(p, "--interface", default="lo", help="where to capture (the mesh's loopback)")
    add_mesh_flags(p)


def main(args: argparse.Namespace) -> int:
    from mtlsdemo.commands.breakcmd import config
    from mtlsdemo.wire.capture import CaptureConfig, summary, take

    cfg = CaptureConfig(
        mesh=config(args), seconds=args.seconds, out=Path(args.out), interface=args.interface
    )
    print("\n".join(summary(take(cfg))))
    return 0
