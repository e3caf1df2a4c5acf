"""`mtlsdemo sidecar`: the MTD/1 handshake sidecar."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from mtlsdemo.addresses import local
from mtlsdemo.commands import flags
from mtlsdemo.commands.common import SUITE_LIST, VERSION_LIST

if TYPE_CHECKING:  # the sidecar's modules load only when the sidecar runs
    from mtlsdemo.sidecar.config import SidecarConfig


def _default_loop() -> str:
    import importlib.util

    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sidecar", help="the handshake sidecar: MTD/1 between services")
    p.set_defaults(handler=main)
    flags.add(
        p,
        "--identity-dir",
        default="certs/gateway",
        help="directory with tls.crt, tls.key, ca.crt (re-read when they change)",
    )
    flags.add(
        p,
        "--spiffe-endpoint-socket",
        default=None,
        metavar="unix:///PATH",
        help="take the identity from this SPIFFE Workload API socket (`mtlsdemo agent`; what "
        "SPIFFE clients call SPIFFE_ENDPOINT_SOCKET) instead of --identity-dir: short-lived "
        "SVIDs, each one pushed swapped in without a restart. Status checks default to off "
        "with it (SVIDs carry no staple: expiry is their revocation), said at start-up",
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
        "(default: the hybrid post-quantum X25519MLKEM768-* first, then the ECDHE-X25519 "
        "ones; RSA-OAEP-* must be named)",
    )
    flags.add(
        p,
        "--versions",
        type=VERSION_LIST,
        default=None,
        metavar="1.2[,1.1,1.0]",
        help="MTD/1 versions to accept (default: 1.2 only). Allowing 1.1 or 1.0 (a rolling "
        "upgrade) weakens every handshake with an old peer: its signatures leave the offer "
        "out, so a stolen RSA server key rewrites it; said at start-up",
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
        help="connections in the handshake at once; more wait for a slot (each may "
        "hold up to ~200 KiB: see docs/operations.md)",
    )
    flags.add(
        p,
        "--max-waiting-handshakes",
        type=flags.at_least(0, int),
        default=4096,
        help="connections waiting for a handshake slot; beyond, refused at once with an "
        "'overloaded' alert (a waiting one costs about 6 KiB and no CPU)",
    )
    flags.add(
        p,
        "--crl",
        default=None,
        metavar="FILE",
        help="the CA's CRL (certs/ca/crl.pem; Kubernetes: the mtlsdemo-crl Secret) to check "
        "peers against besides their stapled status, re-read when it changes: a revocation "
        "then applies at the next handshake and ends the peer's session tickets",
    )
    flags.add(
        p,
        "--crl-required",
        boolean=True,
        default=False,
        help="with --crl: a peer whose CA has no CRL in force (the file missing or "
        "without that CA's list) is refused status_missing, so a CRL that vanishes "
        "fails closed (a CRL past its nextUpdate by over an hour is refused either way)",
    )
    flags.add(
        p,
        "--authz-policy",
        default=None,
        metavar="FILE",
        help="an authorization policy file (docs/operations.md, Authorization): who may "
        "connect to this workload, decided at the handshake, the refusal naming the rule; "
        "re-read when it changes (a bad new file is refused, the old one kept)",
    )
    flags.add(
        p,
        "--crl-state",
        default=None,
        metavar="FILE",
        help="where the highest CRL number seen per CA is kept, so a restart refuses a "
        "rolled-back CRL as the running sidecar did (default: .crl-seen in the identity "
        "directory)",
    )
    flags.add(
        p,
        "--max-handshakes-per-source",
        type=flags.at_least(0, int),
        default=1024,
        help="inbound connections from one IP address in the handshake or waiting for a "
        "slot; beyond, refused with 'overloaded', so one source cannot fill the waiting "
        "room (0: no cap)",
    )
    flags.add(
        p,
        "--session-tickets",
        boolean=True,
        default=True,
        help="session resumption (MTD/1.1): issue tickets to clients and offer the ones "
        "received; a resumed handshake skips certificates and signatures, keeps a fresh "
        "X25519 exchange, and re-checks identity, expiry, status and trust",
    )
    flags.add(
        p,
        "--ticket-lifetime",
        type=flags.at_least(1, int),
        default=3600,
        help="seconds a session ticket may be used after issue (ticket keys rotate as often)",
    )
    flags.add(
        p,
        "--ticket-max-uses",
        type=flags.at_least(1, int),
        default=256,
        help="resumptions per ticket (the server counts; bounded replay)",
    )
    flags.add(
        p,
        "--listen-backlog",
        type=flags.at_least(1, int),
        default=4096,
        help="accept queue of each listener (bursts of connects beyond it wait for SYN "
        "retries; the kernel caps it at net.core.somaxconn)",
    )
    flags.add(
        p,
        "--require-status",
        default=None,
        choices=["hard", "soft", "off"],
        help="the peer's stapled CA-signed status: hard = refuse without a good one, "
        "soft = accept and count (mtls_status_soft_failures_total), off = do not check "
        "(default: hard; off with --spiffe-endpoint-socket)",
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
        default=local("gateway_admin"),
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
        "--keylog",
        metavar="FILE",
        help="WEAKENS SECURITY: append every session's traffic secrets to FILE (NSS key log "
        "format) so a capture can be decrypted (`mtlsdemo capture`, the Wireshark dissector); "
        "anyone with the file reads the traffic. Off by default",
    )
    flags.add(
        p,
        "--event-loop",
        default=_default_loop(),
        choices=["uvloop", "asyncio"],
        help="uvloop (when installed) or the standard asyncio loop",
    )


def sidecar_config(args: argparse.Namespace) -> SidecarConfig:
    from mtlsdemo.handshake import DEFAULT_SUITES
    from mtlsdemo.handshake.suites import DEFAULT_VERSIONS
    from mtlsdemo.rpc.methods import all_methods
    from mtlsdemo.sidecar.config import Route, SidecarConfig, split_hostport
    from mtlsdemo.trust import IdentityPolicy

    suites = args.suites or DEFAULT_SUITES  # parsed at the edge (SUITE_LIST)
    IdentityPolicy.parse(args.allow_id)  # a bad pattern is refused here, at startup
    return SidecarConfig(
        identity_dir=Path(args.identity_dir),
        workload_api=args.spiffe_endpoint_socket,
        inbound_listen=split_hostport(args.inbound_listen, "--inbound-listen")
        if args.inbound_listen
        else None,
        inbound_target=split_hostport(args.inbound_target, "--inbound-target")
        if args.inbound_target
        else None,
        allowed_ids=tuple(args.allow_id),
        routes=[Route.parse(r) for r in args.route],
        suites=suites,
        versions=args.versions or DEFAULT_VERSIONS,
        server_preference=args.server_preference,
        handshake_timeout=args.handshake_timeout,
        key_update_records=args.key_update_records,
        max_pending_handshakes=args.max_pending_handshakes,
        max_waiting_handshakes=args.max_waiting_handshakes,
        max_handshakes_per_source=args.max_handshakes_per_source,
        session_tickets=args.session_tickets,
        ticket_lifetime=args.ticket_lifetime,
        ticket_max_uses=args.ticket_max_uses,
        require_status=args.require_status or ("off" if args.spiffe_endpoint_socket else "hard"),
        crl=Path(args.crl) if args.crl else None,
        crl_required=args.crl_required,
        crl_state=Path(args.crl_state) if args.crl_state else None,
        authz_policy=Path(args.authz_policy) if args.authz_policy else None,
        authz_methods=all_methods() if args.authz_policy else None,
        listen_backlog=args.listen_backlog,
        key_update_bytes=args.key_update_bytes,
        admin_listen=None
        if args.admin_listen in (None, "", "off")
        else split_hostport(args.admin_listen, "--admin-listen"),
        reload_interval=args.reload_interval,
        drain_timeout=args.drain_timeout,
        name=args.name,
        event_loop=args.event_loop,
        keylog=Path(args.keylog) if args.keylog else None,
    )


def main(args: argparse.Namespace) -> int:
    from mtlsdemo.sidecar.server import run

    cfg = sidecar_config(args)
    cfg.validate()
    return run(cfg)
