"""`mtlsdemo handshake`: one MTD/1 handshake, traced."""

from __future__ import annotations

import argparse

from mtlsdemo.commands import flags
from mtlsdemo.commands.common import HOST_PORT, SUITE_LIST, typed


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("handshake", help="run one MTD/1 handshake and show every step (--trace)")
    p.set_defaults(handler=main)
    p.add_argument(
        "--trace",
        action="store_true",
        default=True,
        help="print the message ladder (the default and only mode)",
    )
    flags.add(
        p,
        "--connect",
        type=HOST_PORT,
        default=None,
        help="HOST:PORT of a running sidecar's inbound port",
    )
    flags.add(
        p,
        "--certs-dir",
        default="certs",
        help="bootstrap output to use (made in a temp dir when missing)",
    )
    flags.add(p, "--client-dir", default=None, help="client identity dir (default CERTS/gateway)")
    flags.add(p, "--server-dir", default=None, help="server identity dir (default CERTS/ledger)")
    flags.add(
        p,
        "--suites",
        type=SUITE_LIST,
        default=None,
        help="client's suites, comma-separated, in order",
    )
    flags.add(
        p, "--server-suites", type=SUITE_LIST, default=None, help="server's suites (in-memory mode)"
    )
    flags.add(p, "--peer-id", multiple=True, default=[], help="SPIFFE ID the server must have")
    flags.add(
        p,
        "--allow-id",
        multiple=True,
        default=[],
        help="SPIFFE IDs the in-memory server allows (default: any from its CA)",
    )
    flags.add(
        p,
        "--days-ahead",
        type=float,
        default=0.0,
        help="pretend it is N days later (try 40: expired certificates)",
    )
    flags.add(
        p,
        "--require-status",
        default="hard",
        choices=["hard", "soft", "off"],
        help="the peer's stapled status: hard = refuse without a good one, soft, off",
    )
    flags.add(p, "--connect-timeout", type=float, default=5.0, help="socket timeout for --connect")
    # the old name, for one release (MTLSDEMO_TIMEOUT is the client's per-call deadline)
    p.add_argument(
        "--timeout",
        dest="connect_timeout",
        type=float,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    flags.add(
        p,
        "--show-secrets",
        boolean=True,
        default=False,
        help="teaching option: print the derived secrets themselves, not only fingerprints "
        "(never do this with keys that protect anything)",
    )
    flags.add(
        p,
        "--tls13",
        boolean=True,
        default=False,
        help="with --connect to a native gRPC mTLS port (the gateway's): the real TLS 1.3 "
        "handshake, message by message, next to MTD/1's steps",
    )
    flags.add(
        p,
        "--resume",
        boolean=True,
        default=False,
        help="MTD/1.1 session resumption: a first full handshake (not shown) brings a "
        "session ticket, and the one shown resumes from it (in memory, or with --connect "
        "against a sidecar that issues tickets)",
    )
    flags.add(
        p,
        "--hex",
        boolean=True,
        default=False,
        help="print ciphertexts and frames whole, in hex (by default: their first 8 bytes)",
    )
    flags.add(p, "--json", boolean=True, default=False, help="print JSON instead of the ladder")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mtlsdemo.explain.trace import TraceConfig, run

    return run(
        typed(
            TraceConfig,
            args,
            certs_dir=Path(args.certs_dir),
            client_dir=Path(args.client_dir) if args.client_dir else None,
            server_dir=Path(args.server_dir) if args.server_dir else None,
            peer_id=tuple(args.peer_id or ()),
            allow_id=tuple(args.allow_id or ()),
        )
    )
