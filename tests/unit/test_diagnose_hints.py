"""Hints that lead to the fix: a TLS caller at `mtlsdemo run`'s ledger sidecar is told it
is the ledger's sidecar and where the gateway is (it was told `--transport mtd`, which
then failed with identity_mismatch)."""

from __future__ import annotations

import socket
import threading

import pytest
from mtlsdemo.addresses import free_port
from mtlsdemo.rpc import diagnose


def mtd_answering_port() -> tuple[int, socket.socket]:
    """A listener that answers any bytes as an MTD/1 sidecar does: a plaintext alert."""
    srv = socket.create_server(("127.0.0.1", free_port()))

    def serve() -> None:
        for _ in range(2):
            conn, _ = srv.accept()
            with conn:
                conn.recv(64)
                conn.sendall(bytes((21, 1, 0, 0, 2, 2, 50)))  # alert, MTD/1, decode_error

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1], srv


def test_the_ledgers_sidecar_port_is_named_with_the_gateways(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, srv = mtd_answering_port()
    with srv:
        monkeypatch.setitem(diagnose.DEFAULT_PORTS, "ledger", port)
        said = diagnose._not_tls("127.0.0.1", port, 3.0)
        assert said == (
            f"127.0.0.1:{port} is `mtlsdemo run`'s ledger sidecar (MTD/1), not the gateway: "
            f"the gateway's public port is 127.0.0.1:{diagnose.DEFAULT_PORTS['gateway']} (--gateway-addr)"
        )
        monkeypatch.setitem(diagnose.DEFAULT_PORTS, "ledger", port + 1)  # another MTD/1 port
        assert "call it with --transport mtd" in diagnose._not_tls("127.0.0.1", port, 3.0)
