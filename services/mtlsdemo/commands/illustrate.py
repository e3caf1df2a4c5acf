"""`mtlsdemo illustrate`: flags to an IllustrateConfig at the edge, then the page."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtlsdemo.commands import flags


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "illustrate",
        help="one whole mutual handshake, every byte labelled, as a self-contained HTML page "
        "(throwaway identities, seeded: the same seed writes the same page)",
    )
    p.set_defaults(handler=main)
    flags.add(p, "--seed", type=int, default=1, help="fixes every key and random on the page")
    flags.add(
        p,
        "--suite",
        default="ECDHE-X25519-AES-256-GCM",
        help="an ECDHE-X25519 suite (the page replays byte for byte) or an X25519MLKEM768 one "
        "(ML-KEM draws its own randomness: every value recomputes, the bytes differ per run)",
    )
    flags.add(
        p,
        "--key-type",
        default="ecdsa-p256",
        help="the identities' keys: ecdsa-p256 or ml-dsa-65 — ECDSA (the page replays byte for byte) or ML-DSA-65 "
        "(post-quantum; its signatures draw their own randomness)",
    )
    flags.add(p, "--out", default="illustrated", help="directory to write index.html into")
    flags.add(
        p,
        "--break",
        default="",
        metavar="SCENARIO",
        help="show a refused handshake instead, its failed field marked: foreign-ca, expired, "
        "wrong-identity, wrong-server-name, no-common-suite or tamper",
    )


def main(args: argparse.Namespace) -> int:
    from mtlsdemo.explain.illustrate import IllustrateConfig, write

    target = write(
        IllustrateConfig(
            seed=args.seed,
            suite=args.suite,
            out=Path(args.out),
            breaks=getattr(args, "break"),
            key_type=args.key_type,
        )
    )
    print(f"wrote {target}: open it in a browser (no network needed)")
    return 0
