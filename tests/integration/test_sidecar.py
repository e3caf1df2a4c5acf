"""The sidecar as real processes on 127.0.0.1: traffic through two sidecars,
rejections with matching reasons on both sides, tampering, deadlines, hot
reload, shutdown, and every metric."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import pytest
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from support.apps import EchoServer, FlipRelay, GrpcEcho, grpc_echo_stub
from support.identities import GATEWAY_ID, LEDGER_ID, ca_of, make_identity_dir
from support.metrics import metric_value
from support.processes import wait_for
from support.sidecars import (
    Mesh,
    SidecarProc,
    forge_record_after_handshake,
    handshakes,
    http_get,
    roundtrip,
)
from support.tools import require_binary

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------ traffic
def test_grpc_unary_and_streaming_and_large_messages_through_two_sidecars(tmp_path, certs) -> None:
    app = GrpcEcho()
    mesh = Mesh(tmp_path, certs, app.port)
    try:
        channel, echo_call, chunks = grpc_echo_stub(mesh.route)
        assert echo_call(b"hello", timeout=10) == b"hello"
        big = os.urandom(5 * 1024 * 1024)
        assert echo_call(big, timeout=30) == big  # several MiB intact
        got = list(chunks(b"40", timeout=30))
        assert len(got) == 40 and all(c == bytes([i]) * 65536 for i, c in enumerate(got))
        channel.close()
        status = mesh.client.status()
        assert status["edges"][0]["peer"] == LEDGER_ID and status["edges"][0]["ok"] >= 1
        assert mesh.server.status()["edges"][0]["peer"] == GATEWAY_ID
    finally:
        mesh.stop()
        app.stop()


def _socket_states(pid: int) -> dict[int, tuple[int, str]]:
    """inode -> (local port, TCP state) for every TCP socket on the machine (/proc/net/tcp*)."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with (
            contextlib.suppress(FileNotFoundError),
            open(f"/proc/{pid}/net/{table.rsplit('/', 1)[1]}") as f,
        ):
            for line in list(f)[1:]:
                cols = line.split()
                out[int(cols[9])] = (int(cols[1].rsplit(":", 1)[1], 16), cols[3])
    return out


def _open_fds(pid: int, admin_port: int) -> tuple[collections.Counter, int]:
    """(non-socket fds by kind, TCP connections that are not listening and not the admin's).

    Listening sockets and the admin endpoint's own connections (the test polls it)
    are not tunnel state; every other TCP socket left after the traffic is a leak.
    """
    states = _socket_states(pid)
    kinds: collections.Counter = collections.Counter()
    connections = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue  # closed while we looked
        if target.startswith("socket:[") and int(target[8:-1]) in states:
            port, state = states[int(target[8:-1])]
            if state != "0A" and port != admin_port:  # 0A: LISTEN
                connections += 1
        else:  # files, pipes, eventfds, the event loop's own unix socketpair
            kinds[target.split(":", 1)[0] if ":" in target else "file"] += 1
    return kinds, connections


def test_many_concurrent_connections_complete_without_leaks(tmp_path, certs, echo) -> None:
    mesh = Mesh(tmp_path, certs, echo.port)
    try:
        sides = [
            (mesh.client.proc.proc.pid, mesh.client.admin),
            (mesh.server.proc.proc.pid, mesh.server.admin),
        ]

        def settled() -> list:
            fds = [_open_fds(pid, admin) for pid, admin in sides]
            return fds if all(conns == 0 for _, conns in fds) else []

        roundtrip(mesh.route, b"warm")
        baseline = [kinds for kinds, _ in wait_for(settled, what="warm-up connections to close")]
        # three bursts of 100 concurrent connections: a leak would grow with each one
        for burst in range(3):
            payloads = [os.urandom(1000 + i) for i in range(100)]
            with futures.ThreadPoolExecutor(100) as pool:
                results = list(pool.map(lambda p: roundtrip(mesh.route, p, 30), payloads))
            assert results == payloads, f"burst {burst}"
            wait_for(
                lambda: (
                    mesh.client.status()["active_sessions"] == 0
                    and mesh.server.status()["active_sessions"] == 0
                ),
                what="sessions to close",
            )
            assert mesh.client.status()["handshakes_in_progress"] == 0
            after = [
                kinds for kinds, _ in wait_for(settled, what=f"burst {burst}'s sockets to close")
            ]
            assert after == baseline, f"non-socket descriptors changed in burst {burst}"
        assert handshakes(mesh.server, role="server", result="success") == 301
        assert metric_value(mesh.server.metrics(), "mtls_sessions_active", role="server") == 0
    finally:
        mesh.stop()


