"""The ``mtlsdemo`` command: certs, serve, run, client, loadgen.

Each subcommand's flags have environment twins (see mtlsdemo.flags), so
compose files and Kubernetes manifests can configure by env alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import sys
from pathlib import Path
from typing import Any

from mtlsdemo import __version__, flags
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.keys import DEFAULT_KEY_TYPE, KEY_TYPES
from mtlsdemo.pki.revocation import REASONS as REVOCATION_REASONS

EXIT_USAGE = 2
# gRPC's C core logs its own lines (I1127 ... ssl_transport_security.cc) to stderr;
# every failure is explained by us instead. Before grpc is first imported; a user's
# GRPC_VERBOSITY=debug still wins.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")


def _parse_amount(text: str) -> int:
    from mtlsdemo.money import parse_amount

    return parse_amount(text)


def _parse_suites(text: str) -> tuple[Any, ...]:  # tuple[Suite, ...]
    from mtlsdemo.handshake import parse_suites  # lazily: most commands never need it

    return parse_suites(text)


def _parse_connect(text: str) -> tuple[str, int]:
    from mtlsdemo.sidecar.config import parse_hostport

    return parse_hostport(text, default_host="127.0.0.1")


# Flag types that turn a bad value into argparse's one line and exit 2.
_amount = flags.checked(_parse_amount, "amount")
SUITE_LIST = flags.checked(_parse_suites, "suite list")
HOST_PORT = flags.checked(_parse_connect, "HOST:PORT")


def _ca_state_flags(p: argparse.ArgumentParser) -> None:
    """Where the CA and the identities live, and which identities: every command
    that reads or changes the CA's state takes the same flags."""
    flags.add(p, "--out", default="certs", help="output directory")
    flags.add(p, "--namespace", default="default", help="Kubernetes namespace in IDs and DNS names")
    flags.add(
        p,
        "--service",
        multiple=True,
        default=["gateway", "ledger", "cli"],
        help="a service identity (repeat)",
        metavar="NAME",
    )
    flags.add(
        p,
        "--status-window",
        default="1h",
        help="how long a stapled status and the CRL stay valid (nextUpdate - thisUpdate)",
    )
    flags.add(
        p,
        "--sink",
        default="files",
        choices=["files", "kubernetes"],
        help="files under --out, or Kubernetes Secrets mtlsdemo-ca, mtlsdemo-crl and "
        "mtlsdemo-<service>-tls in --secret-namespace",
    )
    flags.add(
        p,
        "--secret-namespace",
        default=None,
        help="namespace for --sink kubernetes (default: --namespace)",
    )


def _issuing_flags(p: argparse.ArgumentParser) -> None:
    flags.add(p, "--trust-domain", default="mtls-demo.local", help="SPIFFE trust domain")
    flags.add(
        p, "--key-type", default=DEFAULT_KEY_TYPE, help=f"leaf key type: {', '.join(KEY_TYPES)}"
    )
    flags.add(
        p, "--ca-key-type", default="ecdsa-p256", help="CA key type: ecdsa-p256, rsa-2048, rsa-3072"
    )
    flags.add(p, "--days", type=float, default=30.0, help="leaf validity in days")
    flags.add(p, "--ca-days", type=float, default=3650.0, help="CA validity in days")


