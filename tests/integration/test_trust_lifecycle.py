"""The life of a certificate with real processes: revoked while traffic flows
(sidecars: the stapled status; native gRPC: the CRL), and a CA rollover in three
stages under steady traffic with zero failed calls."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from pathlib import Path

import grpc
import pytest
from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
from mtlsdemo.pki.files import load_cert
from mtlsdemo.rpc.credentials import secure_channel
from support.apps import EchoServer
from support.identities import ca_of, make_identity_dir
from support.metrics import metric_value
from support.native import System
from support.processes import mtlsdemo, wait_for
from support.sidecars import Mesh, handshakes, roundtrip
from support.traffic import Traffic

pytestmark = pytest.mark.integration


def certs_cli(*args: str) -> str:
    r = subprocess.run(mtlsdemo("certs", *args), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _reloaded(side, serial: str | None = None, cas: int | None = None) -> bool:
    cert = side.status()
    ok = serial is None or cert["certificate"]["serial"] == serial
    return ok and (cas is None or len(cert["ca_fingerprints_sha256"]) == cas)


# ------------------------------------------------------------------ revocation
def test_revoked_gateway_is_refused_at_its_next_handshake_on_both_sides(
    tmp_path: Path, certs: Path, echo: EchoServer
) -> None:
    mesh = Mesh(tmp_path, certs, echo.port)
    try:
        assert roundtrip(mesh.route, b"before") == b"before"
        out = certs_cli("revoke", "gateway", "--out", str(certs), "--reason", "key_compromise")
        serial = f"{load_cert(certs / 'gateway' / 'tls.crt').serial_number:x}"
        assert f"gateway    revoked (serial {serial}, key_compromise; CRL published)" in out
        # the gateway's sidecar reloads its revoked status (no restart) and staples it:
        # the ledger's sidecar refuses the very next handshake
        wait_for(
            lambda: mesh.client.status()["certificate"]["reload_generation"] >= 1,
            what="the gateway sidecar to reload its status",
        )
        with socket.create_connection(("127.0.0.1", mesh.route), timeout=10) as s:
            s.sendall(b"after")
            with contextlib.suppress(ConnectionResetError):
                assert s.recv(100) == b""
        wait_for(
            lambda: (
                handshakes(mesh.server, reason="certificate_revoked", origin="local") == 1
                and handshakes(
                    mesh.client, reason="certificate_revoked", origin="remote_unverified"
                )
                == 1
            ),
            what="certificate_revoked counted on both sides",
        )
        assert f"serial {serial} was revoked" in mesh.server.proc.output()
        assert mesh.client.proc.alive() and mesh.server.proc.alive()
        assert echo.bytes == len(b"before")  # the app never saw the refused bytes
        # the next bootstrap issues a new leaf, and traffic flows again
        assert "gateway    issued (the old one, serial" in certs_cli(
            "bootstrap", "--out", str(certs)
        )
        wait_for(
            lambda: roundtrip(mesh.route, b"again") == b"again",
            ignore=(OSError,),
            what="traffic with the new leaf",
        )
    finally:
        mesh.stop()


def test_soft_status_policy_accepts_a_revoked_peer_and_counts_it(
    tmp_path: Path, certs: Path, echo: EchoServer
) -> None:
    mesh = Mesh(tmp_path, certs, echo.port, server_args=("--require-status", "soft"))
    try:
        certs_cli("revoke", "gateway", "--out", str(certs))
        wait_for(
            lambda: mesh.client.status()["certificate"]["reload_generation"] >= 1,
            what="the gateway sidecar to reload its status",
        )
        assert roundtrip(mesh.route, b"soft") == b"soft"
        assert (
            metric_value(
                mesh.server.metrics(),
                "mtls_status_soft_failures_total",
                reason="certificate_revoked",
            )
            == 1
        )
    finally:
        mesh.stop()


def test_native_ledger_denies_a_revoked_gateway_naming_the_serial(tmp_path: Path) -> None:
    system = System(tmp_path)
    system.start_ledger(crl=True)
    system.start_gateway(crl=True)
    try:
        stub = system.stub()
        stub.OpenAccount(pb.OpenAccountRequest(owner="A", account_id="a"), timeout=5)
        certs_cli("revoke", "cli", "--out", str(system.certs))
        serial = f"{load_cert(system.certs / 'cli' / 'tls.crt').serial_number:x}"
        with pytest.raises(grpc.RpcError) as err:
            system.stub().GetBalance(pb.GetBalanceRequest(account_id="a"), timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"serial {serial} was revoked at" in err.value.details()
        assert "rejected by the mtlsdemo.gateway.v1.GatewayService server" in err.value.details()
        assert system.gateway.alive()
    finally:
        system.stop()


# ------------------------------------------------------------------ CA rollover
@pytest.mark.parametrize(
    "to_key_type",
    [None, "ml-dsa-65"],
    ids=["same-algorithm", "ecdsa-to-ml-dsa"],  # the post-quantum migration users will do
)
def test_ca_rollover_under_traffic_through_sidecars_fails_no_call(
    tmp_path: Path, certs: Path, echo: EchoServer, to_key_type: str | None
) -> None:
    old_ca = ca_of(certs)
    mesh = Mesh(tmp_path, certs, echo.port)
    traffic = Traffic(lambda: roundtrip(mesh.route, b"x" * 100) == b"x" * 100 or 1 / 0)
    new_type = ["--key-type", to_key_type] if to_key_type else []
    try:
        wait_for(lambda: traffic.ok >= 5, what="traffic flowing")
        assert mesh.client.status()["certificate"]["key_type"] == "ecdsa-p256"
        certs_cli("rotate-ca", "prepare", "--out", str(certs), *new_type)
        wait_for(
            lambda: _reloaded(mesh.client, cas=2) and _reloaded(mesh.server, cas=2),
            what="both sidecars trusting old + new",
        )
        certs_cli("rotate-ca", "switch", "--out", str(certs))
        new_serials = {
            s: f"{load_cert(certs / s / 'tls.crt').serial_number:x}" for s in ("gateway", "ledger")
        }
        wait_for(
            lambda: (
                _reloaded(mesh.client, new_serials["gateway"])
                and _reloaded(mesh.server, new_serials["ledger"])
            ),
            what="both sidecars on leaves from the new CA",
        )
        want = to_key_type or "ecdsa-p256"
        assert [m.status()["certificate"]["key_type"] for m in (mesh.client, mesh.server)] == [
            want,
            want,
        ]
        n = traffic.ok
        wait_for(lambda: traffic.ok >= n + 5, what="traffic on the new leaves")
        certs_cli("rotate-ca", "finish", "--out", str(certs))
        wait_for(
            lambda: _reloaded(mesh.client, cas=1) and _reloaded(mesh.server, cas=1),
            what="both sidecars trusting the new CA only",
        )
        n = traffic.ok
        wait_for(lambda: traffic.ok >= n + 5, what="traffic after finish")
    finally:
        traffic.stop()
    try:
        assert traffic.failures == [], traffic.failures[:5]
        print(f"rollover through sidecars to {to_key_type}: {traffic.ok} connections, 0 failed")
        assert handshakes(mesh.server, result="failure") == 0
        # every handshake now verifies to the new anchor: the old CA's leaves are refused
        stale = make_identity_dir(tmp_path / "old-gw", old_ca, "gateway")
        shutil.copy(certs / "gateway" / "ca.crt", stale / "ca.crt")  # it trusts the new CA
        other = Mesh(tmp_path / "m2", certs, echo.port, client_dir=stale, client_ready="/healthz")
        try:
            with socket.create_connection(("127.0.0.1", other.route), timeout=10) as s:
                s.sendall(b"old")
                with contextlib.suppress(ConnectionResetError):
                    assert s.recv(100) == b""
            wait_for(
                lambda: handshakes(other.server, reason="unknown_ca", origin="local") == 1,
                what="the old CA's leaf refused as unknown_ca",
            )
        finally:
            other.stop()
    finally:
        mesh.stop()


def test_ca_rollover_under_native_traffic_fails_no_call(tmp_path: Path) -> None:
    system = System(tmp_path)
    system.start_ledger(crl=True)
    system.start_gateway(crl=True)
    system.stub().OpenAccount(pb.OpenAccountRequest(owner="A", account_id="a"), timeout=5)

    def call() -> None:
        # a client reads its own files at connect time, like any client would; the
        # bootstrap's directory lock means it never loads half a rotation's files
        channel = secure_channel(system.gateway_addr, system.certs / "cli", "gateway")
        with channel:
            pb_grpc.GatewayServiceStub(channel).GetBalance(
                pb.GetBalanceRequest(account_id="a"), timeout=5
            )

    traffic = Traffic(call)
    try:
        wait_for(lambda: traffic.ok >= 5, what="traffic flowing")
        for stage in ("prepare", "switch", "finish"):
            certs_cli("rotate-ca", stage, "--out", str(system.certs))
            n = traffic.ok
            wait_for(lambda n=n: traffic.ok >= n + 10, timeout=60, what=f"traffic after {stage}")
    finally:
        traffic.stop()
        system.stop()
    assert traffic.failures == [], traffic.failures[:5]
    print(f"rollover natively: {traffic.ok} calls, 0 failed")
