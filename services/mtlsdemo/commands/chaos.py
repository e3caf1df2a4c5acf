"""`mtlsdemo chaos`: a soak under faults, then the ledger audit."""

from __future__ import annotations

import argparse

from mtlsdemo.addresses import local
from mtlsdemo.commands import flags
from mtlsdemo.commands.common import typed
from mtlsdemo.pki.errors import PkiError


def _faults(text: str) -> tuple[str, ...]:
    from mtlsdemo.chaos.schedule import KINDS

    if text.strip() == "none":  # the load alone: a soak (e.g. through SVID rotations)
        return ()
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [n for n in names if n not in KINDS]
    if unknown or not names:
        raise ValueError(
            f"unknown fault {unknown[0] if unknown else text!r}; one of {', '.join(KINDS)}"
        )
    return names


FAULTS = flags.checked(_faults, "fault list")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "chaos",
        help="transfers under load while processes die and the network misbehaves, "
        "then an audit: nothing lost, nothing twice, no money made",
    )
    p.set_defaults(handler=main)
    flags.add(
        p, "--duration", type=flags.at_least(5), default=60.0, help="seconds of load and faults"
    )
    flags.add(
        p,
        "--seed",
        type=int,
        default=1,
        help="the fault schedule's seed (same seed, same schedule)",
    )
    flags.add(
        p,
        "--work-dir",
        default="var/chaos",
        help="its own certificates, ledger, journal and logs (replaced each run)",
    )
    flags.add(p, "--rate", type=flags.at_least(1), default=20.0, help="transfers per second")
    flags.add(p, "--concurrency", type=flags.at_least(1, int), default=4, help="client threads")
    flags.add(p, "--deadline", type=flags.at_least(0.5), default=3.0, help="seconds per attempt")
    flags.add(
        p,
        "--recovery-bound",
        type=flags.at_least(1),
        default=20.0,
        help="seconds the mesh may take to be healthy after the last fault",
    )
    flags.add(
        p,
        "--faults",
        type=FAULTS,
        default=None,
        help="comma-separated subset of the fault kinds, or none (default: all; see --list-faults)",
    )
    p.add_argument("--list-faults", action="store_true", help="list the fault kinds and exit")
    flags.add(
        p,
        "--compose",
        default=None,
        metavar="PROJECT",
        help="run against this running docker-compose project (`make compose-up`: mtlsdemo) "
        "instead of local processes; containers are killed and frozen (no network faults)",
    )
    flags.add(
        p,
        "--compose-file",
        default="deploy/compose/docker-compose.yml",
        help="the project's compose file (for its `certs` service)",
    )
    flags.add(
        p,
        "--gateway-addr",
        default=local("gateway"),
        help="with --compose: the gateway's published address",
    )
    flags.add(
        p,
        "--workload-api",
        boolean=True,
        default=False,
        help="the mesh's identities from a Workload API agent (`run --workload-api`): the "
        "soak runs through the SVIDs' rotations; certificate faults do not apply then",
    )
    flags.add(
        p,
        "--svid-ttl",
        default="1m",
        metavar="DURATION",
        help="with --workload-api: each SVID's lifetime (renewed at half of it)",
    )
    flags.add(
        p,
        "--gateway-transport",
        default="tls",
        choices=["tls", "mtd"],
        help="how the load reaches the gateway: tls (native gRPC mTLS) or mtd (MTD/1 "
        "into the gateway's sidecar, through a sidecar inside the load, as `run "
        "--gateway-transport mtd`); local processes only",
    )
    flags.add(p, "--json", boolean=True, default=False, help="print the figures as JSON")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mtlsdemo.chaos.run import ChaosConfig, render, run, to_json
    from mtlsdemo.chaos.schedule import KINDS
    from mtlsdemo.pki.durations import parse_duration

    if args.list_faults:
        for name, (what, _hold) in KINDS.items():
            print(f"{name:<22} {what}")
        return 0
    local_only = tuple(k for k in KINDS if k.startswith("net:") or k == "certs:rotate-ca")
    if args.compose and args.faults and set(args.faults) & set(local_only):
        raise PkiError(
            f"chaos --compose: {', '.join(sorted(set(args.faults) & set(local_only)))} need the "
            "local processes (the fault proxy between the sidecars, the rollover's waits); "
            "drop them or run without --compose"
        )
    file_faults = tuple(k for k in KINDS if k.startswith(("certs:", "ca:")))
    if args.workload_api and (args.compose or set(args.faults or ()) & set(file_faults)):
        raise PkiError(
            "chaos --workload-api: "
            + (
                "local processes only (compose keeps file identities)"
                if args.compose
                else f"{', '.join(sorted(set(args.faults) & set(file_faults)))} change identity "
                "files, which the agent's SVIDs replace; drop them"
            )
        )
    if args.gateway_transport == "mtd" and (args.compose or args.workload_api):
        raise PkiError(
            "chaos --gateway-transport mtd: local processes on identity files only ("
            + ("the compose project's gateway takes native TLS" if args.compose else "the "
               "MTD/1 callers require the stapled statuses SVIDs lack")
            + "); drop one of the two"
        )  # fmt: skip
    default = tuple(
        k
        for k in KINDS
        if not (args.compose and k in local_only) and not (args.workload_api and k in file_faults)
    )
    cfg = typed(
        ChaosConfig,
        args,
        work_dir=Path(args.work_dir),
        faults=default if args.faults is None else args.faults,
        svid_ttl=parse_duration(args.svid_ttl, "--svid-ttl"),
        compose_project=args.compose,
        compose_file=Path(args.compose_file),
    )
    import logging

    # the client's own reloads during a rollover are the point, not news: no INFO lines
    logging.getLogger("mtlsdemo.pki.material").setLevel(logging.WARNING)
    report = run(cfg)
    print(to_json(report) if cfg.json else render(report), flush=True)
    return 0 if report.ok else 1