def test_half_close_passes_through(tmp_path, certs, echo) -> None:
    mesh = Mesh(tmp_path, certs, echo.port)
    try:
        # roundtrip() shuts down its write side first: the echo server only ends
        # after it saw EOF, so getting every byte back then EOF proves half-close.
        data = os.urandom(300_000)
        assert roundtrip(mesh.route, data) == data
        text = mesh.server.metrics()
        with pytest.raises(KeyError):
            metric_value(text, "mtls_record_failures_total", reason="truncated")
    finally:
        mesh.stop()


# ------------------------------------------------------------------ rejections
def _assert_rejected(mesh: Mesh, echo: EchoServer, rejecting: str, reason: str) -> None:
    with socket.create_connection(("127.0.0.1", mesh.route), timeout=10) as s:
        s.sendall(b"must never reach the app")
        with contextlib.suppress(ConnectionResetError):  # aborted is as good as closed
            assert s.recv(100) == b""
    local, remote = (
        (mesh.server, mesh.client) if rejecting == "server" else (mesh.client, mesh.server)
    )
    wait_for(
        lambda: (
            handshakes(local, result="failure", reason=reason, origin="local") == 1
            and handshakes(remote, result="failure", reason=reason, origin="remote_unverified") == 1
        ),
        what=f"{reason} counted on both sides",
    )
    assert echo.connections == 0 and echo.bytes == 0  # the app never saw a byte


def test_server_rejects_client_from_other_ca(tmp_path, certs, other_pki_dir, echo) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in ("tls.crt", "tls.key"):
        shutil.copy(other_pki_dir / "gateway" / f, mixed / f)
    shutil.copy(certs / "ca" / "ca.crt", mixed / "ca.crt")  # trusts us, but we don't trust it
    mesh = Mesh(tmp_path, certs, echo.port, client_dir=mixed)
    try:
        _assert_rejected(mesh, echo, "server", "unknown_ca")
        assert "reason=unknown_ca origin=local" in mesh.server.proc.output()
    finally:
        mesh.stop()


def test_client_rejects_server_from_other_ca(tmp_path, certs, other_pki_dir, echo) -> None:
    mesh = Mesh(tmp_path, certs, echo.port, server_dir=other_pki_dir / "ledger")
    try:
        _assert_rejected(mesh, echo, "client", "unknown_ca")
    finally:
        mesh.stop()


def test_server_rejects_expired_client_certificate(tmp_path, certs, echo) -> None:
    expired = make_identity_dir(
        tmp_path / "expired",
        ca_of(certs),
        "gateway",
        at=dt.datetime.now(dt.UTC) - dt.timedelta(days=40),
        days=30,
    )
    # The client sidecar knows its certificate is expired (/readyz says 503) but
    # still tries, as a misconfigured peer would: the server must say why it refuses.
    mesh = Mesh(tmp_path, certs, echo.port, client_dir=expired, client_ready="/healthz")
    try:
        assert http_get(mesh.client.admin, "/readyz")[0] == 503
        _assert_rejected(mesh, echo, "server", "certificate_expired")
    finally:
        mesh.stop()


def test_server_rejects_identity_not_on_allow_list(tmp_path, certs, echo) -> None:
    mesh = Mesh(tmp_path, certs, echo.port, client_identity="cli")
    try:
        _assert_rejected(mesh, echo, "server", "identity_mismatch")
        deny = metric_value(
            mesh.server.metrics(),
            "mtls_peer_authorizations_total",
            peer="spiffe://mtls-demo.local/ns/default/sa/cli",
            decision="deny",
        )
        assert deny == 1
    finally:
        mesh.stop()


def test_client_rejects_server_with_unexpected_identity(tmp_path, certs, echo) -> None:
    mesh = Mesh(tmp_path, certs, echo.port, server_identity="cli")
    try:
        _assert_rejected(mesh, echo, "client", "identity_mismatch")
    finally:
        mesh.stop()


def test_bit_flip_by_man_in_the_middle_is_decrypt_error(tmp_path, certs, echo) -> None:
    mesh = Mesh(tmp_path, certs, echo.port)
    relay = FlipRelay(mesh.inbound)
    mesh.client.stop()
    mesh.client = SidecarProc(
        tmp_path,
        "client-sidecar2",
        certs / "gateway",
        "--route",
        f"127.0.0.1:{mesh.route}=127.0.0.1:{relay.port}@{LEDGER_ID}",
    )
    try:
        with socket.create_connection(("127.0.0.1", mesh.route), timeout=10) as s:
            s.sendall(b"A" * 100)  # the first application_data record: the relay flips a bit in it
            wait_for(lambda: relay.flipped == 1, what="the relay to flip the first data record")
            try:
                tail = s.recv(
                    1000
                )  # the client sidecar, told by the alert, ends the app's connection
            except OSError:
                tail = b""
        assert relay.flipped == 1
        assert tail == b""
        wait_for(lambda: _record_failures(mesh.server, "decrypt_error") == 1, what="decrypt_error")
        assert echo.bytes == 0  # nothing after (and including) the flipped record was delivered
        assert "session failed" in mesh.server.proc.output()
        assert "reason=decrypt_error origin=local" in mesh.server.proc.output()
        # the client side was told: it counts the remote decrypt_error
        wait_for(lambda: _record_failures(mesh.client, "decrypt_error") == 1, what="remote alert")
    finally:
        relay.close()
        mesh.stop()


