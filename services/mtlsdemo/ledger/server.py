"""``mtlsdemo serve ledger``: the ledger as a gRPC server."""

from __future__ import annotations

from pathlib import Path

from mtlsdemo._generated.ledger.v1 import ledger_pb2_grpc as pb_grpc
from mtlsdemo.ledger.service import SERVICE_NAME, LedgerService
from mtlsdemo.ledger.store import LedgerStore
from mtlsdemo.rpc.server import CallerChecks, ServiceSpec, run_forever
from mtlsdemo.trust import IdentityPolicy


def serve(
    listen: str,
    tls_dir: Path | None,
    policy: IdentityPolicy | None,
    db_path: Path,
    metrics_listen: str | None,
    checks: CallerChecks | None = None,
    workload_api: str | None = None,
) -> None:
    store = LedgerStore(db_path)
    service = LedgerService(store)
    spec = ServiceSpec(
        component="ledger",
        listen=listen,
        tls_dir=tls_dir,
        policy=policy,
        metrics_listen=metrics_listen,
        register=lambda server: pb_grpc.add_LedgerServiceServicer_to_server(service, server),
        service_names=[SERVICE_NAME],
        checks=checks or CallerChecks(),
        workload_api=workload_api,
    )
    try:
        run_forever(spec)
    finally:
        store.close()
