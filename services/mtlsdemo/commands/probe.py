"""`mtlsdemo probe`: the container health check."""

from __future__ import annotations

import argparse

from mtlsdemo.commands import flags
from mtlsdemo.commands.common import typed


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("probe", help="health check (for container HEALTHCHECK): exit 0 if healthy")
    p.set_defaults(handler=main)
    flags.add(p, "--probe-http", default=None, help="URL that must answer 2xx")
    flags.add(p, "--probe-grpc", default=None, help="HOST:PORT whose gRPC health must be SERVING")
    flags.add(
        p,
        "--probe-identity-dir",
        default=None,
        help="identity dir for an mTLS gRPC probe",
        old="--probe-tls-dir",
    )
    flags.add(
        p,
        "--probe-spiffe-endpoint-socket",
        default=None,
        metavar="unix:///PATH",
        help="for the mTLS gRPC probe, the identity from this Workload API socket instead",
    )
    flags.add(p, "--probe-server-name", default="localhost", help="server name for the mTLS probe")
    flags.add(p, "--probe-timeout", type=float, default=2.0, help="seconds")


def main(args: argparse.Namespace) -> int:
    from mtlsdemo.rpc.probe import ProbeConfig, run

    return run(typed(ProbeConfig, args))
