"""The in-process caller's plaintext hop (``--transport mtd``) is a Unix socket in
a 0700 directory: the audit's uid ``nobody`` called the ledger as the cli
identity through its loopback port without reading the key."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from mtlsdemo.gateway.caller import InProcessSidecar

GATEWAY = "spiffe://mtls-demo.local/ns/default/sa/gateway"


def _connect_as(uid: int, path: Path) -> int:
    """The exit code of a child that connects to ``path`` as ``uid``: 0 connected,
    13 refused by permissions, 1 anything else."""
    pid = os.fork()
    if pid == 0:
        try:
            if uid != os.geteuid():
                os.setgid(uid)
                os.setuid(uid)
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(path))
            os._exit(0)
        except PermissionError:
            os._exit(13)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_the_callers_hop_is_a_private_unix_socket(pki_dir: Path) -> None:
    tunnel = InProcessSidecar(pki_dir / "cli", ("127.0.0.1", 9), GATEWAY)
    try:
        assert tunnel.target == f"unix:{tunnel.socket}"
        assert stat.S_IMODE(tunnel.directory.stat().st_mode) == 0o700
        assert not any(k.startswith("route") for k in tunnel.sidecar.ports), tunnel.sidecar.ports
        assert _connect_as(os.geteuid(), tunnel.socket) == 0  # this user: yes
        if os.geteuid() != 0:
            pytest.skip("acting as another uid needs root")
        assert _connect_as(65534, tunnel.socket) == 13  # another user: no
    finally:
        tunnel.close()
    assert not tunnel.directory.exists()  # nothing left behind


def test_the_in_process_caller_checks_the_published_crl(tmp_path: Path) -> None:
    """Audited: an impostor with the revoked gateway key and its last good staple was
    accepted by ``client --transport mtd``: the in-process caller loaded no CRL."""
    from mtlsdemo.gateway.caller import mtd_channel
    from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap

    certs = tmp_path / "certs"
    bootstrap(BootstrapRequest(out=certs, services=("gateway", "cli")))
    channel = mtd_channel("127.0.0.1:9", certs / "cli", "gateway")
    try:
        crl = channel.tunnel.sidecar.crl
        assert crl is not None and crl.path == certs / "ca" / "crl.pem"
        assert crl.last_error is None and crl.lists.crls  # loaded and verified
    finally:
        channel.close()