def _record_failures(side, reason: str) -> float:
    try:
        return metric_value(side.metrics(), "mtls_record_failures_total", reason=reason)
    except KeyError:
        return 0.0


def test_silent_client_is_cut_at_handshake_deadline(tmp_path, certs, echo) -> None:
    mesh = Mesh(tmp_path, certs, echo.port, server_args=("--handshake-timeout", "0.5"))
    try:
        # The bound is the test's own: the socket would raise TimeoutError after 10 s,
        # twenty deadlines; the sidecar's cut must come first and say why.
        with socket.create_connection(("127.0.0.1", mesh.inbound), timeout=10) as s:
            data = s.recv(100)  # the alert, then EOF
            rest = s.recv(100)
        assert data == bytes((21, 1, 0, 0, 2, 2, 75)) and rest == b""  # fatal handshake_timeout
        # and it was the deadline timer that cut it, as the sidecar itself reports
        wait_for(
            lambda: "no progress in 0.5s" in mesh.server.proc.output(),
            what="the deadline's log line",
        )
        wait_for(
            lambda: handshakes(mesh.server, reason="handshake_timeout", origin="local") == 1,
            what="handshake_timeout counted",
        )
        assert echo.connections == 0
    finally:
        mesh.stop()


# ------------------------------------------------------------------ hot reload
def _k8s_secret_dir(root: Path, source: Path) -> Path:
    """Lay out an identity like a Kubernetes Secret volume: files are symlinks
    through ..data to a timestamped directory that is swapped atomically."""
    root.mkdir(parents=True)
    _swap_secret(root, source)
    for f in ("tls.crt", "tls.key", "ca.crt", "tls.ocsp"):
        (root / f).symlink_to(f"..data/{f}")
    return root


def _swap_secret(root: Path, source: Path) -> None:
    stamp = root / f"..{time.time_ns()}"
    stamp.mkdir()
    for f in ("tls.crt", "tls.key", "ca.crt", "tls.ocsp"):
        shutil.copy(source / f, stamp / f)
    tmp = root / "..data_tmp"
    tmp.symlink_to(stamp.name)
    os.replace(tmp, root / "..data")


def test_symlink_swap_reload_new_handshakes_use_new_cert_live_tunnels_continue(
    tmp_path, certs, echo
) -> None:
    secret = _k8s_secret_dir(tmp_path / "secret", certs / "ledger")
    mesh = Mesh(tmp_path, certs, echo.port, server_dir=secret)
    try:
        before = mesh.server.status()["certificate"]["serial"]
        live = socket.create_connection(("127.0.0.1", mesh.route), timeout=10)
        live.sendall(b"before")
        assert live.recv(100) == b"before"
        renewed = tmp_path / "renewed"
        shutil.copytree(certs, renewed)
        bootstrap(BootstrapRequest(out=renewed, services=("ledger",), force=True))
        _swap_secret(secret, renewed / "ledger")
        wait_for(lambda: mesh.server.status()["certificate"]["serial"] != before, what="reload")
        live.sendall(b"after")
        assert live.recv(100) == b"after"  # the live tunnel kept going
        live.close()
        assert roundtrip(mesh.route, b"new handshake") == b"new handshake"
        recent = mesh.server.status()["recent_handshakes"]
        assert recent[0]["outcome"] == "success"
        assert (
            metric_value(mesh.server.metrics(), "mtls_certificate_reloads_total", result="success")
            == 1
        )
    finally:
        mesh.stop()


def test_broken_or_mismatched_new_files_are_rejected_and_old_kept(tmp_path, certs, echo) -> None:
    ident = tmp_path / "ident"
    shutil.copytree(certs / "ledger", ident)
    mesh = Mesh(tmp_path, certs, echo.port, server_dir=ident)
    try:
        serial = mesh.server.status()["certificate"]["serial"]
        (ident / "tls.crt").write_text(
            "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"
        )
        wait_for(lambda: mesh.server.status()["certificate"]["last_reload_error"], what="rejection")
        assert roundtrip(mesh.route, b"still works") == b"still works"
        shutil.copy(certs / "ledger" / "tls.crt", ident / "tls.crt")
        shutil.copy(certs / "gateway" / "tls.key", ident / "tls.key")  # key of another cert
        wait_for(
            lambda: (
                "does not match" in (mesh.server.status()["certificate"]["last_reload_error"] or "")
            ),
            what="mismatch rejection",
        )
        assert mesh.server.status()["certificate"]["serial"] == serial
        assert roundtrip(mesh.route, b"still works") == b"still works"
        assert (
            metric_value(mesh.server.metrics(), "mtls_certificate_reloads_total", result="failure")
            == 2
        )
        assert "certificate reload rejected" in mesh.server.proc.output()
    finally:
        mesh.stop()


