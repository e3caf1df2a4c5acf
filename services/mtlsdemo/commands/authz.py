"""`mtlsdemo authz`: try an authorization policy before applying it — the same
evaluator the sidecars and services enforce with (trust/authz.py), offline."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from mtlsdemo.commands import flags


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "authz",
        help="authorization: explain one decision, the whole matrix, or what a new policy changes",
    )
    p.set_defaults(handler=main)
    what = p.add_subparsers(dest="authz_command", required=True, metavar="explain|matrix|diff")
    ex = what.add_parser("explain", help="the decision for one caller and target, with its trace")
    ex.add_argument("--from", dest="principal", required=True, metavar="SPIFFE_ID")
    ex.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="WORKLOAD[/METHOD]",
        help="ledger, or ledger/Transfer, or gateway/mtlsdemo.gateway.v1.GatewayService/Deposit",
    )
    mx = what.add_parser("matrix", help="every identity of the mesh x every method: allow or deny")
    df = what.add_parser("diff", help="the calls whose decision changes from OLD to NEW")
    df.add_argument("old", metavar="OLD", help="a policy file, or 'mesh' for the mesh's default")
    df.add_argument("new", metavar="NEW")
    for q in (ex, mx, df):
        flags.add(
            q,
            "--certs-dir",
            default="certs",
            help="the mesh's identities (each directory's tls.crt) and trust domain",
        )
    for q in (ex, mx):
        flags.add(
            q,
            "--authz-policy",
            default=None,
            metavar="FILE",
            help="the policy file to try (default: the mesh's own, the --allow-id lists "
            "`mtlsdemo run` gives: the ledger admits the gateway, the gateway the cli)",
        )


@dataclass(frozen=True)
class AuthzConfig:
    command: str
    certs_dir: Path
    policy: Path | None = None
    principal: str = ""
    target: str = ""
    old: str = ""
    new: str = ""


def main(args: argparse.Namespace) -> int:
    from mtlsdemo.explain.authz import diff, explain, matrix

    cfg = AuthzConfig(
        args.authz_command,
        Path(args.certs_dir),
        Path(args.authz_policy) if getattr(args, "authz_policy", None) else None,
        getattr(args, "principal", ""),
        getattr(args, "target", ""),
        getattr(args, "old", ""),
        getattr(args, "new", ""),
    )
    if cfg.command == "explain":
        text, allowed = explain(cfg.certs_dir, cfg.policy, cfg.principal, cfg.target)
        print(text)
        return 0 if allowed else 1
    if cfg.command == "matrix":
        print(matrix(cfg.certs_dir, cfg.policy))
        return 0
    text, changed = diff(cfg.certs_dir, cfg.old, cfg.new)
    print(text)
    return 1 if changed else 0
