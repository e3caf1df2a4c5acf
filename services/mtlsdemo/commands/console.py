"""`mtlsdemo console`: the live web page of the mesh."""

from __future__ import annotations

import argparse

from mtlsdemo.addresses import is_loopback_host, local
from mtlsdemo.commands import flags
from mtlsdemo.commands.common import HOST_PORT
from mtlsdemo.pki.errors import PkiError


def _admin(text: str) -> str:
    from mtlsdemo.console.config import admin_url

    return admin_url(text)


def _metrics(text: str) -> str:
    from mtlsdemo.console.config import metrics_url

    return metrics_url(text)


ADMIN_URL = flags.checked(_admin, "URL")
METRICS_URL = flags.checked(_metrics, "URL")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from mtlsdemo.commands.breakcmd import add_mesh_flags

    p = sub.add_parser(
        "console",
        help="the live web page: the mesh, every handshake as a ladder, certificates, "
        "failures, break buttons",
    )
    p.set_defaults(handler=main)
    flags.add(p, "--listen", default=local("console"), help="HOST:PORT to serve the page on")
    flags.add(
        p,
        "--sidecar-admin",
        type=ADMIN_URL,
        multiple=True,
        default=[],
        metavar="URL",
        help="a sidecar's admin endpoint to watch (repeat; HOST:PORT or URL; default: the "
        "local run's two, --gateway-admin and --ledger-admin)",
    )
    flags.add(
        p,
        "--metrics",
        type=METRICS_URL,
        multiple=True,
        default=[],
        metavar="URL",
        help="a service's /metrics to read native gRPC failures and CRLs from (repeat; "
        "default, without --discover-*: the local run's 127.0.0.1:9102 and :9101)",
    )
    flags.add(
        p,
        "--discover-sidecar-admin",
        type=HOST_PORT,
        multiple=True,
        default=[],
        metavar="HOST:PORT",
        help="a name to look up every 5 s, watching the sidecar admin on every address "
        "(repeat; Kubernetes: a headless Service, e.g. gateway-pods:9901)",
    )
    flags.add(
        p,
        "--discover-metrics",
        type=HOST_PORT,
        multiple=True,
        default=[],
        metavar="HOST:PORT",
        help="the same for services' /metrics (e.g. gateway-pods:9102)",
    )
    flags.add(
        p,
        "--poll-interval",
        type=flags.at_least(0.1),
        default=1.0,
        help="seconds between reads of /status and /metrics",
    )
    flags.add(
        p,
        "--allow-break",
        boolean=True,
        default=False,
        help="show the break buttons (runs `mtlsdemo break` scenarios against the local "
        "run: loopback --listen only)",
    )
    flags.add(
        p,
        "--break-command",
        default="",
        metavar="COMMAND",
        help="without --allow-break: the command that breaks this mesh from a shell, "
        "{scenario} standing for the scenario's name; the buttons then show it "
        "(compose: mtlsdemo break --compose mtlsdemo {scenario})",
    )
    flags.add(
        p,
        "--allow-host",
        multiple=True,
        default=[],
        metavar="NAME",
        help="a Host name the page is served under besides loopback, IP addresses and "
        "the --listen host (repeat; e.g. the name of an Ingress in front of it)",
    )
    flags.add(
        p,
        "--federated-agent-admin",
        multiple=True,
        default=[],
        metavar="HOST:PORT",
        help="another trust domain's Workload API agent to watch beside --agent-admin's "
        "(repeat; `run --domains 2` passes the second domain's)",
    )
    add_mesh_flags(p)


def main(args: argparse.Namespace) -> int:
    from mtlsdemo.addresses import parse_hostport
    from mtlsdemo.commands.breakcmd import config as mesh_config
    from mtlsdemo.console.app import run
    from mtlsdemo.console.config import ConsoleConfig, admin_url, metrics_url

    mesh = mesh_config(args)
    try:  # a str flag, as `serve --listen` (one type per environment twin)
        listen = parse_hostport(args.listen, default_host="127.0.0.1")
    except ValueError as e:
        raise PkiError(f"console: --listen {args.listen!r}: {e}") from None
    host = listen[0]
    if args.allow_break and not is_loopback_host(host):
        raise PkiError(
            f"console: --allow-break with --listen {host}: the break buttons change the "
            "mesh's certificates, so they are served on loopback only (use 127.0.0.1)"
        )
    discovering = bool(args.discover_sidecar_admin or args.discover_metrics)
    # without any address at all: the local run's (`mtlsdemo run`'s defaults)
    admins = args.sidecar_admin or (
        []
        if discovering
        else [admin_url(f"{h}:{p}") for h, p in (mesh.gateway_admin, mesh.ledger_admin)]
    )
    metrics = args.metrics or ([] if discovering else ["127.0.0.1:9102", "127.0.0.1:9101"])
    cfg = ConsoleConfig(
        listen=listen,
        sidecar_admins=tuple(admins),
        metrics=tuple(metrics_url(m) for m in metrics),
        discover_sidecar_admins=tuple(args.discover_sidecar_admin),
        discover_metrics=tuple(args.discover_metrics),
        poll_interval=args.poll_interval,
        allow_break=args.allow_break,
        break_command=args.break_command,
        mesh=mesh if args.allow_break else None,
        allowed_hosts=tuple(args.allow_host),
        agent_admins=()
        if discovering
        else (
            admin_url(f"{mesh.agent_admin[0]}:{mesh.agent_admin[1]}"),
            *(admin_url(a) for a in args.federated_agent_admin),
        ),
    )
    return run(cfg)
