"""`mtlsdemo agent`: the SPIFFE Workload API, serving short-lived SVIDs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from mtlsdemo.commands import flags

if TYPE_CHECKING:
    from mtlsdemo.agent.config import AgentConfig


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "agent",
        help="a SPIFFE Workload API agent: short-lived SVIDs from the CA, pushed to each "
        "workload's socket and renewed at half-life",
    )
    p.set_defaults(handler=main)
    flags.add(p, "--certs-dir", default="certs", help="the bootstrap's directory (its ca/ issues)")
    flags.add(
        p,
        "--socket-dir",
        default="/tmp/mtlsdemo-agent",
        help="one socket per workload at DIR/<workload>/agent.sock, each directory mode 0700",
    )
    flags.add(
        p,
        "--workload",
        multiple=True,
        default=["gateway", "ledger"],
        metavar="NAME",
        help="a workload to serve (repeat): its SVID is spiffe://<trust domain>/ns/<namespace>/sa/NAME",
    )
    flags.add(p, "--namespace", default="default", help="the workloads' namespace in their SVIDs")
    flags.add(p, "--trust-domain", default="mtls-demo.local", help="the SVIDs' trust domain")
    flags.add(
        p,
        "--svid-ttl",
        default="24h",
        metavar="DURATION",
        help="each SVID's lifetime (24h like SPIRE and Istio; 2m to watch rotations; at least "
        "10s); renewed at half of it, up to a tenth earlier at random",
    )
    flags.add(p, "--key-type", default="ecdsa-p256", help="the SVIDs' key type")
    flags.add(
        p,
        "--federate-with",
        multiple=True,
        default=[],
        metavar="TRUST_DOMAIN=SOURCE",
        help="trust another trust domain (repeat): its bundle from SOURCE, its agent's bundle "
        "endpoint (http://HOST:PORT/bundle) or a SPIFFE bundle file, re-fetched every few "
        "seconds and pushed to the workloads beside their SVIDs; its peers are verified "
        "against that bundle only",
    )
    flags.add(
        p,
        "--admin-listen",
        default="127.0.0.1:9910",
        help="admin HTTP (/status /metrics /healthz); 'off' to disable",
    )


def _federation(text: str) -> tuple[str, str]:
    from mtlsdemo.pki.errors import PkiError
    from mtlsdemo.pki.identity import check_trust_domain

    td, sep, source = text.partition("=")
    if not sep or not source:
        raise PkiError(
            f"--federate-with {text!r}: give TRUST_DOMAIN=SOURCE, e.g. "
            "b.mtls-demo.local=http://127.0.0.1:9911/bundle"
        )
    return check_trust_domain(td.strip()), source.strip()


def agent_config(args: argparse.Namespace) -> AgentConfig:
    from mtlsdemo.agent.config import AgentConfig
    from mtlsdemo.pki.durations import parse_duration
    from mtlsdemo.pki.identity import check_label, check_trust_domain
    from mtlsdemo.pki.keys import check_key_type
    from mtlsdemo.sidecar.config import split_hostport

    return AgentConfig(
        certs_dir=Path(args.certs_dir),
        socket_dir=Path(args.socket_dir),
        workloads=tuple(check_label(w, "--workload") for w in args.workload),
        namespace=check_label(args.namespace, "--namespace"),
        trust_domain=check_trust_domain(args.trust_domain),
        ttl=parse_duration(args.svid_ttl, "--svid-ttl"),
        key_type=check_key_type(args.key_type),
        federate_with=tuple(_federation(f) for f in args.federate_with),
        admin_listen=None
        if args.admin_listen in (None, "", "off")
        else split_hostport(args.admin_listen, "--admin-listen"),
    )


def main(args: argparse.Namespace) -> int:
    from mtlsdemo.agent.runner import run

    cfg = agent_config(args)
    cfg.validate()
    return run(cfg)
