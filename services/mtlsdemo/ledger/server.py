"""``mtlsdemo serve ledger``: the ledger as a gRPC server."""

from __future__ import annotations

from pathlib import Path

from mtlsdemo._generated.ledger.v1 import ledger_pb2_grpc as pb_grpc
from mtlsdemo.ledger.service import SERVICE_NAME, LedgerService
from mtlsdemo.ledger.store import LedgerStore
from mtlsdemo.rpc.server import ServiceSpec, run_forever
from mtlsdemo.trust import IdentityPolicy


def serve(
    listen: str,
    tls_dir: Path | None,
    policy: IdentityPolicy | None,
    db_path: Path,
    metrics_listen: str | None,
    crl: Path | None = None,
    crl_required: bool = False,
    crl_state: Path | None = None,
    authz_policy: Path | None = None,
    sidecar_admin: str | None = None,
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
        crl=crl,
        crl_required=crl_required,
        crl_state=crl_state,
        authz_policy=authz_policy,
        sidecar_admin=sidecar_admin,
    )
    try:
        run_forever(spec)
    finally:
        store.close()
