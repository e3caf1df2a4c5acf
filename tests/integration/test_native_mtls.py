"""Ledger and gateway as real processes over real gRPC mTLS on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import ssl
import threading
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
from mtlsdemo._generated.ledger.v1 import ledger_pb2 as lpb
from mtlsdemo._generated.ledger.v1 import ledger_pb2_grpc as lpb_grpc
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.rpc.credentials import secure_channel
from support.identities import CLI_ID, GATEWAY_ID, ca_of, make_identity_dir
from support.metrics import metric_value, scrape
from support.native import System
from support.processes import wait_for

pytestmark = pytest.mark.integration


def test_transfer_succeeds_end_to_end(system: System) -> None:
    stub = system.stub()
    a = stub.OpenAccount(pb.OpenAccountRequest(owner="Alice", account_id="alice"), timeout=5)
    stub.OpenAccount(pb.OpenAccountRequest(owner="Bob", account_id="bob"), timeout=5)
    assert a.account_id == "alice"
    stub.Deposit(pb.DepositRequest(account_id="alice", amount_cents=10_000), timeout=5)
    m = stub.Transfer(
        pb.TransferRequest(
            from_account_id="alice", to_account_id="bob", amount_cents=1_250, idempotency_key="t-1"
        ),
        timeout=5,
    )
    assert (m.from_balance_cents, m.to_balance_cents, m.replayed) == (8_750, 1_250, False)
    again = stub.Transfer(
        pb.TransferRequest(
            from_account_id="alice", to_account_id="bob", amount_cents=1_250, idempotency_key="t-1"
        ),
        timeout=5,
    )
    assert again.replayed and again.transfer_id == m.transfer_id
    assert (
        stub.GetBalance(pb.GetBalanceRequest(account_id="alice"), timeout=5).balance_cents == 8_750
    )
    entries = list(stub.Statement(pb.StatementRequest(account_id="alice"), timeout=5))
    assert [(e.kind, e.amount_cents) for e in entries] == [
        ("deposit", 10_000),
        ("transfer_out", -1_250),
    ]


def test_validation_errors_map_to_status_codes(system: System) -> None:
    stub = system.stub()
    stub.OpenAccount(pb.OpenAccountRequest(owner="A", account_id="a"), timeout=5)
    stub.OpenAccount(pb.OpenAccountRequest(owner="B", account_id="b"), timeout=5)
    cases = [
        (
            lambda: stub.Deposit(pb.DepositRequest(account_id="a", amount_cents=-1), timeout=5),
            grpc.StatusCode.INVALID_ARGUMENT,
            "the amount must be positive, got -0.01",
        ),
        (
            lambda: stub.Transfer(
                pb.TransferRequest(from_account_id="a", to_account_id="b", amount_cents=5),
                timeout=5,
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "insufficient funds in a: balance 0.00, transfer 0.05",
        ),
        (
            lambda: stub.GetBalance(pb.GetBalanceRequest(account_id="zed"), timeout=5),
            grpc.StatusCode.NOT_FOUND,
            "account zed not found",
        ),
        (
            lambda: stub.OpenAccount(pb.OpenAccountRequest(owner="A2", account_id="a"), timeout=5),
            grpc.StatusCode.ALREADY_EXISTS,
            "already exists",
        ),
    ]
    for call, code, text in cases:
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == code and text in e.value.details()


def test_statement_follow_streams_new_entries(system: System) -> None:
    stub = system.stub()
    stub.OpenAccount(pb.OpenAccountRequest(owner="A", account_id="a"), timeout=5)
    stream = stub.Statement(pb.StatementRequest(account_id="a", follow=True), timeout=20)
    got: list[int] = []

    def read() -> None:
        for e in stream:
            got.append(e.amount_cents)
            if len(got) == 3:
                stream.cancel()
                return

    t = threading.Thread(target=read)
    t.start()
    for amount in (100, 200, 300):
        stub.Deposit(pb.DepositRequest(account_id="a", amount_cents=amount), timeout=5)
    t.join(15)
    assert got == [100, 200, 300]


def test_client_with_other_ca_is_rejected_at_handshake(system: System, other_pki_dir: Path) -> None:
    # other_pki_dir/cli trusts the other CA and presents a cert from it: both checks fail.
    # Mixed case: trust our CA (so the server is accepted) but present a foreign cert.
    mixed = system.root / "mixed"
    mixed.mkdir()
    shutil.copy(other_pki_dir / "cli" / "tls.crt", mixed / "tls.crt")
    shutil.copy(other_pki_dir / "cli" / "tls.key", mixed / "tls.key")
    shutil.copy(system.certs / "ca" / "ca.crt", mixed / "ca.crt")
    for tls_dir in (other_pki_dir / "cli", mixed):
        with pytest.raises(grpc.RpcError) as e:
            system.stub(tls_dir).GetBalance(pb.GetBalanceRequest(account_id="x"), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE  # no TLS session, no RPC
    # The server itself refuses the handshake: prove it without gRPC in the way.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(system.certs / "ca" / "ca.crt")
    ctx.load_cert_chain(mixed / "tls.crt", mixed / "tls.key")
    ctx.set_alpn_protocols(["h2"])
    # TLS 1.3: the server checks our certificate after its Finished, so the refusal
    # arrives on our first read as an alert (or a closed socket), never as HTTP/2 data.
    with (
        socket.create_connection(("127.0.0.1", system.gateway_port)) as raw,
        ctx.wrap_socket(raw, server_hostname="gateway") as tls,
    ):
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        try:
            data, error = tls.recv(1024), ""
        except (ssl.SSLError, ConnectionResetError) as e:
            data, error = b"", str(e).lower()
    assert data == b""
    assert error == "" or "unknown ca" in error or "certificate" in error


def test_valid_certificate_with_wrong_identity_gets_permission_denied(system: System) -> None:
    # The ledger's certificate is valid, but the gateway allows only the cli identity.
    with pytest.raises(grpc.RpcError) as e:
        system.stub(system.certs / "ledger").GetBalance(
            pb.GetBalanceRequest(account_id="x"), timeout=5
        )
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "spiffe://mtls-demo.local/ns/default/sa/ledger" in e.value.details()
    # And the cli may not skip the gateway to call the ledger directly.
    channel = secure_channel(system.ledger_addr, system.certs / "cli", "ledger")
    with pytest.raises(grpc.RpcError) as e:
        lpb_grpc.LedgerServiceStub(channel).GetAccount(
            lpb.GetAccountRequest(account_id="x"), timeout=5
        )
    channel.close()
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert CLI_ID in e.value.details()
    text = scrape(system.gateway_metrics)
    assert (
        metric_value(
            text,
            "mtls_grpc_authorizations_total",
            peer="spiffe://mtls-demo.local/ns/default/sa/ledger",
            decision="deny",
        )
        >= 1
    )


def test_client_verifies_server_identity(system: System) -> None:
    # The gateway's certificate does not name "ledger": a client expecting the ledger refuses it.
    with pytest.raises(grpc.RpcError) as e:
        system.stub(server_name="ledger").GetBalance(
            pb.GetBalanceRequest(account_id="x"), timeout=5
        )
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_expired_client_certificate_is_rejected(system: System) -> None:
    expired = make_identity_dir(
        system.root / "expired",
        ca_of(system.certs),
        "cli",
        at=dt.datetime.now(dt.UTC) - dt.timedelta(days=40),
        days=30,
    )
    with pytest.raises(grpc.RpcError) as e:
        system.stub(expired).GetBalance(pb.GetBalanceRequest(account_id="x"), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def _served_serial(port: int, certs: Path) -> int:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs / "ca" / "ca.crt")
    ctx.load_cert_chain(certs / "cli" / "tls.crt", certs / "cli" / "tls.key")
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        ctx.wrap_socket(raw, server_hostname="gateway") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def test_renewed_certificate_is_served_without_restart(system: System) -> None:
    before = _served_serial(system.gateway_port, system.certs)
    stub = system.stub()
    stub.OpenAccount(pb.OpenAccountRequest(owner="A", account_id="a"), timeout=5)
    bootstrap(BootstrapRequest(out=system.certs, services=("gateway",), force=True))
    after = _served_serial(system.gateway_port, system.certs)
    assert after != before
    # the old channel's connection keeps working, and new ones too
    assert stub.GetBalance(pb.GetBalanceRequest(account_id="a"), timeout=5).owner == "A"
    assert system.stub().GetBalance(pb.GetBalanceRequest(account_id="a"), timeout=5).owner == "A"
    assert system.gateway and system.gateway.alive()
    text = scrape(system.gateway_metrics)
    assert metric_value(text, "mtls_certificate_reloads_total", result="success") >= 1


def test_gateway_client_channel_follows_renewed_certificate(system: System) -> None:
    stub = system.stub()
    stub.OpenAccount(pb.OpenAccountRequest(owner="A", account_id="a"), timeout=5)
    bootstrap(BootstrapRequest(out=system.certs, services=("gateway",), force=True))
    new_serial = f"{x509.load_pem_x509_certificate((system.certs / 'gateway' / 'tls.crt').read_bytes()).serial_number:x}"
    wait_for(
        lambda: "ledger channel now presents" in system.gateway.output(),
        timeout=15,
        what="the gateway's ledger channel to follow the renewal",
    )
    assert f"serial {new_serial}" in system.gateway.output()
    # calls made on the new channel (new client certificate) still reach the ledger
    for i in range(3):
        stub.Deposit(pb.DepositRequest(account_id="a", amount_cents=10 + i), timeout=5)
    assert stub.GetBalance(pb.GetBalanceRequest(account_id="a"), timeout=5).balance_cents == 33


def test_broken_renewal_keeps_serving_old_certificate(system: System) -> None:
    before = _served_serial(system.gateway_port, system.certs)
    (system.certs / "gateway" / "tls.crt").write_text("garbage")
    assert _served_serial(system.gateway_port, system.certs) == before
    text = scrape(system.gateway_metrics)
    assert metric_value(text, "mtls_certificate_reloads_total", result="failure") >= 1
    assert "certificate reload rejected" in system.gateway.output()


def test_ledger_restart_loses_no_committed_transfer(system: System) -> None:
    stub = system.stub()
    stub.OpenAccount(pb.OpenAccountRequest(owner="A", account_id="a"), timeout=5)
    stub.OpenAccount(pb.OpenAccountRequest(owner="B", account_id="b"), timeout=5)
    stub.Deposit(pb.DepositRequest(account_id="a", amount_cents=100_000), timeout=5)
    done = []
    for i in range(20):
        done.append(
            stub.Transfer(
                pb.TransferRequest(
                    from_account_id="a",
                    to_account_id="b",
                    amount_cents=100,
                    idempotency_key=f"t{i}",
                ),
                timeout=5,
            ).transfer_id
        )
    assert system.ledger
    system.ledger.stop(signal_kill := 9)  # SIGKILL: no graceful anything
    del signal_kill
    system.start_ledger()
    b = stub.GetBalance(pb.GetBalanceRequest(account_id="b"), timeout=10)
    assert b.balance_cents == 2_000
    entries = list(stub.Statement(pb.StatementRequest(account_id="b"), timeout=5))
    assert [e.transfer_id for e in entries] == done
    # replaying a transfer after the restart still moves nothing
    r = stub.Transfer(
        pb.TransferRequest(
            from_account_id="a", to_account_id="b", amount_cents=100, idempotency_key="t0"
        ),
        timeout=5,
    )
    assert r.replayed and r.to_balance_cents == 2_000


def test_metrics_reflect_calls(system: System) -> None:
    stub = system.stub()
    stub.OpenAccount(pb.OpenAccountRequest(owner="A", account_id="a"), timeout=5)
    for _ in range(3):
        stub.Deposit(pb.DepositRequest(account_id="a", amount_cents=100), timeout=5)
    with pytest.raises(grpc.RpcError):
        stub.GetBalance(pb.GetBalanceRequest(account_id="nope"), timeout=5)
    g = scrape(system.gateway_metrics)
    svc = "mtlsdemo.gateway.v1.GatewayService"
    assert (
        metric_value(
            g, "grpc_server_handled_total", grpc_service=svc, grpc_method="Deposit", grpc_code="OK"
        )
        == 3
    )
    assert (
        metric_value(
            g,
            "grpc_server_handled_total",
            grpc_service=svc,
            grpc_method="GetBalance",
            grpc_code="NOT_FOUND",
        )
        == 1
    )
    assert (
        metric_value(
            g, "grpc_server_handling_seconds_count", grpc_service=svc, grpc_method="Deposit"
        )
        == 3
    )
    assert (
        metric_value(
            g,
            "grpc_client_handled_total",
            grpc_service="mtlsdemo.ledger.v1.LedgerService",
            grpc_method="Deposit",
            grpc_code="OK",
        )
        == 3
    )
    expiry = metric_value(
        g, "mtls_certificate_expiry_timestamp_seconds", identity=GATEWAY_ID, kind="leaf"
    )
    assert 29 * 86400 < expiry - time.time() < 31 * 86400
    led = scrape(system.ledger_metrics)
    assert metric_value(led, "ledger_transfers_total", kind="deposit", result="applied") == 3
    assert metric_value(led, "ledger_moved_cents_total", kind="deposit") == 300
    assert metric_value(led, "ledger_accounts") == 1