# ------------------------------------------------------------------ shutdown, trace
def test_sigterm_drains_then_closes_with_close_notify(tmp_path, certs, echo) -> None:
    mesh = Mesh(tmp_path, certs, echo.port, server_args=("--drain-timeout", "0.5"))
    try:
        live = socket.create_connection(("127.0.0.1", mesh.route), timeout=10)
        live.sendall(b"x")
        assert live.recv(10) == b"x"
        mesh.server.proc.proc.send_signal(signal.SIGTERM)
        assert mesh.server.proc.proc.wait(10) == 0
        assert live.recv(10) == b""  # a clean EOF: the close_notify came through
        live.close()
        assert "shutting down" in mesh.server.proc.output()
        assert _record_failures(mesh.client, "truncated") == 0
    finally:
        mesh.stop()


def test_handshake_trace_connects_to_a_running_sidecar(tmp_path, certs, echo) -> None:
    mesh = Mesh(tmp_path, certs, echo.port)
    try:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "mtlsdemo",
                "handshake",
                "--trace",
                "--connect",
                f"127.0.0.1:{mesh.inbound}",
                "--client-dir",
                str(certs / "gateway"),
                "--peer-id",
                LEDGER_ID,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        for text in (
            "ClientHello",
            "ServerHello",
            "CertificateVerify",
            "Finished",
            "chain signature verified",
            LEDGER_ID,
            "encrypted records",
        ):
            assert text in r.stdout
        assert echo.bytes > 0  # our HTTP/2 preface reached the app through the tunnel
    finally:
        mesh.stop()


def test_tunnels_after_the_first_resume_and_a_restarted_server_refuses_old_tickets(
    tmp_path, certs, echo
) -> None:
    """Sidecar to sidecar: the first tunnel's handshake is full and brings a ticket,
    the next ones resume; after the server sidecar restarts (new ticket keys) the
    client's ticket is refused with a name, the handshake is full, and the tunnel
    works."""
    mesh = Mesh(tmp_path, certs, echo.port)
    try:
        for i in range(3):
            assert roundtrip(mesh.route, b"tunnel %d" % i) == b"tunnel %d" % i
        wait_for(lambda: handshakes(mesh.client, result="success") == 3, what="three handshakes")
        assert handshakes(mesh.client, result="success", resumed="false") == 1
        assert handshakes(mesh.client, result="success", resumed="true") == 2
        assert handshakes(mesh.server, result="success", resumed="true") == 2
        assert metric_value(mesh.server.metrics(), "mtls_session_tickets_issued_total") == 1
        (edge,) = mesh.client.status()["edges"]  # /status says it too (the console reads it)
        assert (edge["ok"], edge["resumed"]) == (3, 2)
        mesh.restart_server()
        assert roundtrip(mesh.route, b"after restart") == b"after restart"
        wait_for(
            lambda: (
                metric_value(
                    mesh.client.metrics(),
                    "mtls_session_ticket_refusals_total",
                    reason="ticket_unknown_key",
                    by="remote",
                )
                == 1
            ),
            what="the client to count the server's refusal",
        )
    finally:
        mesh.stop()


