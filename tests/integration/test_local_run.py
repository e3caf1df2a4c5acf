"""`mtlsdemo run` as a new user meets it (what `make run` calls), and a certificate
made with the seed's openssl steps used for real."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest
from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
from mtlsdemo.addresses import free_port
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.rpc.credentials import secure_channel
from support.identities import CLI_ID, GATEWAY_ID
from support.processes import Proc, mtlsdemo, run_command, wait_healthy
from support.tools import require_binary

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", ["sidecar", "native"])
def test_run_starts_everything_sends_traffic_and_stops(tmp_path: Path, mode: str) -> None:
    argv, ports = run_command(
        tmp_path, "--mode", mode, "--traffic-seconds", "1", "--exit-after-traffic"
    )
    r = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "ca         created" in out
    assert "[ledger]" in out and "[gateway]" in out  # children's logs, prefixed
    assert "codes: OK=" in out and "UNAVAILABLE" not in out
    assert f"http://127.0.0.1:{ports['gateway_metrics']}/metrics" in out
    assert "mtlsdemo client" in out
    assert "gateway stopped" in out and "ledger stopped" in out  # clean SIGTERM shutdown
    assert (tmp_path / "var" / "ledger.db").exists()
    if mode == "native":  # said, not silently missing
        assert "console  none in native mode (no sidecars to watch)" in out
    if mode == "sidecar":
        assert "[ledger-sidecar]" in out and "[gateway-sidecar]" in out
        assert "ledger-sidecar stopped" in out and "gateway-sidecar stopped" in out
        edges = [
            line
            for line in out.splitlines()
            if line.strip().startswith(("gateway-sidecar ", "ledger-sidecar "))
            and "spiffe://" in line
        ]
        assert len(edges) == 2, out  # the edge as seen from each end
        for line in edges:
            assert (
                "sa/gateway" in line and "sa/ledger" in line and "X25519MLKEM768" in line
            )  # the default offer: the hybrid
            assert line.split()[-1] == "0"  # no failed handshakes


def test_run_refuses_busy_port_with_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        # every other port free and our own (a user's `make run` may hold the defaults);
        # the later --gateway-port wins over the one run_command chose
        argv, _ports = run_command(tmp_path, "--gateway-port", str(busy))
        r = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert r.returncode == 2
    assert f"--gateway-port {busy}" in r.stderr


def test_openssl_made_client_certificate_calls_the_gateway(tmp_path: Path) -> None:
    openssl = require_binary("openssl")
    certs = tmp_path / "certs"
    bootstrap(BootstrapRequest(out=certs, services=("gateway", "ledger")))
    me = tmp_path / "me"
    me.mkdir()
    subprocess.run(
        [openssl, "genrsa", "-out", str(me / "tls.key"), "2048"], check=True, capture_output=True
    )
    subprocess.run(
        [
            openssl,
            "req",
            "-new",
            "-key",
            str(me / "tls.key"),
            "-out",
            str(me / "req.csr"),
            "-subj",
            "/CN=cli",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        mtlsdemo(
            "certs",
            "sign",
            str(me / "req.csr"),
            "--ca-dir",
            str(certs / "ca"),
            "--out",
            str(me / "tls.crt"),
        ),
        check=True,
        capture_output=True,
    )
    (me / "ca.crt").write_bytes((certs / "ca" / "ca.crt").read_bytes())
    lp, gp = free_port(), free_port()
    ledger = Proc(
        "ledger",
        mtlsdemo(
            "serve",
            "ledger",
            "--listen",
            f"127.0.0.1:{lp}",
            "--identity-dir",
            str(certs / "ledger"),
            "--allow-id",
            GATEWAY_ID,
            "--db",
            str(tmp_path / "l.db"),
        ),
        tmp_path / "l.log",
    ).start()
    gateway = Proc(
        "gateway",
        mtlsdemo(
            "serve",
            "gateway",
            "--listen",
            f"127.0.0.1:{gp}",
            "--identity-dir",
            str(certs / "gateway"),
            "--allow-id",
            CLI_ID,
            "--ledger-addr",
            f"127.0.0.1:{lp}",
        ),
        tmp_path / "g.log",
    ).start()
    try:
        wait_healthy(f"127.0.0.1:{gp}", me, "gateway", gateway)
        channel = secure_channel(f"127.0.0.1:{gp}", me, "gateway")
        r = pb_grpc.GatewayServiceStub(channel).OpenAccount(
            pb.OpenAccountRequest(owner="openssl user"), timeout=10
        )
        assert r.owner == "openssl user"
        channel.close()
    except grpc.RpcError as e:
        raise AssertionError(f"{e}\n{ledger.output()}\n{gateway.output()}") from None
    finally:
        gateway.stop()
        ledger.stop()


def test_run_reports_a_dead_child_with_its_last_log_lines(tmp_path: Path) -> None:
    blocker = tmp_path / "var"
    blocker.write_text("a file where the ledger wants its data directory")
    argv, _ports = run_command(tmp_path, "--exit-after-traffic", data_dir=blocker)
    r = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 1
    assert "!! ledger exited with status" in r.stderr
    assert "ledger|" in r.stderr  # its last log lines, prefixed


def test_run_on_rsa_key_transport_end_to_end_and_never_rekeys_silently(tmp_path: Path) -> None:
    """The seed's own key exchange: RSA leaves and RSA-OAEP suites on both sidecars;
    a later plain `run` keeps the RSA leaves instead of re-keying them."""
    argv, _ = run_command(
        tmp_path,
        "--key-type",
        "rsa-2048",
        "--suites",
        "RSA-OAEP-AES-256-GCM",
        "--traffic-seconds",
        "1",
        "--exit-after-traffic",
    )
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "codes: OK=" in r.stdout and "UNAVAILABLE" not in r.stdout
    edges = [line for line in r.stdout.splitlines() if "sidecar " in line and "spiffe://" in line]
    assert len(edges) == 2 and all("RSA-OAEP-AES-256-GCM" in e for e in edges), r.stdout
    assert "rsa-2048" in r.stdout
    argv, _ = run_command(tmp_path, "--traffic-seconds", "0", "--exit-after-traffic")
    again = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "gateway    unchanged" in again.stdout and "issued" not in again.stdout


def test_run_refuses_rsa_key_transport_on_ecdsa_leaves(tmp_path: Path) -> None:
    argv, _ = run_command(tmp_path, "--suites", "RSA-OAEP-AES-256-GCM")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and "add --key-type rsa-2048" in r.stderr, r.stderr
    assert not (tmp_path / "certs").exists()  # refused before anything was written
