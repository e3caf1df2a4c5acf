"""The image's roles as containers on a private Docker network, each pair
sharing a network namespace like a pod (testcontainers)."""

from __future__ import annotations

import contextlib
import os
import urllib.request
from pathlib import Path

import grpc
import pytest
from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
from mtlsdemo.rpc.credentials import secure_channel
from support.metrics import metric_value
from support.processes import wait_for
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

pytestmark = pytest.mark.containers
TD = "spiffe://mtls-demo.local/ns/default/sa"


def world_writable(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)  # the containers run as uid 10001
    return path


def bootstrap_in_container(image: str, out: Path, *services: str) -> None:
    args = ["certs", "bootstrap", "--out", "/certs"]
    for s in services:
        args += ["--service", s]
    c = DockerContainer(image).with_command(args).with_volume_mapping(str(out), "/certs", "rw")
    c.start()
    try:
        result = c.get_wrapped_container().wait(timeout=120)
        assert result["StatusCode"] == 0, c.get_logs()
    finally:
        c.stop()


def wait_http(url: str, timeout: float = 60) -> None:
    def ok() -> bool:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200

    wait_for(ok, timeout=timeout, interval=0.3, ignore=(OSError,), what=f"{url} to answer 200")


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


class Pod:
    """An app container that owns the network namespace, and a sidecar joined to it."""

    def __init__(
        self, app: DockerContainer, sidecar_args: list[str], image: str, identity: Path
    ) -> None:
        self.app = app
        self.image, self.sidecar_args, self.identity = image, sidecar_args, identity
        self.sidecar: DockerContainer | None = None

    def start(self) -> Pod:
        self.app.start()
        self.start_sidecar()
        return self

    def start_sidecar(self) -> None:
        ns = f"container:{self.app.get_wrapped_container().id}"
        self.sidecar = (
            DockerContainer(self.image)
            .with_command(["sidecar", *self.sidecar_args])
            .with_volume_mapping(str(self.identity), "/identity", "ro")
            .with_kwargs(network_mode=ns)
        )
        self.sidecar.start()

    def stop(self) -> None:
        for c in (self.sidecar, self.app):
            if c is not None:
                with contextlib.suppress(Exception):  # already gone
                    c.stop()


@pytest.fixture
def pki(image: str, tmp_path: Path) -> Path:
    certs = world_writable(tmp_path / "certs")
    bootstrap_in_container(image, certs, "gateway", "ledger", "cli")
    return certs


