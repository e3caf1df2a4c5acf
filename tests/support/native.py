"""The ledger and the gateway as real processes over native gRPC mTLS on 127.0.0.1,
each with its own certificates and database (the integration tier's `system`)."""

from __future__ import annotations

import socket
from pathlib import Path

from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
from mtlsdemo.addresses import free_port
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.rpc.credentials import secure_channel

from support.identities import CLI_ID, GATEWAY_ID
from support.processes import Proc, mtlsdemo, wait_for, wait_healthy


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class System:
    """ledger + gateway processes with their own certificates and database."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.certs = root / "certs"
        bootstrap(BootstrapRequest(out=self.certs, services=("gateway", "ledger", "cli")))
        self.ledger_port, self.gateway_port = free_port(), free_port()
        self.ledger_metrics, self.gateway_metrics = free_port(), free_port()
        self.db = root / "ledger.db"
        self.ledger: Proc | None = None
        self.gateway: Proc | None = None

    @property
    def gateway_addr(self) -> str:
        return f"127.0.0.1:{self.gateway_port}"

    @property
    def ledger_addr(self) -> str:
        return f"127.0.0.1:{self.ledger_port}"

    def crl_flags(self, crl: bool) -> tuple[str, ...]:
        return ("--crl", str(self.certs / "ca" / "crl.pem")) if crl else ()

    def start_ledger(self, crl: bool = False, wait: bool = True) -> None:
        self.ledger = Proc(
            "ledger",
            mtlsdemo(
                "serve",
                "ledger",
                *self.crl_flags(crl),
                "--listen",
                self.ledger_addr,
                "--identity-dir",
                str(self.certs / "ledger"),
                "--allow-id",
                GATEWAY_ID,
                "--db",
                str(self.db),
                "--metrics-listen",
                f"127.0.0.1:{self.ledger_metrics}",
            ),
            self.root / "ledger.log",
        ).start()
        if wait:
            wait_healthy(self.ledger_addr, self.certs / "cli", "ledger", self.ledger)
        else:  # a ledger our cli would refuse: wait for its port instead
            wait_for(lambda: _listening(self.ledger_port), what="the ledger's port")

    def start_gateway(self, crl: bool = False) -> None:
        self.gateway = Proc(
            "gateway",
            mtlsdemo(
                "serve",
                "gateway",
                *self.crl_flags(crl),
                "--listen",
                self.gateway_addr,
                "--identity-dir",
                str(self.certs / "gateway"),
                "--allow-id",
                CLI_ID,
                "--ledger-addr",
                self.ledger_addr,
                "--metrics-listen",
                f"127.0.0.1:{self.gateway_metrics}",
            ),
            self.root / "gateway.log",
        ).start()
        wait_healthy(self.gateway_addr, self.certs / "cli", "gateway", self.gateway)

    def stub(self, tls_dir: Path | None = None, server_name: str = "gateway"):
        channel = secure_channel(self.gateway_addr, tls_dir or self.certs / "cli", server_name)
        self._channels.append(channel)
        return pb_grpc.GatewayServiceStub(channel)

    _channels: list = []

    def stop(self) -> None:
        for ch in self._channels:
            ch.close()
        for p in (self.gateway, self.ledger):
            if p is not None:
                p.stop()
