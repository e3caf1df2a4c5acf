"""`mtlsdemo run`: the whole system as local processes."""

from __future__ import annotations

import argparse

from mtlsdemo.addresses import DEFAULT_PORTS
from mtlsdemo.commands import flags
from mtlsdemo.commands.common import SUITE_LIST, typed
from mtlsdemo.pki.keys import KEY_TYPES

# every listener of `mtlsdemo run`, in addresses.DEFAULT_PORTS' order: --<name>-port
PORT_HELP = {
    "ledger": "ledger gRPC port",
    "gateway": "gateway's public port (gRPC mTLS, or MTD/1 with --gateway-transport mtd)",
    "ledger_metrics": "ledger /metrics port",
    "gateway_metrics": "gateway /metrics port",
    "ledger_app": "sidecar mode: the ledger's plaintext port on 127.0.0.1",
    "route": "sidecar mode: the gateway sidecar's local port for the ledger",
    "gateway_admin": "gateway sidecar admin",
    "ledger_admin": "ledger sidecar admin",
    "console": "sidecar mode: the web console on 127.0.0.1 (0: none)",
    "gateway_app": "--gateway-transport mtd: the gateway's plaintext port on 127.0.0.1",
    "agent_admin": "--workload-api: the agent's admin (/status /metrics /bundle) on 127.0.0.1",
    "agent_b_admin": "--domains 2: the second trust domain's agent's admin on 127.0.0.1",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = sub.add_parser("run", help="the whole system as local processes on 127.0.0.1")
    r.set_defaults(handler=main)
    flags.add(r, "--certs-dir", default="certs", help="where cert-bootstrap writes")
    flags.add(r, "--data-dir", default="var", help="ledger database directory")
    flags.add_trust_domain(r)
    flags.add_namespace(r)
    for name in DEFAULT_PORTS:
        flag = f"--{name.replace('_', '-')}-port"
        flags.add(r, flag, type=int, default=DEFAULT_PORTS[name], help=PORT_HELP[name])
    flags.add(
        r,
        "--mode",
        default="sidecar",
        choices=["sidecar", "native"],
        help="sidecar: gateway -> sidecars (MTD/1) -> ledger; native: direct gRPC mTLS",
    )
    flags.add(
        r,
        "--key-type",
        default=None,
        help=f"leaf key type ({', '.join(KEY_TYPES)}); default: keep the existing leaves' "
        "(ecdsa-p256 for new ones); a change re-issues, and says so; ml-dsa-44/65 puts the "
        "gateway behind its sidecar too (--gateway-transport mtd)",
    )
    flags.add(
        r,
        "--suites",
        type=SUITE_LIST,
        default=None,
        help="sidecar mode: the suites both sidecars offer/accept (default: the hybrid "
        "post-quantum X25519MLKEM768-* first, then ECDHE-X25519-*), e.g. RSA-OAEP-AES-256-GCM "
        "(RSA key transport, the classic four steps; needs --key-type rsa-2048)",
    )
    flags.add(
        r,
        "--gateway-transport",
        default=None,
        choices=["tls", "mtd"],
        help="how callers reach the gateway: tls (native gRPC mTLS) or mtd (the gateway's "
        "sidecar, MTD/1: what ML-DSA identities need, grpcio's TLS has no ML-DSA); "
        "default: mtd for ML-DSA leaves, else tls",
    )
    flags.add(
        r,
        "--keylog",
        metavar="FILE",
        help="WEAKENS SECURITY: both sidecars append every session's traffic secrets to FILE "
        "(`sidecar --keylog`), for `mtlsdemo capture` and Wireshark; off by default",
    )
    flags.add(
        r,
        "--authz-policy",
        metavar="FILE",
        help="an authorization policy file (docs/operations.md, Authorization) in place of "
        "the --allow-id lists: the sidecars decide connections, the services every call; "
        "edit the file and the next connection or call follows it",
    )
    flags.add(
        r,
        "--workload-api",
        boolean=True,
        default=False,
        help="identities from a SPIFFE Workload API agent (`mtlsdemo agent`) instead of "
        "files: short-lived SVIDs pushed to the sidecars and the gateway, renewed at "
        "half-life without a restart (status checks between the sidecars off then: "
        "expiry is the revocation; said at start)",
    )
    flags.add(
        r,
        "--domains",
        type=int,
        default=1,
        choices=[1, 2],
        help="2: the ledger in a second trust domain (b.<trust domain>) with its own CA and "
        "agent, the two federated by their bundle endpoints (implies --workload-api)",
    )
    flags.add(
        r,
        "--svid-ttl",
        default="24h",
        metavar="DURATION",
        help="with --workload-api: each SVID's lifetime (2m shows several rotations in one "
        "sitting; at least 10s)",
    )
    flags.add(
        r, "--traffic-seconds", type=flags.at_least(0), default=3.0, help="demo traffic after start"
    )
    flags.add(
        r,
        "--exit-after-traffic",
        boolean=True,
        default=False,
        help="stop everything after the demo traffic (for scripts)",
    )


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mtlsdemo.mesh.supervisor import RunConfig, run
    from mtlsdemo.pki.durations import parse_duration

    return run(
        typed(
            RunConfig,
            args,
            certs_dir=Path(args.certs_dir),
            data_dir=Path(args.data_dir),
            keylog=Path(args.keylog) if args.keylog else None,
            authz_policy=Path(args.authz_policy).resolve() if args.authz_policy else None,
            svid_ttl=parse_duration(args.svid_ttl, "--svid-ttl"),
        )
    )
