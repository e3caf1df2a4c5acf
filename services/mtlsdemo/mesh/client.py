"""The running local mesh as `mtlsdemo break` sees it: where things listen, what
the sidecars counted, and one call through the gateway."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from prometheus_client.samples import Sample

from mtlsdemo.addresses import DEFAULT_PORTS
from mtlsdemo.pki.material import IdentityMaterial, IdentitySource
from mtlsdemo.sidecar.adminclient import AdminClient
from mtlsdemo.telemetry import samples
from mtlsdemo.trust.spiffe import DEFAULT_TRUST_DOMAIN, workload_id

HandshakeKey = tuple[str, str, str]  # (role, reason, origin)


@dataclass(frozen=True)
class MeshConfig:
    """Where `make run` (`mtlsdemo run`) puts everything; the same defaults."""

    certs_dir: Path = Path("certs")
    ledger: tuple[str, int] = ("127.0.0.1", DEFAULT_PORTS["ledger"])  # the ledger sidecar
    gateway: tuple[str, int] = ("127.0.0.1", DEFAULT_PORTS["gateway"])  # its public port
    gateway_admin: tuple[str, int] = ("127.0.0.1", DEFAULT_PORTS["gateway_admin"])
    ledger_admin: tuple[str, int] = ("127.0.0.1", DEFAULT_PORTS["ledger_admin"])
    route: tuple[str, int] = ("127.0.0.1", DEFAULT_PORTS["route"])  # gateway sidecar's route
    gateway_metrics: tuple[str, int] = ("127.0.0.1", DEFAULT_PORTS["gateway_metrics"])
    agent_admin: tuple[str, int] = ("127.0.0.1", DEFAULT_PORTS["agent_admin"])  # --workload-api
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    namespace: str = "default"
    timeout: float = 5.0
    transport: str = "auto"  # how callers reach the gateway (rpc.credentials.caller_channel)

    def id(self, service: str) -> str:
        return workload_id(self.trust_domain, self.namespace, service)


def _get(addr: tuple[str, int], path: str, timeout: float = 3.0) -> bytes:
    return AdminClient(addr[0], addr[1], timeout).get(path)


class LocalMesh:
    def __init__(self, config: MeshConfig) -> None:
        self.config = config

    def sidecars_up(self) -> bool:
        try:
            _get(self.config.ledger_admin, "/healthz")
            _get(self.config.gateway_admin, "/healthz")
        except OSError:
            return False
        return True

    def status(self, admin: tuple[str, int]) -> dict[str, Any]:
        return dict(json.loads(_get(admin, "/status")))

    def on_workload_api(self) -> bool:
        """Whether the sidecars take their identities from a Workload API agent (then
        they staple nothing, and files in the certs dir are not theirs)."""
        source = self.status(self.config.ledger_admin).get("identity_source", {})
        return "workload_api" in source

    def agent(self) -> dict[str, Any]:
        """The Workload API agent's /status (a mesh run with --workload-api)."""
        return dict(json.loads(_get(self.config.agent_admin, "/status")))

    def samples(self, admin: tuple[str, int], name: str) -> list[Sample]:
        """The samples of one metric on a sidecar's /metrics (none if it is down)."""
        try:
            text = _get(admin, "/metrics").decode()
        except OSError:
            return []
        return list(samples(text, (name,)))

    def handshakes(self, admin: tuple[str, int]) -> Counter[HandshakeKey]:
        """mtls_handshakes_total failures of one sidecar, by (role, reason, origin)."""
        out: Counter[HandshakeKey] = Counter()
        for s in self.samples(admin, "mtls_handshakes_total"):
            if s.labels.get("result") == "failure":
                out[(s.labels["role"], s.labels["reason"], s.labels["origin"])] += int(s.value)
        return out

    def gateway_checks_crl(self) -> bool:
        """Whether the gateway checks its callers against a CRL: the mtls_crl_* series
        exist only in a process that has loaded one (compose's gateway has none)."""
        return bool(
            self.samples(self.config.gateway_metrics, "mtls_crl_next_update_timestamp_seconds")
        )

    def serial(self, admin: tuple[str, int]) -> str:
        return str(self.status(admin)["certificate"]["serial"])

    def status_bytes(self, admin: tuple[str, int]) -> int:
        return int(self.status(admin)["certificate"]["stapled_status"]["bytes"])

    def identity(self, service: str) -> IdentityMaterial:
        return IdentitySource(self.config.certs_dir / service).current

    def caller_transport(self) -> str:
        """tls or mtd: how the cli identity reaches the gateway on this mesh."""
        from mtlsdemo.gateway.caller import resolve_transport

        return resolve_transport(self.config.transport, self.identity("cli"))

    def call_gateway(
        self, identity: Path | None = None, server_name: str = "gateway"
    ) -> str | None:
        """One GetBalance through the gateway (the cli identity by default, over the
        mesh's caller transport): None when it answered (any application answer),
        else the failure in words (the client's explanation of a failed handshake)."""
        from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
        from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
        from mtlsdemo.gateway.caller import caller_channel, why_unavailable

        where = identity or self.config.certs_dir / "cli"
        m = IdentitySource(where).current
        host, port = self.config.gateway
        # the mesh's transport (its cli identity's), not the crafted identity's own:
        # an ECDSA impostor at a gateway behind its sidecar still speaks MTD/1
        transport = self.caller_transport()
        with caller_channel(f"{host}:{port}", where, server_name, transport, material=m) as channel:
            try:
                pb_grpc.GatewayServiceStub(channel).GetBalance(
                    pb.GetBalanceRequest(account_id="break-probe"), timeout=self.config.timeout
                )
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND:  # the gateway and the ledger answered
                    return None
                found = why_unavailable(e, channel, (host, port), m, server_name)
                if found is not None:
                    return found.sentence("gateway")
                return f"{e.code().name}: {e.details()}"
        return None


def through_route(route: tuple[str, int], timeout: float) -> str:
    """A new connection into the gateway sidecar's route: a new tunnel, so a new
    MTD/1 handshake with the ledger's sidecar (a live gRPC connection would reuse
    its tunnel: revocation, like TLS, applies to new handshakes)."""
    import socket

    with socket.create_connection(route, timeout=timeout) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
        try:
            data = s.recv(100)
        except ConnectionResetError:  # the sidecar aborted the app side: the same refusal
            data = b""
        except OSError as e:
            return f"connection ended ({e.strerror or e})"
    return "the ledger answered" if data else "connection closed by the gateway's sidecar"


def delta(before: Counter[HandshakeKey], after: Counter[HandshakeKey]) -> dict[HandshakeKey, int]:
    return {k: int(after[k] - before[k]) for k in after if after[k] > before[k]}


def reachable(addr: tuple[str, int]) -> bool:
    try:
        _get(addr, "/healthz", timeout=1.0)
    except (OSError, urllib.error.URLError):
        return False
    return True
