"""``mtlsdemo serve gateway``: the public API as a gRPC server."""

from __future__ import annotations

from pathlib import Path

from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
from mtlsdemo.gateway.ledger_client import LedgerConnection
from mtlsdemo.gateway.service import SERVICE_NAME, GatewayService
from mtlsdemo.rpc.server import CallerChecks, ServiceSpec, run_forever
from mtlsdemo.trust import IdentityPolicy


def serve(
    listen: str,
    tls_dir: Path | None,
    policy: IdentityPolicy | None,
    ledger_addr: str,
    ledger_tls_dir: Path | None,
    ledger_server_name: str,
    metrics_listen: str | None,
    checks: CallerChecks | None = None,
    workload_api: str | None = None,
) -> None:
    ledger = LedgerConnection(ledger_addr, ledger_tls_dir, ledger_server_name)
    service = GatewayService(ledger)
    spec = ServiceSpec(
        component="gateway",
        listen=listen,
        tls_dir=tls_dir,
        policy=policy,
        metrics_listen=metrics_listen,
        register=lambda server: pb_grpc.add_GatewayServiceServicer_to_server(service, server),
        service_names=[SERVICE_NAME],
        checks=checks or CallerChecks(),
        workload_api=workload_api,
    )
    try:
        run_forever(spec)
    finally:
        ledger.close()
