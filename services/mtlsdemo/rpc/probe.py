"""``mtlsdemo probe``: a health check for container HEALTHCHECKs and scripts.

HTTP: GET the URL, healthy on 2xx. gRPC: the standard health service, healthy on
SERVING (mTLS with --probe-identity-dir or the SVID of
--probe-spiffe-endpoint-socket, else plaintext). Exit 0 healthy, 1 not.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mtlsdemo.pki.material import IdentityMaterial


@dataclass(frozen=True)
class ProbeConfig:
    """`mtlsdemo probe`, typed (built from the flags in commands/probe.py)."""

    probe_http: str | None = None
    probe_grpc: str | None = None
    probe_identity_dir: str | None = None
    probe_spiffe_endpoint_socket: str | None = None
    probe_server_name: str = "localhost"
    probe_timeout: float = 2.0


def probe_identity(cfg: ProbeConfig) -> Path | IdentityMaterial | None:
    """The files, the SVID the agent serves now (fetched once), or none (plaintext)."""
    if cfg.probe_spiffe_endpoint_socket:
        from mtlsdemo.pki.workload_api import WorkloadApiSource

        source = WorkloadApiSource(cfg.probe_spiffe_endpoint_socket, first_wait=cfg.probe_timeout)
        try:
            return source.current
        finally:
            source.close()
    return Path(cfg.probe_identity_dir) if cfg.probe_identity_dir else None


def run(cfg: ProbeConfig) -> int:
    if not cfg.probe_http and not cfg.probe_grpc:
        return 0  # nothing configured for this role: the process being alive is enough
    if cfg.probe_http:
        try:
            with urllib.request.urlopen(cfg.probe_http, timeout=cfg.probe_timeout) as r:
                if not 200 <= r.status < 300:
                    print(f"unhealthy: {cfg.probe_http} answered {r.status}", file=sys.stderr)
                    return 1
        except (urllib.error.URLError, OSError) as e:
            print(f"unhealthy: {cfg.probe_http}: {e}", file=sys.stderr)
            return 1
    if cfg.probe_grpc:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from mtlsdemo.rpc.credentials import secure_channel

        identity = probe_identity(cfg)
        channel = (
            secure_channel(cfg.probe_grpc, identity, cfg.probe_server_name)
            if identity is not None
            else grpc.insecure_channel(cfg.probe_grpc)
        )
        try:
            status = (
                health_pb2_grpc.HealthStub(channel)
                .Check(health_pb2.HealthCheckRequest(), timeout=cfg.probe_timeout)
                .status
            )
        except grpc.RpcError as e:
            print(f"unhealthy: {cfg.probe_grpc}: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
        finally:
            channel.close()
        if status != health_pb2.HealthCheckResponse.SERVING:
            print(
                f"unhealthy: {cfg.probe_grpc} is {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}",
                file=sys.stderr,
            )
            return 1
    return 0