def test_a_sidecar_without_tickets_neither_issues_nor_resumes(tmp_path, certs, echo) -> None:
    mesh = Mesh(tmp_path, certs, echo.port, server_args=("--no-session-tickets",))
    try:
        for i in range(2):
            assert roundtrip(mesh.route, b"x%d" % i) == b"x%d" % i
        wait_for(lambda: handshakes(mesh.client, result="success") == 2, what="two handshakes")
        assert handshakes(mesh.client, result="success", resumed="false") == 2
        # `handshake --resume` against it: one line, exit 2, the reason and what to do
        r = subprocess.run(
            [sys.executable, "-m", "mtlsdemo", "handshake", "--resume", "--connect",
             f"127.0.0.1:{mesh.inbound}", "--client-dir", str(certs / "gateway"),
             "--peer-id", LEDGER_ID],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "issued no session ticket" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    finally:
        mesh.stop()


# ------------------------------------------------------------------ rotation under load
def test_certificate_rotation_during_steady_traffic_has_zero_failed_calls(tmp_path, certs) -> None:
    app = GrpcEcho()
    mesh = Mesh(
        tmp_path, certs, app.port, server_dir=certs / "ledger", client_dir=certs / "gateway"
    )
    stop = threading.Event()
    errors: list[Exception] = []
    calls = [0]

    def traffic() -> None:
        while not stop.is_set():
            channel, echo_call, _ = grpc_echo_stub(mesh.route)  # new connections: new handshakes
            try:
                for _ in range(5):
                    assert echo_call(b"ping", timeout=10) == b"ping"
                    calls[0] += 1
            except Exception as e:
                errors.append(e)
            finally:
                channel.close()

    threads = [threading.Thread(target=traffic) for _ in range(4)]
    try:
        for t in threads:
            t.start()

        def serial(side) -> str:
            return side.status()["certificate"]["serial"]

        seen = {serial(mesh.server), serial(mesh.client)}
        for _ in range(3):
            at = calls[0]  # each rotation happens with traffic flowing, and is followed by more
            wait_for(lambda at=at: calls[0] >= at + 20 or errors, what="calls before rotating")
            bootstrap(BootstrapRequest(out=certs, services=("gateway", "ledger"), force=True))
            # both sides pick up this rotation before the next one (else two rotations
            # within one reload interval would be seen as one)
            wait_for(
                lambda: serial(mesh.server) not in seen and serial(mesh.client) not in seen,
                what="both sidecars to reload",
            )
            seen.update((serial(mesh.server), serial(mesh.client)))
        at = calls[0]
        wait_for(lambda: calls[0] >= at + 20 or errors, what="calls after the last rotation")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        try:
            assert errors == [] and calls[0] > 50
            for side in (mesh.server, mesh.client):
                assert (
                    metric_value(side.metrics(), "mtls_certificate_reloads_total", result="success")
                    >= 3
                )
            assert handshakes(mesh.server, result="failure") == 0
        finally:
            mesh.stop()
            app.stop()


# ------------------------------------------------------------------ metrics
SIDECAR_METRICS = [
    "mtls_handshakes_total",
    "mtls_handshake_duration_seconds_bucket",
    "mtls_handshake_phase_duration_seconds_bucket",
    "mtls_handshakes_in_progress",
    "mtls_sessions_active",
    "mtls_session_duration_seconds_bucket",
    "mtls_record_bytes_total",
    "mtls_records_total",
    "mtls_record_failures_total",
    "mtls_key_updates_total",
    "mtls_certificate_expiry_timestamp_seconds",
    "mtls_certificate_reloads_total",
    "mtls_peer_authorizations_total",
]


def test_every_metric_is_present_with_values_matching_the_run(tmp_path, certs, echo) -> None:
    mesh = Mesh(tmp_path, certs, echo.port, client_args=("--key-update-records", "2"))
    try:
        payloads = [os.urandom(50_000) for _ in range(3)]  # 4 records each
        for p in payloads:
            assert roundtrip(mesh.route, p) == p
        # one rejection, so failure series exist too
        bad = Mesh(tmp_path / "bad", certs, echo.port, client_identity="cli")
        with contextlib.suppress(OSError):
            roundtrip(bad.route, b"x")
        bad.stop()
        # a malformed ClientHello: a handshake failure with a named reason
        with socket.create_connection(("127.0.0.1", mesh.inbound)) as s:
            s.sendall(bytes.fromhex("16010000050100000100"))
            assert s.recv(10) == bytes((21, 1, 0, 0, 2, 2, 50))  # fatal decode_error back
        # an established session whose next record is forged: a record failure
        forge_record_after_handshake(mesh.inbound, certs / "gateway")
        wait_for(lambda: mesh.client.status()["active_sessions"] == 0, what="sessions closed")
        text_s, text_c = mesh.server.metrics(), mesh.client.metrics()
        present = [n for n in SIDECAR_METRICS if n in text_s + text_c]
        assert present == SIDECAR_METRICS, set(SIDECAR_METRICS) - set(present)
        phases = {
            p: metric_value(
                text_s, "mtls_handshake_phase_duration_seconds_count", role="server", phase=p
            )
            for p in ("hello", "certificate_verify", "key_exchange", "finished")
        }
        assert phases == dict.fromkeys(phases, 4)
        assert (
            metric_value(
                text_s,
                "mtls_handshakes_total",
                role="server",
                result="success",
                suite="X25519MLKEM768-AES-256-GCM",
            )
            == 4
        )
        assert (
            metric_value(
                text_s,
                "mtls_handshakes_total",
                role="server",
                result="failure",
                reason="decode_error",
                origin="local",
            )
            == 1
        )
        assert metric_value(text_c, "mtls_handshake_duration_seconds_count", role="client") == 3
        assert metric_value(text_s, "mtls_record_failures_total", reason="decrypt_error") == 1
        total = sum(len(p) for p in payloads)
        assert (
            metric_value(text_c, "mtls_record_bytes_total", direction="sent", kind="plaintext")
            == total
        )
        assert (
            metric_value(text_s, "mtls_record_bytes_total", direction="received", kind="plaintext")
            == total
        )
        sent_records = metric_value(text_c, "mtls_records_total", direction="sent")
        assert sent_records == 3 * 4  # 50,000 bytes = 4 records of at most 16 KiB, 3 times
        assert (
            metric_value(text_c, "mtls_record_bytes_total", direction="sent", kind="ciphertext")
            == total + 12 * 21
        )  # 5-byte header + 16-byte tag per data record
        assert metric_value(text_c, "mtls_key_updates_total") >= 3
        assert metric_value(text_s, "mtls_key_updates_total") >= 3
        assert metric_value(text_s, "mtls_session_duration_seconds_count") == 4
        assert (
            metric_value(
                text_s, "mtls_peer_authorizations_total", peer=GATEWAY_ID, decision="allow"
            )
            == 4
        )
        assert metric_value(text_s, "mtls_handshakes_in_progress", role="server") == 0
        assert (
            metric_value(
                text_s, "mtls_certificate_expiry_timestamp_seconds", identity=LEDGER_ID, kind="leaf"
            )
            > time.time()
        )
    finally:
        mesh.stop()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_slow_app_backpressure_bounds_what_the_sidecars_buffer(
    tmp_path, certs, loop, monkeypatch
) -> None:
    """An app that stops reading: the sender must block after a bounded amount
    (socket buffers plus each sidecar's write high-water mark), not after the
    sidecars have swallowed everything. On both event loops (uvloop once lost a
    pause made inside connection_made, and buffered without bound)."""
    monkeypatch.setenv("MTLSDEMO_EVENT_LOOP", loop)
    app = socket.socket()
    app.bind(("127.0.0.1", 0))
    app.listen(1)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(app.accept()[0]), daemon=True).start()
    mesh = Mesh(tmp_path, certs, app.getsockname()[1])
    try:
        s = socket.create_connection(("127.0.0.1", mesh.route), timeout=10)
        s.settimeout(2.0)
        chunk = b"\0" * 65536
        sent = 0
        try:
            while sent < 400 * 1024 * 1024:
                sent += s.send(chunk)
        except (TimeoutError, BlockingIOError):
            pass
        # blocked well before 400 MiB: kernel buffers (a few MiB per socket) plus
        # 512 KiB per sidecar write buffer
        assert 1024 * 1024 < sent < 64 * 1024 * 1024, sent
        assert accepted, "the app connection was made"
        # and the bytes are all there once the app reads again
        got = 0
        accepted[0].settimeout(10)
        while got < sent:
            got += len(accepted[0].recv(1 << 20))
        assert got == sent
        s.close()
    finally:
        for c in accepted:
            c.close()
        app.close()
        mesh.stop()


