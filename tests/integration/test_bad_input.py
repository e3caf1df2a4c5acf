"""Every input issue 10 found ending in a traceback or in silent wrong behaviour,
fed as a user would: one line on stderr that names what and why, a non-zero exit
(2: the input; 1: the check asked for failed), never a traceback."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from mtlsdemo.addresses import free_port
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from support.processes import Proc, mtlsdemo, wait_healthy

pytestmark = pytest.mark.integration


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None, shell: str | None = None):
    e = dict(os.environ, **(env or {}))
    e["PATH"] = f"{Path(sys.executable).parent}:{e['PATH']}"
    argv = ["bash", "-c", shell] if shell else mtlsdemo(*args)
    return subprocess.run(argv, cwd=cwd, env=e, capture_output=True, text=True, timeout=60)


def assert_one_line(r: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if "error" in line.lower()]
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert len(errors) == 1, r.stderr
    for w in words:
        assert w in errors[0], (w, errors[0])


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad-input")
    bootstrap(BootstrapRequest(out=root / "certs", services=("gateway", "ledger", "cli")))
    corrupt = root / "corrupt"
    shutil.copytree(root / "certs" / "gateway", corrupt)
    (corrupt / "tls.crt").write_text("junk\n")
    mismatched = root / "mismatched"
    shutil.copytree(root / "certs" / "gateway", mismatched)
    shutil.copy(root / "certs" / "ledger" / "tls.key", mismatched / "tls.key")
    loose = root / "loose"
    shutil.copytree(root / "certs" / "gateway", loose)
    (loose / "tls.key").chmod(0o644)
    return root


@pytest.mark.parametrize(
    ("args", "env", "code", "words"),
    [
        (["handshake", "--suites", "FOO"], {}, 2, ["--suites", "unknown suite 'FOO'"]),
        (
            ["certs", "bootstrap", "--out", "sw", "--status-window", "30d"],
            {},
            2,
            ["--status-window 30d", "longer than 7 days"],
        ),
        (["handshake", "--connect", "127.0.0.1:{closed}"], {}, 2, ["cannot connect"]),
        # outside the clone: no throwaway CA that the user's mesh would then refuse
        (
            ["handshake", "--trace", "--connect", "127.0.0.1:{closed}", "--certs-dir", "nowhere"],
            {},
            2,
            ["no identity at nowhere/gateway", "--certs-dir"],
        ),
        (["handshake", "--connect", "nohost.invalid:1"], {}, 2, ["cannot connect"]),
        (["agent", "--svid-ttl", "5s"], {}, 2, ["--svid-ttl: 5s is shorter", "10s or more"]),
        (["agent", "--svid-ttl", "soon"], {}, 2, ["--svid-ttl: 'soon' is not a duration"]),
        (["agent", "--certs-dir", "nowhere", "--admin-listen", "off"], {}, 2, ["no CA to issue"]),
        (
            [
                "sidecar",
                "--spiffe-endpoint-socket",
                "127.0.0.1:1",
                "--admin-listen",
                "off",
                "--route",
                "127.0.0.1:{closed}=127.0.0.1:1@spiffe://mtls-demo.local/ns/default/sa/ledger",
            ],
            {},
            2,
            ["--spiffe-endpoint-socket", "not a Unix socket path"],
        ),
        (
            ["run", "--workload-api", "--gateway-transport", "mtd"],
            {},
            2,
            ["--workload-api", "use the default transport"],
        ),
        (["handshake", "--client-dir", "missing"], {}, 2, ["missing", "cannot read"]),
        (["handshake", "--client-dir", "corrupt"], {}, 2, ["corrupt/tls.crt", "not a valid PEM"]),
        (["handshake", "--client-dir", "mismatched"], {}, 2, ["does not match"]),
        (["handshake", "--client-dir", "loose"], {}, 2, ["readable by every user", "chmod 600"]),
        (["client", "deposit", "alice", "99999999999999999999999"], {}, 2, ["more than"]),
        (["client", "deposit", "alice", "inf"], {}, 2, ["not an amount"]),
        (["loadgen", "--duration", "1"], {"MTLSDEMO_RPS": "abc"}, 2, ["MTLSDEMO_RPS", "--rps"]),
        # before `make run`, or at a wrong port: as `client` says it (it was a gRPC traceback)
        (
            [
                "loadgen",
                "--duration",
                "1",
                "--identity-dir",
                "certs/cli",
                "--gateway-addr",
                "127.0.0.1:{closed}",
            ],
            {},
            1,
            [
                "loadgen: its accounts could not be opened",
                "cannot reach the gateway",
                "Connection refused",
            ],
        ),
        (
            ["loadgen", "--duration", "1", "--identity-dir", "missing"],
            {},
            2,
            ["missing", "cannot read"],
        ),
        (["certs", "inspect", "certs/gateway/tls.crt", "--ca", "other/ca/ca.crt"], {}, 1, []),
        (["console", "--listen", "nope"], {}, 2, ["--listen", "not HOST:PORT"]),
        (["console", "--sidecar-admin", "ftp://x"], {}, 2, ["--sidecar-admin", "only http"]),
        (["console"], {"MTLSDEMO_METRICS": "ftp://a"}, 2, ["MTLSDEMO_METRICS", "--metrics"]),
        (
            ["console", "--listen", "0.0.0.0:{closed}", "--allow-break"],
            {},
            2,
            ["--allow-break", "loopback only"],
        ),
    ],
)
def test_bad_input_is_one_line(home: Path, args, env, code, words) -> None:
    if "other/ca/ca.crt" in args and not (home / "other").exists():
        bootstrap(BootstrapRequest(out=home / "other", services=("gateway",)))
    args = [a.replace("{closed}", str(free_port())) for a in args]
    r = cli(home, *args, env=env)
    if code == 1 and args[0] != "loadgen":  # a check that failed: the report on stdout, exit 1
        assert r.returncode == 1 and "FAILED: unknown_ca" in r.stdout, r.stdout + r.stderr
        assert "Traceback" not in r.stderr
        return
    assert_one_line(r, code, *words)


def test_output_into_head_is_a_quiet_end(home: Path) -> None:
    r = cli(home, shell="mtlsdemo handshake --certs-dir certs | head -1; echo rc=${PIPESTATUS[0]}")
    assert r.stdout.startswith("MTD/1 handshake trace") and "rc=0" in r.stdout, r.stdout
    assert r.stderr == "", r.stderr


def test_sign_out_naming_a_directory_writes_inside_it(home: Path) -> None:
    work = home / "sign"
    work.mkdir()
    assert cli(work, "certs", "csr", "--service", "cli").returncode == 0
    r = cli(
        work, "certs", "sign", "tls.csr", "--ca-dir", "../certs/ca", env={"MTLSDEMO_OUT": str(work)}
    )
    assert r.returncode == 0, r.stderr
    assert (work / "tls.crt").exists() and (work / "tls.ocsp").exists()


def test_servers_refuse_a_port_already_taken(home: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli(
            home, "serve", "ledger", "--listen", f"127.0.0.1:{port}", "--db", str(tmp_path / "a.db")
        )
        assert_one_line(r, 2, f"127.0.0.1:{port}", "in use")
        r = cli(
            home,
            "sidecar",
            "--identity-dir",
            "certs/ledger",
            "--inbound-listen",
            f"127.0.0.1:{port}",
            "--inbound-target",
            "127.0.0.1:1",
            "--admin-listen",
            "off",
        )
        assert_one_line(r, 2, "--inbound-listen", "in use")
        r = cli(home, "console", "--listen", f"127.0.0.1:{port}")
        assert_one_line(r, 2, "--listen", "in use")
        assert "console on" not in r.stdout  # said only once the port is bound


def test_a_second_ledger_on_the_same_port_is_refused_not_sharing_it(
    home: Path, tmp_path: Path
) -> None:
    """gRPC's SO_REUSEPORT would let both bind and split the traffic between two
    databases; ours is off, so the second one refuses."""
    port = free_port()
    first = Proc(
        "ledger-1",
        mtlsdemo(
            "serve",
            "ledger",
            "--listen",
            f"127.0.0.1:{port}",
            "--identity-dir",
            str(home / "certs" / "ledger"),
            "--db",
            str(tmp_path / "1.db"),
        ),
        tmp_path / "1.log",
    ).start()
    try:
        wait_healthy(f"127.0.0.1:{port}", home / "certs" / "cli", "ledger", first)
        r = cli(
            home, "serve", "ledger", "--listen", f"127.0.0.1:{port}", "--db", str(tmp_path / "2.db")
        )
        assert_one_line(r, 2, f"127.0.0.1:{port}", "in use")
    finally:
        first.stop()


def test_no_grpc_core_log_lines_by_default(home: Path) -> None:
    bootstrap(BootstrapRequest(out=home / "evil", services=("cli",)))
    r = cli(
        home,
        "client",
        "--identity-dir",
        "evil/cli",
        "--gateway-addr",
        f"127.0.0.1:{free_port()}",
        "balance",
        "alice",
    )
    assert r.returncode != 0
    assert ".cc:" not in r.stderr, r.stderr  # no `I1127 ... ssl_transport_security.cc` lines


def test_loose_key_mode_is_refused_by_the_bootstrap_too(tmp_path: Path) -> None:
    bootstrap(BootstrapRequest(out=tmp_path, services=("cli",)))
    assert cli(tmp_path, "certs", "csr", "--service", "cli", "--out-dir", "req").returncode == 0
    (tmp_path / "ca" / "ca.key").chmod(0o644)
    before = (tmp_path / "cli" / "tls.crt").read_bytes()
    for args in (
        ["certs", "bootstrap", "--out", ".", "--service", "cli", "--force"],
        ["certs", "sign", "req/tls.csr", "--ca-dir", "ca"],
    ):
        r = cli(tmp_path, *args)
        assert_one_line(r, 2, "ca/ca.key", "readable by every user", "chmod 600")
    assert (tmp_path / "cli" / "tls.crt").read_bytes() == before  # nothing issued
    assert (
        stat.S_IMODE((tmp_path / "ca" / "ca.key").stat().st_mode) == 0o644
    )  # not "fixed" silently


def test_loadgen_ends_at_sigterm_as_at_ctrl_c(home: Path) -> None:
    """A container's PID 1 ignores an unhandled SIGTERM: the compose loadgen took
    `docker stop`'s whole 10 s. It ends at once now, quietly, as Ctrl-C ends it."""
    import signal

    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers TLS
    port = silent.getsockname()[1]
    e = dict(os.environ, PYTHONUNBUFFERED="1")
    argv = mtlsdemo("loadgen", "--duration", "60", "--identity-dir", "certs/cli",
                    "--gateway-addr", f"127.0.0.1:{port}")  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=home, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        silent.settimeout(30)
        conn, _ = silent.accept()  # the loadgen is calling: its handler is installed
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=5)
        assert proc.returncode == 130, (proc.returncode, err)
        assert "Traceback" not in err, err
        conn.close()
    finally:
        proc.kill()
        proc.wait()
        silent.close()
