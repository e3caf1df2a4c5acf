"""Two sidecars as real processes: a client-side one with an outbound route, a
server-side one with an inbound listener in front of an app port."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

from mtlsdemo.addresses import free_port
from mtlsdemo.waiting import wait_until

from support.identities import GATEWAY_ID, LEDGER_ID
from support.metrics import metric_value
from support.processes import Proc, mtlsdemo


def http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_admin(port: int, proc: Proc, timeout: float = 20.0, path: str = "/readyz") -> None:
    wait_until(
        lambda: http_get(port, path)[0] == 200,
        timeout=timeout,
        ignore=(OSError,),
        what=f"{proc.name} {path}",
        check=proc.assert_alive,
    )


class SidecarProc:
    def __init__(
        self, root: Path, name: str, identity_dir: Path, *args: str, ready: str = "/readyz"
    ) -> None:
        self.admin = free_port()
        self.proc = Proc(
            name,
            mtlsdemo(
                "sidecar",
                "--name",
                name,
                "--identity-dir",
                str(identity_dir),
                "--admin-listen",
                f"127.0.0.1:{self.admin}",
                "--reload-interval",
                "0.2",
                *args,
            ),
            root / f"{name}.log",
        ).start()
        wait_admin(self.admin, self.proc, path=ready)

    def status(self) -> dict:
        return json.loads(http_get(self.admin, "/status")[1])

    def metrics(self) -> str:
        return http_get(self.admin, "/metrics")[1].decode()

    def stop(self) -> int:
        return self.proc.stop()


class Mesh:
    """client app -> [route_port] client sidecar -> [inbound_port] server sidecar -> app_port"""

    def __init__(
        self,
        root: Path,
        certs: Path,
        app_port: int,
        *,
        client_identity: str = "gateway",
        server_identity: str = "ledger",
        allow: str = GATEWAY_ID,
        expect: str = LEDGER_ID,
        client_dir: Path | None = None,
        server_dir: Path | None = None,
        server_args: tuple[str, ...] = (),
        client_args: tuple[str, ...] = (),
        remote_port: int | None = None,
        client_ready: str = "/readyz",
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.inbound = free_port()
        self.route = free_port()
        self._server_argv = (
            root,
            "server-sidecar",
            server_dir or certs / server_identity,
            "--inbound-listen",
            f"127.0.0.1:{self.inbound}",
            "--inbound-target",
            f"127.0.0.1:{app_port}",
            "--allow-id",
            allow,
            *server_args,
        )
        self.server = SidecarProc(*self._server_argv)
        target = remote_port or self.inbound
        self.client = SidecarProc(
            root,
            "client-sidecar",
            client_dir or certs / client_identity,
            "--route",
            f"127.0.0.1:{self.route}=127.0.0.1:{target}@{expect}",
            *client_args,
            ready=client_ready,
        )

    def restart_server(self) -> None:
        """The server sidecar stopped and started again on the same ports (a new
        process: new ticket keys, empty journal)."""
        self.server.stop()
        self.server = SidecarProc(*self._server_argv)

    def stop(self) -> None:
        self.client.stop()
        self.server.stop()


def roundtrip(port: int, payload: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while chunk := s.recv(65536):
            got += chunk
    return bytes(got)


def handshakes(mesh_side, **labels) -> float:
    try:
        return metric_value(mesh_side.metrics(), "mtls_handshakes_total", **labels)
    except KeyError:
        return 0.0


def forge_record_after_handshake(port: int, identity: Path) -> None:
    """Complete a real MTD/1 handshake with a sidecar, then send a record not
    sealed with the session key: the sidecar must end the session (decrypt_error)."""
    import contextlib
    import os

    from mtlsdemo.endpoint import dial
    from mtlsdemo.endpoint.identity import identity_config
    from mtlsdemo.handshake import ProtocolError

    attempt = dial.handshake("127.0.0.1", port, identity_config(identity), timeout=10)
    assert attempt.error is None, attempt.error
    with attempt.sock as s:
        s.sendall(bytes((23, 1, 0, 0, 20)) + os.urandom(20))
        with contextlib.suppress(ProtocolError):
            attempt.conn.receive_data(s.recv(100))  # the sidecar's decrypt_error alert