def _certs_parsers(sub: argparse._SubParsersAction) -> None:
    certs = sub.add_parser("certs", help="cert-bootstrap: CA, leaves, CSRs, inspection")
    csub = certs.add_subparsers(dest="certs_cmd", required=True)

    b = csub.add_parser("bootstrap", help="create/reuse the root CA and issue one leaf per service")
    _ca_state_flags(b)
    _issuing_flags(b)
    flags.add(
        b, "--renew-before", default="10d", help="re-issue leaves expiring within this (30d, 12h)"
    )
    flags.add(b, "--force", boolean=True, default=False, help="re-issue every leaf")
    flags.add(
        b,
        "--ca-renew-before",
        default="30d",
        help="refuse to keep issuing under a CA expiring within this (rotate it instead)",
    )
    flags.add(
        b,
        "--rotate-ca",
        boolean=True,
        default=False,
        help="when the CA is (nearly) expired, rotate it (prepare + switch) instead of refusing",
    )

    r = csub.add_parser("revoke", help="revoke a service's certificate (or --serial): CRL + status")
    _ca_state_flags(r)
    r.add_argument("target", nargs="?", default=None, metavar="SERVICE", help="whose leaf")
    flags.add(r, "--serial", default=None, help="revoke any serial the CA issued (hex)")
    flags.add(
        r,
        "--reason",
        default="unspecified",
        choices=list(REVOCATION_REASONS),
        help="RFC 5280 reason code",
    )

    f = csub.add_parser(
        "refresh-status", help="re-sign every identity's stapled status (tls.ocsp) and the CRL"
    )
    _ca_state_flags(f)
    flags.add(
        f,
        "--every",
        default=None,
        help="keep running: refresh again after this long (15m), until SIGTERM",
    )

    o = csub.add_parser(
        "rotate-ca", help="CA rollover in stages: plan, prepare, switch, finish (zero downtime)"
    )
    o.add_argument("stage", choices=["plan", "prepare", "switch", "finish"])
    _ca_state_flags(o)
    _issuing_flags(o)

    i = csub.add_parser("inspect", help="describe a certificate and check its chain")
    i.add_argument("path", help="PEM certificate (or chain)")
    flags.add(i, "--ca", default=None, help="CA bundle to verify the chain against")

    c = csub.add_parser("csr", help="make a key and a CSR for a service (the key never leaves)")
    flags.add(c, "--service", help="service name (required)")
    flags.add(c, "--namespace", default="default", help="namespace")
    flags.add(c, "--trust-domain", default="mtls-demo.local", help="SPIFFE trust domain")
    flags.add(c, "--key-type", default=DEFAULT_KEY_TYPE, help=f"key type: {', '.join(KEY_TYPES)}")
    flags.add(c, "--key-out", default=None, help="private key path (default OUT-DIR/tls.key)")
    flags.add(c, "--csr-out", default=None, help="CSR path (default OUT-DIR/tls.csr)")
    flags.add(c, "--out-dir", default=".", help="directory for the defaults above")

    s = csub.add_parser("sign", help="sign a CSR (from `certs csr` or `openssl req`) with the CA")
    s.add_argument("csr", help="CSR file (PEM or DER)")
    flags.add(s, "--ca-dir", default="certs/ca", help="directory with ca.crt and ca.key")
    flags.add(s, "--out", default=None, help="certificate output (default: CSR path with .crt)")
    flags.add(s, "--service", default=None, help="identity to issue (default: the CSR's CN)")
    flags.add(s, "--namespace", default="default", help="namespace")
    flags.add(s, "--trust-domain", default="mtls-demo.local", help="SPIFFE trust domain")
    flags.add(s, "--days", type=float, default=30.0, help="validity in days")


