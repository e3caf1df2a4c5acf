"""The integration tier's fixtures (each was copied between modules before)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from support.apps import EchoServer
from support.native import System


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    """A fresh CA with gateway, ledger and cli identities, for one test."""
    out = tmp_path / "certs"
    bootstrap(BootstrapRequest(out=out, services=("gateway", "ledger", "cli")))
    return out


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    """A TCP echo app for the sidecars to front."""
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    """Ledger and gateway running over native gRPC mTLS."""
    s = System(tmp_path)
    s.start_ledger()
    s.start_gateway()
    yield s
    s.stop()
