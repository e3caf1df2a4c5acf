"""The mesh's gRPC methods per workload, read from the services' descriptors: what
an authorization policy's ``methods`` may name and what ``authz matrix`` lists."""

from __future__ import annotations

import functools


@functools.cache
def mesh_methods() -> dict[str, tuple[str, ...]]:
    """workload -> its full method names (``/pkg.Service/Method``)."""
    from mtlsdemo._generated.gateway.v1 import gateway_pb2
    from mtlsdemo._generated.ledger.v1 import ledger_pb2

    out = {}
    for workload, module in (("gateway", gateway_pb2), ("ledger", ledger_pb2)):
        out[workload] = tuple(
            f"/{service.full_name}/{m.name}"
            for service in module.DESCRIPTOR.services_by_name.values()
            for m in service.methods
        )
    return out


def all_methods() -> frozenset[str]:
    return frozenset(m for ms in mesh_methods().values() for m in ms)
