"""``mtlsdemo probe``: a health check for container HEALTHCHECKs and scripts.

HTTP: GET the URL, healthy on 2xx. gRPC: the standard health service, healthy on
SERVING (mTLS with --probe-tls-dir, else plaintext). Exit 0 healthy, 1 not.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    if not args.probe_http and not args.probe_grpc:
        return 0  # nothing configured for this role: the process being alive is enough
    if args.probe_http:
        try:
            with urllib.request.urlopen(args.probe_http, timeout=args.probe_timeout) as r:
                if not 200 <= r.status < 300:
                    print(f"unhealthy: {args.probe_http} answered {r.status}", file=sys.stderr)
                    return 1
        except (urllib.error.URLError, OSError) as e:
            print(f"unhealthy: {args.probe_http}: {e}", file=sys.stderr)
            return 1
    if args.probe_grpc:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from mtlsdemo.rpc.credentials import secure_channel

        channel = (
            secure_channel(args.probe_grpc, Path(args.probe_tls_dir), args.probe_server_name)
            if args.probe_tls_dir
            else grpc.insecure_channel(args.probe_grpc)
        )
        try:
            status = (
                health_pb2_grpc.HealthStub(channel)
                .Check(health_pb2.HealthCheckRequest(), timeout=args.probe_timeout)
                .status
            )
        except grpc.RpcError as e:
            print(f"unhealthy: {args.probe_grpc}: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
        finally:
            channel.close()
        if status != health_pb2.HealthCheckResponse.SERVING:
            print(
                f"unhealthy: {args.probe_grpc} is {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}",
                file=sys.stderr,
            )
            return 1
    return 0
