"""`mtlsdemo serve ledger|gateway`."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtlsdemo.addresses import DEFAULT_PORTS, local
from mtlsdemo.commands import flags
from mtlsdemo.trust.spiffe import DEFAULT_TRUST_DOMAIN, workload_id


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run one gRPC service")
    serve.set_defaults(handler=main)
    ssub = serve.add_subparsers(dest="component", required=True)
    for name, port, allow in (
        ("ledger", DEFAULT_PORTS["ledger"], "gateway"),
        ("gateway", DEFAULT_PORTS["gateway"], "cli"),
    ):
        p = ssub.add_parser(name, help=f"the {name} service")
        flags.add(p, "--listen", default=f"127.0.0.1:{port}", help="gRPC listen address HOST:PORT")
        flags.add(
            p,
            "--identity-dir",
            default=f"certs/{name}",
            help="identity directory with tls.crt, tls.key, ca.crt (tls.ocsp)",
            old="--tls-dir",
        )
        flags.add(
            p,
            "--spiffe-endpoint-socket",
            default=None,
            metavar="unix:///PATH",
            help="take the identity from a SPIFFE Workload API socket (`mtlsdemo agent`) "
            "instead of --identity-dir; each SVID it pushes serves the next handshakes",
        )
        flags.add(
            p,
            "--plaintext",
            boolean=True,
            default=False,
            help="serve without TLS (127.0.0.1 only; for use behind a sidecar)",
        )
        flags.add(
            p,
            "--allow-id",
            multiple=True,
            default=[workload_id(DEFAULT_TRUST_DOMAIN, "default", allow)],
            help="SPIFFE ID allowed to call (repeat)",
            metavar="SPIFFE_ID",
        )
        flags.add(p, "--metrics-listen", default=None, help="serve /metrics on HOST:PORT")
        flags.add(
            p,
            "--crl",
            default=None,
            help="CRL file (certs/ca/crl.pem) to check callers against; re-read when it changes",
        )
        flags.add(
            p,
            "--crl-required",
            boolean=True,
            default=False,
            help="with --crl: a caller whose CA has no CRL in force (the file missing or "
            "without that CA's list) is refused, so a CRL that vanishes fails closed",
        )
        flags.add(
            p,
            "--authz-policy",
            default=None,
            metavar="FILE",
            help="an authorization policy file: who may call which method, decided per "
            "call, the refusal naming the rule; re-read when it changes. Needs TLS (behind "
            "a sidecar, --caller-from-sidecar: it says who calls)",
        )
        flags.add(
            p,
            "--caller-from-sidecar",
            default=None,
            metavar="HOST:PORT",
            help="with --plaintext and --authz-policy: the admin of the sidecar in front, "
            "asked who is behind each call (GET /app-peer); a call that did not come "
            "through it has no identity",
        )
        flags.add(
            p,
            "--crl-state",
            default=None,
            metavar="FILE",
            help="where the CRLs in force are kept, so a restart refuses a rolled-back CRL "
            "(default: .crl-seen in the identity directory)",
        )
        if name == "ledger":
            flags.add(p, "--db", default="var/ledger.db", help="SQLite database path")
        else:
            flags.add(p, "--ledger-addr", default=local("ledger"), help="ledger address")
            flags.add(
                p,
                "--ledger-server-name",
                default="ledger",
                help="DNS name the ledger's certificate must carry",
            )
            flags.add(
                p,
                "--ledger-plaintext",
                boolean=True,
                default=False,
                help="call the ledger in plaintext (a local sidecar port on 127.0.0.1)",
            )


def main(args: argparse.Namespace) -> int:
    from mtlsdemo.rpc.server import CallerChecks, ConfigError
    from mtlsdemo.trust import IdentityPolicy

    allowed = IdentityPolicy.parse(args.allow_id) if args.allow_id else None
    tls_dir = None if args.plaintext else Path(args.identity_dir)
    crl = Path(args.crl) if args.crl else None
    authz_policy = Path(args.authz_policy) if args.authz_policy else None
    if authz_policy is not None and tls_dir is None and not args.caller_from_sidecar:
        raise ConfigError(
            "--authz-policy needs TLS, or behind a sidecar (--plaintext) --caller-from-sidecar "
            "HOST:PORT to ask it who calls"
        )
    if args.spiffe_endpoint_socket and args.plaintext:
        raise ConfigError(
            "--spiffe-endpoint-socket and --plaintext: a plaintext server has no identity"
        )
    if args.spiffe_endpoint_socket and args.component == "gateway" and not args.ledger_plaintext:
        raise ConfigError(
            "--spiffe-endpoint-socket on the gateway needs --ledger-plaintext (its sidecar's route): "
            "the gateway's own TLS channel to the ledger reads identity files"
        )
    if args.crl_required and crl is None:
        raise ConfigError("--crl-required needs --crl FILE: the CRL to require")
    checks = CallerChecks(
        crl,
        args.crl_required,
        Path(args.crl_state) if args.crl_state else None,
        authz_policy,
        args.caller_from_sidecar,
    )
    if args.component == "ledger":
        from mtlsdemo.ledger.server import serve as serve_ledger

        serve_ledger(
            args.listen,
            tls_dir,
            allowed,
            Path(args.db),
            args.metrics_listen,
            checks,
            workload_api=args.spiffe_endpoint_socket,
        )
    else:
        from mtlsdemo.gateway.server import serve as serve_gateway

        ledger_tls = None if args.ledger_plaintext else Path(args.identity_dir)
        serve_gateway(
            args.listen,
            tls_dir,
            allowed,
            args.ledger_addr,
            ledger_tls,
            args.ledger_server_name,
            args.metrics_listen,
            checks,
            workload_api=args.spiffe_endpoint_socket,
        )
    return 0