# ------------------------------------------------------------------ limits
def test_a_flood_beyond_the_pending_cap_and_the_wait_is_refused_at_once_and_counted(
    tmp_path, certs, echo
) -> None:
    mesh = Mesh(
        tmp_path,
        certs,
        echo.port,
        server_args=(
            "--max-pending-handshakes",
            "3",
            "--max-waiting-handshakes",
            "0",
            "--handshake-timeout",
            "30",
        ),
    )
    silent = []
    try:
        for _ in range(3):  # three connections that never say hello: the cap is full
            silent.append(socket.create_connection(("127.0.0.1", mesh.inbound), timeout=10))
        wait_for(lambda: mesh.server.status()["handshakes_in_progress"] == 3, what="3 pending")
        refused = []
        for _ in range(20):  # the flood: each one turned away before any handshake work
            with socket.create_connection(("127.0.0.1", mesh.inbound), timeout=10) as s:
                refused.append(s.recv(100) + s.recv(100))
        assert set(refused) == {
            bytes((21, 1, 0, 0, 2, 2, 82))
        }  # fatal alert "overloaded", then EOF
        assert handshakes(mesh.server, reason="overloaded", origin="local") == 20
        # the log says so once per interval, with a count of the rest, not 20 lines
        wait_for(
            lambda: "reason=overloaded" in mesh.server.proc.output(), what="the overloaded line"
        )
        assert mesh.server.proc.output().count("reason=overloaded") == 1
        # the pending ones were not disturbed, and once they go, traffic flows again
        for s in silent:
            s.close()
        wait_for(
            lambda: mesh.server.status()["handshakes_in_progress"] == 0, what="pending to drain"
        )
        assert roundtrip(mesh.route, b"after the flood") == b"after the flood"
    finally:
        for s in silent:
            s.close()
        mesh.stop()


