"""Shared fixtures: certificate directories, free ports, tier requirements.

A tier that needs a missing tool skips with the reason, unless the tool is named
in MTLSDEMO_REQUIRE (comma-separated, e.g. "docker,prometheus"): then it fails.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings
from mtlsdemo.addresses import (
    free_port,  # noqa: F401  (the tests import it from here)
    mesh_env,
    run_port_flags,
    run_ports,
)
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.ca import CertificateAuthority, load_ca
from mtlsdemo.pki.files import cert_pem
from mtlsdemo.pki.identity import ServiceIdentity
from mtlsdemo.pki.issue import write_identity_dir
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


def run_command(
    root: Path, *extra: str, data_dir: Path | None = None
) -> tuple[list[str], dict[str, int]]:
    """`mtlsdemo run` with every port its own free one (never the fixed defaults,
    which an earlier test's processes or sockets may still hold) and the ports."""
    ports = run_ports()
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
    return argv + run_port_flags(ports) + list(extra), ports


@contextlib.contextmanager
def running_mesh(root: Path, *extra: str):
    """`mtlsdemo run` on free ports, up (its "== running" line seen); yields the
    ports and the environment with which `break`/`tour` find it; stops it after."""
    argv, ports = run_command(root, "--traffic-seconds", "0", *extra)
    log_path = root / "run.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(
                lambda: "== running" in log_path.read_text(),
                timeout=60,
                what="mtlsdemo run to be up",
                check=lambda: proc.poll() is None or pytest.fail(log_path.read_text()),
            )
            yield ports, {**os.environ, **mesh_env(ports)}
        finally:
            proc.terminate()
            proc.wait(30)


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
    # the CA's good status for it, signed now, as the bootstrap writes it
    return write_identity_dir(
        out,
        ca,
        ServiceIdentity(service),
        bundle_pem=cert_pem(ca.cert),
        at=at or now(),
        days=days,
        key_type=key_type,
        status_at=now(),
    )


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

    from mtlsdemo.endpoint import dial
    from mtlsdemo.endpoint.identity import identity_config
    from mtlsdemo.handshake import ProtocolError

    attempt = dial.handshake("127.0.0.1", port, identity_config(identity), timeout=10)
    assert attempt.error is None, attempt.error
    with attempt.sock as s:
        s.sendall(bytes((23, 1, 0, 0, 20)) + os.urandom(20))
        with contextlib.suppress(ProtocolError):
            attempt.conn.receive_data(s.recv(100))  # the sidecar's decrypt_error alert