def _serve_parsers(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run one gRPC service")
    ssub = serve.add_subparsers(dest="component", required=True)
    for name, port, allow in (("ledger", 50051, "gateway"), ("gateway", 50052, "cli")):
        p = ssub.add_parser(name, help=f"the {name} service")
        flags.add(p, "--listen", default=f"127.0.0.1:{port}", help="gRPC listen address HOST:PORT")
        flags.add(
            p,
            "--tls-dir",
            default=f"certs/{name}",
            help="identity directory with tls.crt, tls.key, ca.crt",
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
            default=[f"spiffe://mtls-demo.local/ns/default/sa/{allow}"],
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
        if name == "ledger":
            flags.add(p, "--db", default="var/ledger.db", help="SQLite database path")
        else:
            flags.add(p, "--ledger-addr", default="127.0.0.1:50051", help="ledger address")
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


def _client_flags(p: argparse.ArgumentParser) -> None:
    flags.add(p, "--gateway-addr", default="127.0.0.1:50052", help="gateway address")
    flags.add(p, "--tls-dir", default="certs/cli", help="client identity directory")
    flags.add(p, "--server-name", default="gateway", help="DNS name the gateway must present")


def _client_parsers(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("client", help="call the gateway with the cli certificate")
    _client_flags(c)
    flags.add(c, "--timeout", type=float, default=10.0, help="per-call deadline in seconds")
    a = c.add_subparsers(dest="action", required=True)
    o = a.add_parser("open", help="open an account")
    o.add_argument("owner")
    o.add_argument("--id", help="account id (default: generated)")
    d = a.add_parser("deposit", help="deposit money")
    d.add_argument("account")
    d.add_argument("amount", type=_amount, help="e.g. 100 or 12.50")
    d.add_argument("--key", help="idempotency key (default: generated)")
    t = a.add_parser("transfer", help="move money between accounts")
    t.add_argument("source")
    t.add_argument("destination")
    t.add_argument("amount", type=_amount)
    t.add_argument("--key", help="idempotency key (default: generated)")
    b = a.add_parser("balance", help="show an account's balance")
    b.add_argument("account")
    s = a.add_parser("statement", help="list an account's entries")
    s.add_argument("account")
    s.add_argument("--follow", action="store_true", help="keep streaming new entries")

    lg = sub.add_parser("loadgen", help="steady traffic against the gateway with a summary")
    _client_flags(lg)
    flags.add(lg, "--rps", type=flags.at_least(0.001), default=50.0, help="requests per second")
    flags.add(lg, "--duration", type=flags.at_least(0), default=10.0, help="seconds to run")
    flags.add(
        lg, "--concurrency", type=flags.at_least(1, int), default=4, help="concurrent callers"
    )


def _run_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="the whole system as local processes on 127.0.0.1")
    flags.add(r, "--certs-dir", default="certs", help="where cert-bootstrap writes")
    flags.add(r, "--data-dir", default="var", help="ledger database directory")
    flags.add(r, "--trust-domain", default="mtls-demo.local", help="SPIFFE trust domain")
    flags.add(r, "--namespace", default="default", help="namespace in identities")
    flags.add(r, "--ledger-port", type=int, default=50051, help="ledger gRPC port")
    flags.add(r, "--gateway-port", type=int, default=50052, help="gateway gRPC port")
    flags.add(r, "--ledger-metrics-port", type=int, default=9101, help="ledger /metrics port")
    flags.add(r, "--gateway-metrics-port", type=int, default=9102, help="gateway /metrics port")
    flags.add(
        r,
        "--mode",
        default="sidecar",
        choices=["sidecar", "native"],
        help="sidecar: gateway -> sidecars (MTD/1) -> ledger; native: direct gRPC mTLS",
    )
    flags.add(
        r,
        "--ledger-app-port",
        type=int,
        default=50061,
        help="sidecar mode: the ledger's plaintext port on 127.0.0.1",
    )
    flags.add(
        r,
        "--route-port",
        type=int,
        default=15001,
        help="sidecar mode: the gateway sidecar's local port for the ledger",
    )
    flags.add(
        r,
        "--key-type",
        default=None,
        help=f"leaf key type ({', '.join(KEY_TYPES)}); default: keep the existing leaves' "
        "(ecdsa-p256 for new ones); a change re-issues, and says so",
    )
    flags.add(
        r,
        "--suites",
        type=SUITE_LIST,
        default=None,
        help="sidecar mode: the suites both sidecars offer/accept, e.g. RSA-OAEP-AES-256-GCM "
        "(RSA key transport, the classic four steps; needs --key-type rsa-2048)",
    )
    flags.add(r, "--gateway-admin-port", type=int, default=9901, help="gateway sidecar admin")
    flags.add(r, "--ledger-admin-port", type=int, default=9902, help="ledger sidecar admin")
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


def _default_loop() -> str:
    import importlib.util

    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def _sidecar_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sidecar", help="the handshake sidecar: MTD/1 between services")
    flags.add(
        p,
        "--identity-dir",
        default="certs/gateway",
        help="directory with tls.crt, tls.key, ca.crt (re-read when they change)",
    )
    flags.add(
        p,
        "--inbound-listen",
        default=None,
        help="accept peer sidecars on HOST:PORT (e.g. 0.0.0.0:8443)",
    )
    flags.add(
        p,
        "--inbound-target",
        default=None,
        help="local plaintext app for inbound tunnels (127.0.0.1:PORT)",
    )
    flags.add(
        p,
        "--allow-id",
        multiple=True,
        default=[],
        help="peer SPIFFE ID allowed inbound (repeat; '*' matches one path segment)",
        metavar="SPIFFE_ID",
    )
    flags.add(
        p,
        "--route",
        multiple=True,
        default=[],
        help="outbound LISTEN=REMOTE@SPIFFE_ID (repeat), e.g. "
        "127.0.0.1:15001=ledger:8443@spiffe://mtls-demo.local/ns/default/sa/ledger",
        metavar="ROUTE",
    )
    flags.add(
        p,
        "--suites",
        type=SUITE_LIST,
        default=None,
        help="comma-separated suites to offer/accept, in preference order "
        "(default: the ECDHE-X25519 ones; RSA-OAEP-* must be named)",
    )
    flags.add(
        p,
        "--server-preference",
        boolean=True,
        default=False,
        help="inbound: choose the suite by our order, not the client's",
    )
    flags.add(p, "--handshake-timeout", type=float, default=5.0, help="handshake deadline, seconds")
    flags.add(
        p,
        "--max-pending-handshakes",
        type=int,
        default=512,
        help="connections in the handshake at once; more are refused at once with an "
        "'overloaded' alert (each may hold up to ~200 KiB: see docs/operations.md)",
    )
    flags.add(
        p,
        "--require-status",
        default="hard",
        choices=["hard", "soft", "off"],
        help="the peer's stapled CA-signed status: hard = refuse without a good one, "
        "soft = accept and count (mtls_status_soft_failures_total), off = do not check",
    )
    flags.add(
        p,
        "--key-update-records",
        type=int,
        default=0,
        help="update traffic keys after this many records sent (0: never)",
    )
    flags.add(
        p,
        "--key-update-bytes",
        type=int,
        default=0,
        help="update traffic keys after this many bytes sent (0: never)",
    )
    flags.add(
        p,
        "--admin-listen",
        default="127.0.0.1:9901",
        help="admin HTTP (/metrics /healthz /readyz /status); 'off' to disable",
    )
    flags.add(
        p,
        "--reload-interval",
        type=float,
        default=1.0,
        help="seconds between checks of the identity files",
    )
    flags.add(
        p,
        "--drain-timeout",
        type=float,
        default=10.0,
        help="on SIGTERM, seconds to let tunnels finish before close_notify",
    )
    flags.add(p, "--name", default="sidecar", help="name in logs, metrics and /status")
    flags.add(
        p,
        "--event-loop",
        default=_default_loop(),
        choices=["uvloop", "asyncio"],
        help="uvloop (when installed) or the standard asyncio loop",
    )


def _handshake_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("handshake", help="run one MTD/1 handshake and show every step (--trace)")
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
    flags.add(p, "--json", boolean=True, default=False, help="print JSON instead of the ladder")


def _bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="speed as ratios against references measured in the same run")
    p.add_argument("what", nargs="?", choices=["handshake", "sidecar", "all"], default="all")
    flags.add(p, "--n", type=flags.at_least(4, int), default=400, help="samples per measurement")
    flags.add(p, "--json", boolean=True, default=False, help="one JSON object with every figure")


def _probe_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="health check (for container HEALTHCHECK): exit 0 if healthy")
    flags.add(p, "--probe-http", default=None, help="URL that must answer 2xx")
    flags.add(p, "--probe-grpc", default=None, help="HOST:PORT whose gRPC health must be SERVING")
    flags.add(p, "--probe-tls-dir", default=None, help="identity dir for an mTLS gRPC probe")
    flags.add(p, "--probe-server-name", default="localhost", help="server name for the mTLS probe")
    flags.add(p, "--probe-timeout", type=float, default=2.0, help="seconds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtlsdemo",
        description="mutual TLS, step by step: a CA and its certificates (certs), the "
        "services (serve, run), a client and load (client, loadgen), the MTD/1 "
        "sidecar and one traced handshake (sidecar, handshake), failures on purpose "
        "(break), speed (bench) and a health probe (probe). Every flag has an "
        "MTLSDEMO_* environment twin.",
    )
    parser.add_argument("--version", action="version", version=f"mtlsdemo {__version__}")
    flags.add(parser, "--log-level", default="info", help="debug, info, warning, error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _certs_parsers(sub)
    _serve_parsers(sub)
    _run_parser(sub)
    _client_parsers(sub)
    _sidecar_parser(sub)
    _handshake_parser(sub)
    _bench_parser(sub)
    _probe_parser(sub)
    from mtlsdemo.breaking.command import add_mesh_flags
    from mtlsdemo.breaking.command import add_parser as _break_parser

    _break_parser(sub)
    t = sub.add_parser(
        "tour",
        help="the four steps of TLS, walked through on the running mesh, then openssl's "
        "self-signed example for real",
    )
    t.add_argument(
        "--non-interactive", action="store_true", help="print everything at once (no pauses)"
    )
    t.add_argument("--markdown", action="store_true", help="write it as a Markdown document")
    add_mesh_flags(t)
    _global_flags_everywhere(parser)
    return parser


def _global_flags_everywhere(parser: argparse.ArgumentParser) -> None:
    """`mtlsdemo certs bootstrap --log-level debug` works as well as before the
    command: every subcommand accepts the global flags, without overriding a value
    given before it (default SUPPRESS)."""
    todo = [parser]
    while todo:
        p = todo.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    child.add_argument(
                        "--log-level", default=argparse.SUPPRESS, help=argparse.SUPPRESS
                    )
                    todo.append(child)


def _certs(args: argparse.Namespace) -> int:
    from mtlsdemo.pki.csr import make_csr, sign_request
    from mtlsdemo.pki.identity import ServiceIdentity
    from mtlsdemo.pki.inspect import describe

    now = dt.datetime.now(dt.UTC)
    if args.certs_cmd in ("bootstrap", "revoke", "refresh-status", "rotate-ca"):
        return _certs_lifecycle(args, now)
    if args.certs_cmd == "inspect":
        text = describe(Path(args.path), Path(args.ca) if args.ca else None, now)
        print(text)
        if "FAILED:" in text:  # the check asked for failed: exit 1, as a failed handshake does
            return 1
    elif args.certs_cmd == "csr":
        if not args.service:
            raise PkiError("--service: required")
        ident = ServiceIdentity.checked(args.service, args.namespace, args.trust_domain)
        out = Path(args.out_dir)
        key = Path(args.key_out) if args.key_out else out / "tls.key"
        csr = Path(args.csr_out) if args.csr_out else out / "tls.csr"
        make_csr(ident, args.key_type, key, csr)
        print(f"wrote {key} (mode 0600) and {csr} for {ident.spiffe_id}")
    elif args.certs_cmd == "sign":
        csr_path = Path(args.csr)
        out = Path(args.out) if args.out else csr_path.with_suffix(".crt")
        if out.is_dir():  # --out (MTLSDEMO_OUT) naming a directory: the file goes inside
            out = out / csr_path.with_suffix(".crt").name
        ident = sign_request(
            csr_path,
            Path(args.ca_dir),
            out,
            args.service,
            args.namespace,
            args.trust_domain,
            args.days,
            now,
        )
        print(
            f"wrote {out} for {ident.spiffe_id} and {out.with_suffix('.ocsp')} "
            "(its CA-signed status to staple, valid 1h)"
        )
    return 0


def _certs_lifecycle(args: argparse.Namespace, now: dt.datetime) -> int:
    """bootstrap, revoke, refresh-status, rotate-ca: flags to typed values, then pki."""
    from mtlsdemo.pki import bootstrap as bs
    from mtlsdemo.pki import lifecycle
    from mtlsdemo.pki.durations import parse_duration
    from mtlsdemo.pki.stores import FileStore, SecretStore

    out = Path(args.out)
    store = (
        SecretStore.connect(args.secret_namespace or args.namespace)
        if args.sink == "kubernetes"
        else FileStore(out)
    )
    window = parse_duration(args.status_window, "--status-window")
    services = tuple(args.service)
    cmd = args.certs_cmd
    if cmd == "revoke":
        changes = lifecycle.revoke(
            store,
            services,
            now,
            service=args.target,
            serial=args.serial,
            reason=args.reason,
            window=window,
        )
    elif cmd == "refresh-status" and args.every:
        return _refresh_forever(
            lambda: lifecycle.refresh_status(store, services, dt.datetime.now(dt.UTC), window),
            parse_duration(args.every, "--every"),
            window,
        )
    elif cmd == "refresh-status":
        changes = lifecycle.refresh_status(store, services, now, window)
    elif cmd == "rotate-ca" and args.stage == "plan":
        print(lifecycle.rollover_plan(store))
        return 0
    else:
        req = bs.BootstrapRequest(
            out=out,
            services=services,
            trust_domain=args.trust_domain,
            namespace=args.namespace,
            key_type=args.key_type,
            ca_key_type=args.ca_key_type,
            leaf_days=args.days,
            ca_days=args.ca_days,
            status_window=window,
        )
        if cmd == "rotate-ca":
            changes = lifecycle.rotate_ca(req, args.stage, store, now)
        else:
            req = dataclasses.replace(
                req,
                renew_before=parse_duration(args.renew_before, "--renew-before"),
                force=args.force,
                ca_renew_before=parse_duration(args.ca_renew_before, "--ca-renew-before"),
                rotate_ca=args.rotate_ca,
            )
            changes = bs.bootstrap(req, now, store)
    for c in changes:
        print(c)
    if cmd == "bootstrap" and all(c.action in ("reused", "unchanged") for c in changes):
        print("nothing to do: every certificate is current")
    return 0


def _refresh_forever(refresh: Any, every: dt.timedelta, window: dt.timedelta) -> int:
    """The compose loop: refresh, then wait ``every``; SIGTERM ends it cleanly."""
    import signal
    import threading

    from mtlsdemo.pki.durations import human

    if every >= window:
        raise PkiError(
            f"--every {human(every)}: must be shorter than --status-window {human(window)} "
            "(statuses would expire between two refreshes)"
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        try:
            for c in refresh():
                print(c, flush=True)
        except PkiError as e:  # keep trying: the next run may find the files back
            print(f"error: {e}", file=sys.stderr, flush=True)
        stop.wait(every.total_seconds())
    return 0


def _tour(args: argparse.Namespace) -> int:
    import logging

    from mtlsdemo.breaking.command import config
    from mtlsdemo.breaking.mesh import LocalMesh, reachable
    from mtlsdemo.tour import openssl_binary, render, run_tour

    mesh = LocalMesh(config(args))
    c = mesh.config
    if not reachable(c.ledger_admin):
        raise PkiError(
            f"tour: no mesh at {c.ledger_admin[0]}:{c.ledger_admin[1]}; start `make run` "
            "in another terminal first"
        )
    logging.getLogger("mtlsdemo.pki.material").setLevel(logging.ERROR)  # the self-signed one
    interactive = not args.non_interactive and sys.stdin.isatty()
    pause = (lambda: input("   (Enter for the next step) ")) if interactive else None
    text = render(run_tour(mesh, openssl_binary()), args.markdown, pause)
    if text:
        print(text)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from mtlsdemo.trust import IdentityPolicy

    allowed = IdentityPolicy.parse(args.allow_id) if args.allow_id else None
    tls_dir = None if args.plaintext else Path(args.tls_dir)
    crl = Path(args.crl) if args.crl else None
    if args.component == "ledger":
        from mtlsdemo.ledger.server import serve as serve_ledger

        serve_ledger(args.listen, tls_dir, allowed, Path(args.db), args.metrics_listen, crl)
    else:
        from mtlsdemo.gateway.server import serve as serve_gateway

        ledger_tls = None if args.ledger_plaintext else Path(args.tls_dir)
        serve_gateway(
            args.listen,
            tls_dir,
            allowed,
            args.ledger_addr,
            ledger_tls,
            args.ledger_server_name,
            args.metrics_listen,
            crl,
        )
    return 0


def _loadgen(args: argparse.Namespace) -> int:
    from mtlsdemo.loadgen import run_load

    result = run_load(
        args.gateway_addr,
        Path(args.tls_dir),
        args.server_name,
        args.rps,
        args.duration,
        args.concurrency,
        progress=sys.stderr.isatty(),
    )
    print(result.summary())
    return 0 if result.errors == 0 else 1


def sidecar_config(args: argparse.Namespace):
    from mtlsdemo.handshake import DEFAULT_SUITES
    from mtlsdemo.sidecar.config import Route, SidecarConfig, split_hostport
    from mtlsdemo.trust import IdentityPolicy

    suites = args.suites or DEFAULT_SUITES  # parsed at the edge (SUITE_LIST)
    IdentityPolicy.parse(args.allow_id)  # a bad pattern is refused here, at startup
    return SidecarConfig(
        identity_dir=Path(args.identity_dir),
        inbound_listen=split_hostport(args.inbound_listen, "--inbound-listen")
        if args.inbound_listen
        else None,
        inbound_target=split_hostport(args.inbound_target, "--inbound-target")
        if args.inbound_target
        else None,
        allowed_ids=tuple(args.allow_id),
        routes=[Route.parse(r) for r in args.route],
        suites=suites,
        server_preference=args.server_preference,
        handshake_timeout=args.handshake_timeout,
        key_update_records=args.key_update_records,
        max_pending_handshakes=args.max_pending_handshakes,
        require_status=args.require_status,
        key_update_bytes=args.key_update_bytes,
        admin_listen=None
        if args.admin_listen in (None, "", "off")
        else split_hostport(args.admin_listen, "--admin-listen"),
        reload_interval=args.reload_interval,
        drain_timeout=args.drain_timeout,
        name=args.name,
        event_loop=args.event_loop,
    )


def _sidecar(args: argparse.Namespace) -> int:
    from mtlsdemo.sidecar.server import run

    cfg = sidecar_config(args)
    cfg.validate()
    return run(cfg)


def _bench(args: argparse.Namespace) -> int:
    import datetime as dt
    import json
    import os
    import platform
    from importlib.metadata import version

    out: dict[str, Any] = {
        "meta": {
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
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
    except flags.FlagError as e:  # a bad MTLSDEMO_* value: the flag's twin, named
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        args = flags.resolve_lists(parser.parse_args(argv))
    except flags.FlagError as e:  # a bad MTLSDEMO_* value for this command's flag
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
    )
    from mtlsdemo.rpc.server import ConfigError
    from mtlsdemo.sidecar.config import SidecarConfigError
    from mtlsdemo.trust import PolicyError

    try:
        if args.command == "certs":
            return _certs(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "run":
            from mtlsdemo.runner import run

            return run(args)
        if args.command == "client":
            from mtlsdemo.client import run as client_run

            return client_run(args)
        if args.command == "loadgen":
            return _loadgen(args)
        if args.command == "sidecar":
            return _sidecar(args)
        if args.command == "probe":
            from mtlsdemo.probe import run as probe_run

            return probe_run(args)
        if args.command == "bench":
            return _bench(args)
        if args.command == "handshake":
            from mtlsdemo.tracecmd import run as trace_run

            return trace_run(args)
        if args.command == "tour":
            return _tour(args)
        if args.command == "break":
            from mtlsdemo.breaking.command import run as break_run

            return break_run(args)
    except (PkiError, ConfigError, SidecarConfigError, PolicyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return EXIT_USAGE
