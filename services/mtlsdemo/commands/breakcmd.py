"""`mtlsdemo break`: flags to a MeshConfig at the edge, then the scenarios."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from mtlsdemo.addresses import local
from mtlsdemo.breaking.catalog import SCENARIOS
from mtlsdemo.commands import flags
from mtlsdemo.pki.errors import PkiError

if TYPE_CHECKING:
    from mtlsdemo.mesh.client import MeshConfig


def _hostport(text: str) -> tuple[str, int]:
    from mtlsdemo.addresses import parse_hostport

    return parse_hostport(text, default_host="127.0.0.1")


HOST_PORT = flags.checked(_hostport, "HOST:PORT")


# a run on other ports printed where it is: the fix is that line, not a second run
ELSEWHERE = (
    ', or, for a run on other ports, the `export MTLSDEMO_…` line it printed under "start here"'
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "break",
        help="break the running local mesh on purpose, see who refused whom, then heal it",
        description="Scenarios: " + "; ".join(f"{n}: {s}" for n, s in SCENARIOS.items()),
    )
    p.set_defaults(handler=main)
    p.add_argument("scenario", nargs="*", metavar="SCENARIO", help="one or more; see --list")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--all", action="store_true", help="run every scenario")
    p.add_argument(
        "--restore",
        action="store_true",
        help="safety net: re-issue and re-sign whatever an interrupted scenario changed",
    )
    add_mesh_flags(p)
    add_compose_flags(p)


def add_compose_flags(p: argparse.ArgumentParser) -> None:
    """Run the command in a compose project's `breaker` container instead."""
    flags.add(
        p,
        "--compose",
        default=None,
        metavar="PROJECT",
        help="against this running docker-compose project (`make compose-up`: mtlsdemo): "
        "runs inside its gateway pod, in the `breaker` service, which holds the CA volume",
    )
    flags.add(
        p,
        "--compose-file",
        default="deploy/compose/docker-compose.yml",
        help="with --compose: the project's compose file (it defines `breaker`)",
    )


def in_compose(args: argparse.Namespace, who: str, command: list[str]) -> int:
    """The command run again in the project's breaker container, its exit code."""
    import sys

    from mtlsdemo.mesh.compose import ComposeProject

    project = ComposeProject(args.compose, Path(args.compose_file), who)
    return project.run_in_breaker(command, tty=sys.stdin.isatty() and sys.stdout.isatty())


def add_mesh_flags(p: argparse.ArgumentParser) -> None:
    """Where the running local mesh is (the defaults of `mtlsdemo run`)."""
    flags.add(p, "--certs-dir", default="certs", help="the certs dir `make run` uses")
    flags.add(
        p,
        "--ledger-sidecar",
        type=HOST_PORT,
        default=local("ledger"),
        help="the ledger sidecar's MTD/1 port",
    )
    flags.add(
        p,
        "--gateway-addr",
        default=local("gateway"),
        help="the gateway's public port (HOST:PORT, as for `mtlsdemo client`)",
    )
    flags.add_transport(
        p,
        "how to call the gateway, as for `mtlsdemo client` (mtd: a run with "
        "--gateway-transport mtd)",
    )
    flags.add(
        p,
        "--gateway-admin",
        type=HOST_PORT,
        default=local("gateway_admin"),
        help="the gateway sidecar's admin port",
    )
    flags.add(
        p,
        "--ledger-admin",
        type=HOST_PORT,
        default=local("ledger_admin"),
        help="the ledger sidecar's admin port",
    )
    flags.add(
        p,
        "--gateway-route",
        type=HOST_PORT,
        default=local("route"),
        help="the gateway sidecar's local route to the ledger",
    )
    flags.add(
        p,
        "--gateway-metrics",
        type=HOST_PORT,
        default=local("gateway_metrics"),
        help="the gateway's /metrics port (whether it checks a CRL)",
    )
    flags.add(
        p,
        "--agent-admin",
        type=HOST_PORT,
        default=local("agent_admin"),
        help="the Workload API agent's admin port (a mesh run with --workload-api)",
    )
    flags.add_trust_domain(p)
    flags.add_namespace(p)


def _gateway(text: str) -> tuple[str, int]:
    try:
        return _hostport(text)
    except ValueError as e:
        raise PkiError(f"--gateway-addr: {e}") from None


def config(args: argparse.Namespace) -> MeshConfig:
    from mtlsdemo.mesh.client import MeshConfig

    return MeshConfig(
        certs_dir=Path(args.certs_dir),
        ledger=args.ledger_sidecar,
        gateway=_gateway(args.gateway_addr),
        gateway_admin=args.gateway_admin,
        ledger_admin=args.ledger_admin,
        route=args.gateway_route,
        gateway_metrics=args.gateway_metrics,
        agent_admin=args.agent_admin,
        trust_domain=args.trust_domain,
        namespace=args.namespace,
        transport=args.transport,
    )


def main(args: argparse.Namespace) -> int:
    from mtlsdemo.breaking.scenarios import restore, run_scenario

    if args.list:
        from mtlsdemo.breaking.catalog import step_of

        for name, summary in SCENARIOS.items():
            print(f"{name:<18} {step_of(name):<35} {summary}")
        return 0
    if args.compose:
        command = ["break", *args.scenario]
        command += [f for f, on in (("--all", args.all), ("--restore", args.restore)) if on]
        return in_compose(args, "break --compose", command)
    import logging

    from mtlsdemo.mesh.client import LocalMesh, reachable

    # the identities made here are broken on purpose: no "loaded with a problem" noise
    logging.getLogger("mtlsdemo.pki.material").setLevel(logging.ERROR)

    mesh = LocalMesh(config(args))
    if args.restore:
        changed = restore(mesh)
        print(
            "restored: "
            + ("; ".join(changed) if changed else "nothing to re-issue")
            + "; every stapled status re-signed"
        )
        return 0
    names = list(SCENARIOS) if args.all else args.scenario
    if not names:
        raise PkiError("break: name a scenario (see `mtlsdemo break --list`), or --all")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise PkiError(f"break: unknown scenario {unknown[0]!r} (see `mtlsdemo break --list`)")
    c = mesh.config
    if not (reachable(c.ledger_admin) and reachable(c.gateway_admin)):
        raise PkiError(
            f"break: no sidecar mesh at {c.ledger_admin[0]}:{c.ledger_admin[1]} / "
            f"{c.gateway_admin[0]}:{c.gateway_admin[1]}; start `make run` (sidecar mode) "
            f"first{ELSEWHERE}"
        )
    if not args.all:
        from mtlsdemo.breaking.scenarios import not_here

        for name in names:
            if (why := not_here(mesh, name)) is not None:
                raise PkiError(f"break {name}: not on this mesh: {why}")
    failed = 0
    for name in names:
        print(f"== break {name}", flush=True)
        report = run_scenario(mesh, name)
        print("\n".join(report.lines), flush=True)
        verdict = (
            "not on this mesh (said why)"
            if report.skipped
            else "as described; the mesh is healthy again"
            if report.ok
            else "NOT as described"
        )
        print(f"== {name}: {verdict}\n", flush=True)
        failed += not report.ok
    return 1 if failed else 0
