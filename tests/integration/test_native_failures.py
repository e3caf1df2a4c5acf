"""Native gRPC mTLS failures explained on the caller's side, in MTD/1's words:
who refused whom, the reason, and what to do; the gateway counts its failed
handshakes with the ledger (a gRPC server never sees the ones it refuses)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
from mtlsdemo.addresses import free_port
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from support.metrics import metric_value, scrape
from support.native import System
from support.processes import mtlsdemo, wait_for

pytestmark = pytest.mark.integration


def client(system: System, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MTLSDEMO_GATEWAY_ADDR=system.gateway_addr)
    return subprocess.run(
        mtlsdemo("client", *args, "balance", "alice"),
        cwd=system.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1, r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr and ".cc:" not in r.stderr, r.stderr
    return errors[0]


def test_client_refusing_the_gateway_says_so_with_the_reason(system: System) -> None:
    foreign = system.root / "foreign"
    bootstrap(BootstrapRequest(out=foreign, services=("cli",)))
    said = one_error(client(system, "--identity-dir", str(foreign / "cli")))
    assert said.startswith("error: you refused the gateway: unknown_ca: issuer ")
    assert "your bundle: " in said and "gRPC said UNAVAILABLE" in said


def test_wrong_server_name_names_what_the_certificate_does_name(system: System) -> None:
    said = one_error(
        client(system, "--identity-dir", str(system.certs / "cli"), "--server-name", "ledger")
    )
    assert f"you refused the server at {system.gateway_addr} (expected: ledger): " in said
    assert "identity_mismatch" in said
    assert "its certificate names gateway, " in said and "not 'ledger'" in said


def test_a_client_pointed_at_the_ledger_never_blames_the_gateway(system: System) -> None:
    """Audited: `client --server-name ledger` at the ledger said "the gateway refused"."""
    foreign = system.root / "foreign-at-ledger"
    bootstrap(BootstrapRequest(out=foreign, services=("cli",)))
    env = dict(os.environ, MTLSDEMO_GATEWAY_ADDR=system.ledger_addr)

    def call(identity: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            mtlsdemo(
                "client",
                "--identity-dir",
                str(identity),
                "--server-name",
                "ledger",
                "balance",
                "alice",
            ),
            cwd=system.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    said = one_error(call(foreign / "cli"))
    assert said.startswith(
        f"error: you refused the server at {system.ledger_addr} (expected: ledger): unknown_ca"
    ), said
    # accepted, but the gateway's API is not there: said so, with the gateway's port
    said = one_error(call(system.certs / "cli"))
    assert "UNIMPLEMENTED" in said and "does not serve the gateway's API" in said, said


def test_gateway_refusing_the_client_is_named_on_the_client(system: System) -> None:
    # our bundle trusts the mesh's CA, our certificate comes from another one
    mixed = system.root / "mixed"
    foreign = system.root / "foreign2"
    bootstrap(BootstrapRequest(out=foreign, services=("cli",)))
    shutil.copytree(foreign / "cli", mixed)
    shutil.copy(system.certs / "cli" / "ca.crt", mixed / "ca.crt")
    said = one_error(client(system, "--identity-dir", str(mixed)))
    assert said.startswith(
        "error: the gateway refused your certificate because it does not trust the CA "
        "that issued it (unknown_ca)"
    )
    assert "What to do: use an identity issued by the mesh's CA" in said
    assert "How we know: it closed the connection" in said


def test_unreachable_gateway_is_one_line(system: System) -> None:
    r = subprocess.run(
        mtlsdemo(
            "client",
            "--gateway-addr",
            f"127.0.0.1:{free_port()}",
            "--identity-dir",
            str(system.certs / "cli"),
            "balance",
            "alice",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "cannot reach the gateway: cannot connect to" in one_error(r)


def test_gateway_explains_and_counts_a_ledger_it_refuses(tmp_path: Path) -> None:
    s = System(tmp_path)
    # the ledger presents a certificate from another CA (its bundle still trusts ours)
    other = tmp_path / "other"
    bootstrap(BootstrapRequest(out=other, services=("ledger",)))
    for f in ("tls.crt", "tls.key", "tls.ocsp"):
        shutil.copy(other / "ledger" / f, s.certs / "ledger" / f)
    s.start_ledger(wait=False)
    s.start_gateway()
    try:
        stub = s.stub()
        with pytest.raises(grpc.RpcError) as err:
            stub.GetBalance(pb.GetBalanceRequest(account_id="a"), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert err.value.details().startswith(
            "ledger unavailable: the gateway refused the ledger: unknown_ca"
        ), err.value.details()
        wait_for(
            lambda: (
                metric_value(
                    scrape(s.gateway_metrics),
                    "mtls_native_handshake_failures_total",
                    peer="ledger",
                    reason="unknown_ca",
                    origin="local",
                )
                >= 1
            ),
            ignore=(KeyError,),
            what="the gateway to count the refused ledger",
        )
    finally:
        s.stop()


def test_tls13_trace_shows_the_real_handshake_next_to_mtd1(system: System) -> None:
    import json

    r = subprocess.run(
        mtlsdemo(
            "handshake",
            "--tls13",
            "--connect",
            system.gateway_addr,
            "--certs-dir",
            str(system.certs),
            "--json",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["version"] == "TLSv1.3"
    seen = {(m["sender"], m["name"]): m["encrypted"] for m in doc["messages"]}
    assert seen[("client", "ClientHello")] is False and seen[("server", "ServerHello")] is False
    # what TLS 1.3 does differently from MTD/1: the certificates travel encrypted
    assert seen[("server", "Certificate")] is True and seen[("client", "Certificate")] is True
    assert seen[("server", "Finished")] is True
    r = subprocess.run(mtlsdemo("handshake", "--tls13"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "needs --connect" in r.stderr


def test_tls13_trace_honours_sslkeylogfile_and_says_so(system: System, tmp_path) -> None:
    import os

    keys = tmp_path / "tls.keys"
    r = subprocess.run(
        mtlsdemo("handshake", "--tls13", "--connect", system.gateway_addr, "--certs-dir", str(system.certs)),
        capture_output=True, text=True, timeout=60, env={**os.environ, "SSLKEYLOGFILE": str(keys)},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"!! SSLKEYLOGFILE: this TLS 1.3 connection's secrets go to {keys}" in r.stderr
    labels = {line.split()[0] for line in keys.read_text().splitlines() if line and line[0] != "#"}
    assert {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0"} <= labels
