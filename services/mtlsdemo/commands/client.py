"""`mtlsdemo client` and `mtlsdemo loadgen`: calls to the gateway."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mtlsdemo.addresses import local
from mtlsdemo.commands import flags
from mtlsdemo.commands.common import AMOUNT, typed


def _client_flags(p: argparse.ArgumentParser) -> None:
    flags.add(p, "--gateway-addr", default=local("gateway"), help="gateway address")
    flags.add(
        p, "--identity-dir", default="certs/cli", help="client identity directory", old="--tls-dir"
    )
    flags.add(p, "--server-name", default="gateway", help="DNS name the gateway must present")
    flags.add_transport(
        p,
        "tls: native gRPC TLS; mtd: MTD/1 through a sidecar in this process (a mesh run "
        "with --gateway-transport mtd); auto: mtd for an ML-DSA identity, else tls",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = sub.add_parser("client", help="call the gateway with the cli certificate")
    c.set_defaults(handler=main)
    _client_flags(c)
    flags.add(c, "--timeout", type=float, default=10.0, help="per-call deadline in seconds")
    a = c.add_subparsers(dest="action", required=True)
    o = a.add_parser("open", help="open an account")
    o.add_argument("owner")
    o.add_argument("--id", help="account id (default: generated)")
    d = a.add_parser("deposit", help="deposit money")
    d.add_argument("account")
    d.add_argument("amount", type=AMOUNT, help="e.g. 100 or 12.50")
    d.add_argument("--key", help="idempotency key (default: generated)")
    t = a.add_parser("transfer", help="move money between accounts")
    t.add_argument("source")
    t.add_argument("destination")
    t.add_argument("amount", type=AMOUNT)
    t.add_argument("--key", help="idempotency key (default: generated)")
    b = a.add_parser("balance", help="show an account's balance")
    b.add_argument("account")
    s = a.add_parser("statement", help="list an account's entries")
    s.add_argument("account")
    s.add_argument("--follow", action="store_true", help="keep streaming new entries")

    lg = sub.add_parser("loadgen", help="steady traffic against the gateway with a summary")
    lg.set_defaults(handler=_loadgen)
    _client_flags(lg)
    flags.add(lg, "--rps", type=flags.at_least(0.001), default=50.0, help="requests per second")
    flags.add(lg, "--duration", type=flags.at_least(0), default=10.0, help="seconds to run")
    flags.add(
        lg, "--concurrency", type=flags.at_least(1, int), default=4, help="concurrent callers"
    )


def _loadgen(args: argparse.Namespace) -> int:
    import signal

    from mtlsdemo.gateway.loadgen import LoadSetupError, run_load

    # SIGTERM ends the load as Ctrl-C does: as a container's PID 1 an unhandled SIGTERM
    # is ignored, and `docker stop` / compose's `down` waited 10 s to kill it
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        result = run_load(
            args.gateway_addr,
            Path(args.identity_dir),
            args.server_name,
            args.rps,
            args.duration,
            args.concurrency,
            progress=sys.stderr.isatty(),
            transport=args.transport,
        )
    except LoadSetupError as e:  # as `mtlsdemo client` says a failed call: one line, exit 1
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0 if result.errors == 0 else 1


def main(args: argparse.Namespace) -> int:
    from mtlsdemo.gateway.client import ClientCall, ClientConfig, run

    call = typed(ClientCall, args, amount=getattr(args, "amount", 0))
    return run(typed(ClientConfig, args, tls_dir=Path(args.identity_dir), call=call))