def test_a_burst_beyond_the_pending_cap_waits_its_turn_and_is_served(tmp_path, certs, echo) -> None:
    """Over --max-pending-handshakes a connection waits (no handshake work, no
    refusal) and is served, in order, once a slot frees."""
    mesh = Mesh(
        tmp_path,
        certs,
        echo.port,
        server_args=("--max-pending-handshakes", "2", "--handshake-timeout", "30"),
    )
    silent = []
    try:
        for _ in range(3):  # two take the slots, the third waits
            silent.append(socket.create_connection(("127.0.0.1", mesh.inbound), timeout=10))
        wait_for(
            lambda: (
                mesh.server.status()["handshakes_in_progress"] == 2
                and mesh.server.status()["handshakes_waiting"] == 1
            ),
            what="2 pending, 1 waiting",
        )
        with futures.ThreadPoolExecutor(1) as pool:
            call = pool.submit(roundtrip, mesh.route, b"waited its turn")
            wait_for(
                lambda: mesh.server.status()["handshakes_waiting"] == 2,
                what="the sidecar's tunnel waiting behind the silent one",
            )
            assert not call.done()
            for s in silent:
                s.close()
            assert call.result(timeout=30) == b"waited its turn"
        assert handshakes(mesh.server, reason="overloaded", origin="local") == 0
    finally:
        for s in silent:
            s.close()
        mesh.stop()


def idle_from(address: str, port: int, n: int) -> list[socket.socket]:
    """n connections from another loopback address, each sending one byte and then
    nothing: what the audit held open to fill the waiting room."""
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(address, 0))
        s.sendall(b"\x16")
        out.append(s)
    return out


def crowded_mesh(tmp_path, certs, echo) -> Mesh:
    """A server sidecar small enough to fill: 8 slots, 32 waiting places, 12 per
    source, and a 60 s deadline (attackers that never time out)."""
    return Mesh(
        tmp_path,
        certs,
        echo.port,
        server_args=(
            "--max-pending-handshakes", "8",
            "--max-waiting-handshakes", "32",
            "--max-handshakes-per-source", "12",
            "--handshake-timeout", "60",
        ),
    )  # fmt: skip


def test_one_source_cannot_fill_the_waiting_room(tmp_path, certs, echo) -> None:
    """The audit's F2, scaled: one address holding idle one-byte connections kept
    every slot and the whole waiting room, and legitimate handshakes were refused.
    Now a source holds at most --max-handshakes-per-source and never the last eighth
    of the slots: the rest of its connections are refused, and other sources'
    handshakes complete while it holds them."""
    mesh = crowded_mesh(tmp_path, certs, echo)
    idle: list[socket.socket] = []
    try:
        idle = idle_from("127.0.0.2", mesh.inbound, 60)
        wait_for(
            lambda: handshakes(mesh.server, reason="overloaded", origin="local") == 48,
            what="the source's connections beyond 12 refused",
        )
        st = mesh.server.status()
        assert (st["handshakes_in_progress"], st["handshakes_waiting"]) == (7, 5), st
        for i in range(10):  # legitimate handshakes from 127.0.0.1, one after another
            assert roundtrip(mesh.route, b"legit %d" % i) == b"legit %d" % i
        assert handshakes(mesh.server, result="success") >= 10
    finally:
        for s in idle:
            s.close()
        mesh.stop()


@pytest.mark.parametrize(("sources", "each"), [(6, 12), (64, 1)])
def test_many_sources_cannot_fill_the_slots_and_the_waiting_room(
    tmp_path, certs, echo, sources: int, each: int
) -> None:
    """The audit: six loopback addresses of idle one-byte connections filled every
    slot and the waiting room (14 of 17 legitimate handshakes refused). Now the
    source holding the most gives way: a connection from a source holding fewer
    sheds the oldest connection of the biggest source that has not sent its
    ClientHello for 0.5 s (at once, or within the sidecar's next second). The
    attackers here never time out (60 s): the hardest case for the slots."""
    mesh = crowded_mesh(tmp_path, certs, echo)
    idle: list[socket.socket] = []
    try:
        for _ in range(each):  # interleaved, as several attackers would
            for i in range(sources):
                idle += idle_from(f"127.0.0.{i + 2}", mesh.inbound, 1)
        wait_for(
            lambda: (
                mesh.server.status()["handshakes_in_progress"] == 8
                and mesh.server.status()["handshakes_waiting"] == 32
            ),
            what="every slot and the whole waiting room held by the attackers",
            describe=lambda: mesh.server.status(),
        )
        assert handshakes(mesh.server, reason="overloaded", origin="local") > 0  # the rest
        ok = 0
        for i in range(10):  # legitimate handshakes from 127.0.0.1, one after another
            with contextlib.suppress(OSError):
                ok += roundtrip(mesh.route, b"legit %d" % i) == b"legit %d" % i
        assert ok >= 9, f"{ok} of 10 legitimate calls completed"
        assert mesh.server.status()["handshakes_shed"] >= 9  # one attacker's slot per call
    finally:
        for s in idle:
            s.close()
        mesh.stop()


