"""Shared fixtures: certificate directories, free ports, tier requirements.

A tier that needs a missing tool skips with the reason, unless the tool is named
in MTLSDEMO_REQUIRE (comma-separated, e.g. "docker,prometheus"): then it fails.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings
from mtlsdemo.localports import free_port
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.ca import CertificateAuthority, load_ca
from mtlsdemo.pki.files import cert_pem, write_atomic
from mtlsdemo.pki.identity import ServiceIdentity
from mtlsdemo.pki.issue import issue_leaf
from mtlsdemo.pki.keys import generate_key, private_key_pem
from mtlsdemo.pki.revocation import build_status
from mtlsdemo.waiting import wait_until

pytest_plugins = ["dockerkit"]  # the containers tier's fixtures (docker, image)

# Property tests are part of the gate, so they are deterministic by default: the
# same examples every run (derived from each test's name), no example database
# carried between runs. MTLSDEMO_HYPOTHESIS=explore searches at random instead
# (with MTLSDEMO_FUZZ_EXAMPLES=20000, say) to hunt for new counterexamples.
settings.register_profile("gate", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("MTLSDEMO_HYPOTHESIS", "gate"))

REQUIRED = {t.strip() for t in os.environ.get("MTLSDEMO_REQUIRE", "").split(",") if t.strip()}


def require_tool(tool: str, available: bool, why: str) -> None:
    """Skip (or fail, when CI demands the tool) a test whose tool is missing."""
    if available:
        return
    if tool in REQUIRED:
        pytest.fail(f"MTLSDEMO_REQUIRE names {tool!r} but it is unavailable: {why}")
    pytest.skip(f"{tool} unavailable: {why}")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    require_tool(name, path is not None, f"`{name}` is not on PATH")
    return str(path)


def wait_for(
    cond: Callable[[], object],
    timeout: float = 10.0,
    what: str = "condition",
    ignore: tuple[type[BaseException], ...] = (),
    check: Callable[[], None] | None = None,
    describe: Callable[[], object] | None = None,
    interval: float = 0.05,
) -> object:
    """Wait on the condition itself (never a fixed sleep); the timeout names it."""
    return wait_until(
        cond,
        timeout=timeout,
        what=what,
        ignore=ignore,
        check=check,
        describe=describe,
        interval=interval,
    )


RUN_PORTS = (
    "ledger",
    "gateway",
    "ledger_metrics",
    "gateway_metrics",
    "ledger_app",
    "route",
    "gateway_admin",
    "ledger_admin",
)


def run_command(
    root: Path, *extra: str, data_dir: Path | None = None
) -> tuple[list[str], dict[str, int]]:
    """`mtlsdemo run` with every port its own free one (never the fixed defaults,
    which an earlier test's processes or sockets may still hold) and the ports."""
    ports = {name: free_port() for name in RUN_PORTS}
    argv = [
        sys.executable,
        "-m",
        "mtlsdemo",
        "run",
        "--certs-dir",
        str(root / "certs"),
        "--data-dir",
        str(data_dir or root / "var"),
    ]
    for name, port in ports.items():
        argv += [f"--{name.replace('_', '-')}-port", str(port)]
    return argv + list(extra), ports


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CA with gateway, ledger and cli identities, shared by a test session."""
    out = tmp_path_factory.mktemp("pki")
    bootstrap(BootstrapRequest(out=out, services=("gateway", "ledger", "cli")))
    return out


@pytest.fixture(scope="session")
def other_pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, unrelated CA issuing the same names: must never be trusted."""
    out = tmp_path_factory.mktemp("other-pki")
    bootstrap(BootstrapRequest(out=out, services=("gateway", "ledger", "cli")))
    return out


def make_identity_dir(
    out: Path,
    ca: CertificateAuthority,
    service: str,
    *,
    at: dt.datetime | None = None,
    days: float = 30,
    key_type: str = "ecdsa-p256",
) -> Path:
    """An identity directory with a leaf issued as if ``at`` were now (past: expired),
    and its stapled status."""
    key = generate_key(key_type)
    cert = issue_leaf(ca, key.public_key(), ServiceIdentity(service), at or now(), days)
    write_atomic(out / "tls.key", private_key_pem(key), 0o600)
    write_atomic(out / "tls.crt", cert_pem(cert))
    write_atomic(out / "ca.crt", cert_pem(ca.cert))
    # the CA's good status for it, signed now, as the bootstrap writes it
    write_atomic(out / "tls.ocsp", build_status(ca, cert, [], now()))
    return out


def ca_of(pki: Path) -> CertificateAuthority:
    return load_ca(pki / "ca" / "ca.crt", pki / "ca" / "ca.key")


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    total, found = 0.0, False
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
                found = True
    if not found:
        raise KeyError(f"no sample {name}{labels}")
    return total


def forge_record_after_handshake(port: int, identity: Path) -> None:
    """Complete a real MTD/1 handshake with a sidecar, then send a record not
    sealed with the session key: the sidecar must end the session (decrypt_error)."""
    import contextlib
    import os

    from mtlsdemo import system
    from mtlsdemo.handshake import ProtocolError
    from mtlsdemo.tracecmd import identity_config

    cfg = identity_config(identity)
    conn = system.connection("client", cfg)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        conn.start()
        s.sendall(conn.data_to_send())
        while not conn.handshake_done:
            conn.receive_data(s.recv(65536))
            s.sendall(conn.data_to_send())
        s.sendall(bytes((23, 1, 0, 0, 20)) + os.urandom(20))
        with contextlib.suppress(ProtocolError):
            conn.receive_data(s.recv(100))  # the sidecar's decrypt_error alert