def test_transfer_metrics_persistence_and_foreign_ca_in_container_pods(
    image: str, pki: Path, tmp_path: Path
) -> None:
    data = world_writable(tmp_path / "data")
    with Network() as net:
        ledger = Pod(
            DockerContainer(image)
            .with_command(
                [
                    "serve",
                    "ledger",
                    "--plaintext",
                    "--listen",
                    "127.0.0.1:50061",
                    "--db",
                    "/data/ledger.db",
                ]
            )
            .with_volume_mapping(str(data), "/data", "rw")
            .with_network(net)
            .with_network_aliases("ledger")
            .with_exposed_ports(9902),
            [
                "--identity-dir",
                "/identity",
                "--inbound-listen",
                "0.0.0.0:8443",
                "--inbound-target",
                "127.0.0.1:50061",
                "--allow-id",
                f"{TD}/gateway",
                "--admin-listen",
                "0.0.0.0:9902",
            ],
            image,
            pki / "ledger",
        )
        gateway = Pod(
            DockerContainer(image)
            .with_command(
                [
                    "serve",
                    "gateway",
                    "--listen",
                    "0.0.0.0:50052",
                    "--identity-dir",
                    "/identity",
                    "--allow-id",
                    f"{TD}/cli",
                    "--ledger-addr",
                    "127.0.0.1:15001",
                    "--ledger-plaintext",
                ]
            )
            .with_volume_mapping(str(pki / "gateway"), "/identity", "ro")
            .with_network(net)
            .with_exposed_ports(50052, 9901),
            [
                "--identity-dir",
                "/identity",
                "--route",
                f"127.0.0.1:15001=ledger:8443@{TD}/ledger",
                "--admin-listen",
                "0.0.0.0:9901",
            ],
            image,
            pki / "gateway",
        )
        pods = [ledger.start(), gateway.start()]
        try:
            host = gateway.app.get_container_host_ip()
            ledger_admin = f"http://{host}:{ledger.app.get_exposed_port(9902)}"
            gateway_admin = f"http://{host}:{gateway.app.get_exposed_port(9901)}"
            wait_http(ledger_admin + "/readyz")
            wait_http(gateway_admin + "/readyz")
            target = f"{host}:{gateway.app.get_exposed_port(50052)}"
            stub = _stub(target, pki / "cli")
            _retry(
                lambda: stub.OpenAccount(
                    pb.OpenAccountRequest(owner="A", account_id="a"), timeout=5
                )
            )
            stub.OpenAccount(pb.OpenAccountRequest(owner="B", account_id="b"), timeout=5)
            stub.Deposit(pb.DepositRequest(account_id="a", amount_cents=5000), timeout=5)
            m = stub.Transfer(
                pb.TransferRequest(
                    from_account_id="a", to_account_id="b", amount_cents=1234, idempotency_key="k1"
                ),
                timeout=5,
            )
            assert (m.from_balance_cents, m.to_balance_cents) == (3766, 1234)

            led, gw = scrape(ledger_admin + "/metrics"), scrape(gateway_admin + "/metrics")
            assert metric_value(led, "mtls_handshakes_total", role="server", result="success") >= 1
            assert metric_value(gw, "mtls_handshakes_total", role="client", result="success") >= 1
            assert (
                metric_value(
                    led, "mtls_peer_authorizations_total", peer=f"{TD}/gateway", decision="allow"
                )
                >= 1
            )

            # the ledger pod restarts (app and sidecar): nothing committed is lost
            ledger.sidecar.stop()
            ledger.app.get_wrapped_container().restart(timeout=10)
            ledger.start_sidecar()
            ledger_admin = f"http://{host}:{ledger.app.get_exposed_port(9902)}"
            wait_http(ledger_admin + "/readyz")
            b = _retry(lambda: stub.GetBalance(pb.GetBalanceRequest(account_id="b"), timeout=5))
            assert b.balance_cents == 1234

            # a pod whose certificate comes from another CA is refused, and both say why
            # (it trusts our CA, so it is the ledger's sidecar that does the refusing)
            evil = world_writable(tmp_path / "evil")
            bootstrap_in_container(image, evil, "gateway")
            mixed = world_writable(tmp_path / "mixed")
            for name, src in (
                ("tls.crt", evil / "gateway" / "tls.crt"),
                ("tls.key", evil / "gateway" / "tls.key"),
                ("tls.ocsp", evil / "gateway" / "tls.ocsp"),
                ("ca.crt", pki / "ca" / "ca.crt"),
            ):
                (mixed / name).write_bytes(src.read_bytes())
                os.chown(mixed / name, 10001, 10001)
            (mixed / "tls.key").chmod(0o600)  # a key readable by all is refused
            rogue = (
                DockerContainer(image)
                .with_command(
                    [
                        "sidecar",
                        "--identity-dir",
                        "/identity",
                        "--route",
                        f"127.0.0.1:15001=ledger:8443@{TD}/ledger",
                        "--admin-listen",
                        "0.0.0.0:9903",
                    ]
                )
                .with_volume_mapping(str(mixed), "/identity", "ro")
                .with_network(net)
                .with_exposed_ports(9903)
            )
            rogue.start()
            pods.append(Pod(rogue, [], image, evil))
            rogue_admin = f"http://{host}:{rogue.get_exposed_port(9903)}"
            wait_http(rogue_admin + "/healthz")
            code, out = rogue.exec(
                [
                    "python3",
                    "-c",
                    "import socket; s=socket.create_connection(('127.0.0.1',15001));"
                    "s.sendall(b'hello'); print(s.recv(10))",
                ]
            )
            assert code == 0 and b"b''" in out
            _retry(
                lambda: _expect(
                    metric_value(
                        scrape(ledger_admin + "/metrics"),
                        "mtls_handshakes_total",
                        reason="unknown_ca",
                        origin="local",
                    )
                    >= 1
                )
            )
            assert (
                metric_value(
                    scrape(rogue_admin + "/metrics"),
                    "mtls_handshakes_total",
                    reason="unknown_ca",
                    origin="remote_unverified",
                )
                >= 1
            )
        finally:
            for p in reversed(pods):
                p.stop()


def _stub(target: str, tls_dir: Path) -> pb_grpc.GatewayServiceStub:
    return pb_grpc.GatewayServiceStub(secure_channel(target, tls_dir, "gateway"))


def _expect(cond: bool) -> bool:
    if not cond:
        raise AssertionError("not yet")
    return cond


def _retry(fn, timeout: float = 60):
    """fn's result once it stops raising (the mesh is still connecting): a wait, not a retry
    of the assertion's meaning — the last error is re-raised at the deadline."""
    box: list = []

    def attempt() -> bool:
        box[:] = [fn()]
        return True

    try:
        wait_for(
            attempt,
            timeout=timeout,
            interval=0.5,
            ignore=(grpc.RpcError, AssertionError, KeyError, OSError),
            what=str(fn),
        )
    except TimeoutError:
        return fn()  # raises the real error, with its message
    return box[0]