def test_a_waiting_connection_that_sends_more_than_a_hello_is_refused(
    tmp_path, certs, echo
) -> None:
    """A waiting connection keeps at most 4 KiB (a ClientHello's worth): the audit saw
    each keep its whole first read (~132 kB). More before any answer is no MTD/1 client:
    refused with record_overflow, named and counted."""
    mesh = Mesh(
        tmp_path,
        certs,
        echo.port,
        server_args=("--max-pending-handshakes", "1", "--handshake-timeout", "30"),
    )
    try:
        with socket.create_connection(("127.0.0.1", mesh.inbound), timeout=10):  # the slot
            wait_for(lambda: mesh.server.status()["handshakes_in_progress"] == 1, what="1 pending")
            with socket.create_connection(("127.0.0.1", mesh.inbound), timeout=10) as big:
                big.sendall(b"\x16" * 65536)
                answer = big.recv(100)
            assert answer[:1] == bytes((21,))  # an alert record
            assert handshakes(mesh.server, reason="record_overflow", origin="local") == 1
            assert mesh.server.status()["handshakes_waiting"] == 0
    finally:
        mesh.stop()


def test_a_client_sidecar_refused_for_overload_counts_it_as_remote(tmp_path, certs, echo) -> None:
    mesh = Mesh(
        tmp_path,
        certs,
        echo.port,
        server_args=(
            "--max-pending-handshakes",
            "1",
            "--max-waiting-handshakes",
            "0",
            "--handshake-timeout",
            "30",
        ),
    )
    try:
        with socket.create_connection(("127.0.0.1", mesh.inbound), timeout=10):
            wait_for(lambda: mesh.server.status()["handshakes_in_progress"] == 1, what="1 pending")
            assert roundtrip(mesh.route, b"x") == b""  # refused: the app sees EOF, no data
            wait_for(
                lambda: (
                    handshakes(mesh.client, reason="overloaded", origin="remote_unverified") == 1
                ),
                what="the client sidecar to count the server's overloaded alert",
            )
    finally:
        mesh.stop()


def test_listeners_take_the_configured_backlog_and_the_fd_limit_is_raised(
    tmp_path, certs, echo
) -> None:
    """A burst of connects beyond asyncio's default backlog of 100 would wait for
    SYN retries; the sidecar listens with --listen-backlog and raises its own
    open-files limit (both in its /status)."""
    ss = require_binary("ss")
    mesh = Mesh(tmp_path, certs, echo.port, server_args=("--listen-backlog", "1234"))
    try:
        out = subprocess.run([ss, "-ltn"], capture_output=True, text=True, check=True).stdout
        rows = [line.split() for line in out.splitlines() if f":{mesh.inbound} " in line + " "]
        assert rows and rows[0][2] == "1234", out  # Send-Q of a listener: its backlog
        route = [line.split() for line in out.splitlines() if f":{mesh.route} " in line + " "]
        assert route and route[0][2] == "4096", out  # the default
        limits = json.loads(http_get(mesh.server.admin, "/status")[1])["limits"]
        assert limits["listen_backlog"] == 1234
        assert limits["open_files"] > 1024, limits  # raised from the usual soft limit
    finally:
        mesh.stop()


def test_a_sidecar_with_a_crl_refuses_a_revoked_peer_at_its_next_handshake(
    tmp_path, certs, echo
) -> None:
    """The audit's F4: a sidecar believed a revoked peer's last good staple (up to an
    hour) and its tickets kept resuming. With --crl the revocation applies at the
    next handshake, resumed or not, named certificate_revoked, the ticket refused."""
    from mtlsdemo.pki.ca import load_ca
    from mtlsdemo.pki.files import load_cert
    from mtlsdemo.pki.revocation import Revocation, build_crl, key_id

    authority = load_ca(certs / "ca" / "ca.crt", certs / "ca" / "ca.key")
    crl = tmp_path / "crl.pem"
    now = dt.datetime.now(dt.UTC)
    crl.write_bytes(build_crl(authority, [], now))
    mesh = Mesh(tmp_path, certs, echo.port, server_args=("--crl", str(crl)))
    try:
        assert roundtrip(mesh.route, b"before") == b"before"
        assert roundtrip(mesh.route, b"resumed") == b"resumed"  # on the ticket
        gateway = load_cert(certs / "gateway" / "tls.crt")
        entry = Revocation(
            f"{gateway.serial_number:x}", key_id(authority.cert), now.isoformat(),
            "key_compromise", "gateway",
        )  # fmt: skip
        listed = build_crl(
            authority, [entry], now + dt.timedelta(seconds=1), previous=crl.read_bytes()
        )
        tmp = crl.with_suffix(".new")
        tmp.write_bytes(listed)
        os.replace(tmp, crl)  # the staple still says good: only the CRL knows
        assert roundtrip(mesh.route, b"after") == b""
        wait_for(
            lambda: handshakes(mesh.server, reason="certificate_revoked", origin="local") >= 1,
            what="the ledger side to refuse the revoked gateway",
        )
        refusals = mesh.server.metrics()
        assert 'reason="ticket_peer_revoked"' in refusals
    finally:
        mesh.stop()
