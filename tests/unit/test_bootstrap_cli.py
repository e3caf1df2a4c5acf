"""The bootstrap as a user runs it: idempotency, renewal, bad input (exit 2, nothing written)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from mtlsdemo.cli import main
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.files import load_cert


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_second_run_changes_nothing_and_says_so(tmp_path: Path, capsys) -> None:
    out = tmp_path / "certs"
    code, text, _ = run_cli(capsys, "certs", "bootstrap", "--out", str(out))
    assert code == 0 and "ca         created" in text
    before = snapshot(out)
    code, text, _ = run_cli(capsys, "certs", "bootstrap", "--out", str(out))
    assert code == 0
    assert "nothing to do" in text and "unchanged" in text
    assert snapshot(out) == before


def test_existing_ca_is_reused_and_new_service_added(tmp_path: Path, capsys) -> None:
    out = tmp_path / "certs"
    run_cli(capsys, "certs", "bootstrap", "--out", str(out), "--service", "gateway")
    ca_before = (out / "ca" / "ca.crt").read_bytes()
    gw_before = (out / "gateway" / "tls.crt").read_bytes()
    code, text, _ = run_cli(
        capsys,
        "certs",
        "bootstrap",
        "--out",
        str(out),
        "--service",
        "gateway",
        "--service",
        "ledger",
    )
    assert code == 0
    assert (out / "ca" / "ca.crt").read_bytes() == ca_before
    assert (out / "gateway" / "tls.crt").read_bytes() == gw_before
    assert "ledger     issued (none yet" in text


def test_leaf_inside_renew_window_is_reissued(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    t0 = dt.datetime.now(dt.UTC)
    bootstrap(BootstrapRequest(out=out, services=("gateway",)), now=t0)
    first = load_cert(out / "gateway" / "tls.crt")
    # 19 days later: 11 days left, outside the 10-day window -> kept (its stapled
    # status, an hour's worth, is re-signed)
    changes = bootstrap(
        BootstrapRequest(out=out, services=("gateway",)), now=t0 + dt.timedelta(days=19)
    )
    assert [c.action for c in changes] == ["reused", "updated"]
    assert changes[1].reason == "status re-signed"
    assert load_cert(out / "gateway" / "tls.crt").serial_number == first.serial_number
    # 21 days later: 9 days left -> re-issued with a new key
    changes = bootstrap(
        BootstrapRequest(out=out, services=("gateway",)), now=t0 + dt.timedelta(days=21)
    )
    assert changes[1].action == "issued" and "within --renew-before" in changes[1].reason
    second = load_cert(out / "gateway" / "tls.crt")
    assert second.serial_number != first.serial_number
    assert second.public_key() != first.public_key()


def test_force_and_key_type_change_reissue(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    bootstrap(BootstrapRequest(out=out, services=("gateway",)))
    changes = bootstrap(BootstrapRequest(out=out, services=("gateway",), key_type="rsa-2048"))
    assert (
        changes[1].action == "issued"
        and "the old one is ecdsa-p256, rsa-2048 asked" in changes[1].reason
    )
    changes = bootstrap(
        BootstrapRequest(out=out, services=("gateway",), key_type="rsa-2048", force=True)
    )
    assert changes[1].reason.startswith("forced")


def test_namespace_change_reissues_for_new_sans(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    bootstrap(BootstrapRequest(out=out, services=("gateway",)))
    changes = bootstrap(BootstrapRequest(out=out, services=("gateway",), namespace="prod"))
    assert "SANs differ" in changes[1].reason


def test_replaced_ca_reissues_every_leaf(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    bootstrap(BootstrapRequest(out=out, services=("gateway",)))
    for f in (out / "ca").iterdir():
        f.unlink()
    changes = bootstrap(BootstrapRequest(out=out, services=("gateway",)))
    assert changes[0].action == "created"
    assert "the old one is not from the current CA" in changes[1].reason
    assert (out / "gateway" / "ca.crt").read_bytes() == (out / "ca" / "ca.crt").read_bytes()


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--key-type", "dsa-1024"], "--key-type"),
        (["--service", "Bad_Name"], "--service"),
        (["--service=-gateway"], "--service"),
        (["--namespace", "a" * 64], "--namespace"),
        (["--days", "0"], "--days"),
        (["--renew-before", "soon"], "--renew-before"),
        (["--ca-key-type", "ed25519"], "--ca-key-type"),
    ],
)
def test_bad_flag_exits_2_and_writes_nothing(tmp_path: Path, capsys, argv, names) -> None:
    out = tmp_path / "certs"
    code, _, err = run_cli(capsys, "certs", "bootstrap", "--out", str(out), *argv)
    assert code == 2
    assert err.startswith("error: ") and names in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "damage",
    ["corrupt-ca-cert", "corrupt-ca-key", "mismatched-ca-key", "missing-ca-key", "corrupt-leaf"],
)
def test_bad_existing_file_exits_2_names_it_and_changes_nothing(
    tmp_path: Path, capsys, damage: str
) -> None:
    out = tmp_path / "certs"
    other = tmp_path / "other"
    bootstrap(BootstrapRequest(out=out, services=("gateway", "ledger")))
    bootstrap(BootstrapRequest(out=other, services=("gateway",)))
    target = {
        "corrupt-ca-cert": out / "ca" / "ca.crt",
        "corrupt-ca-key": out / "ca" / "ca.key",
        "mismatched-ca-key": out / "ca" / "ca.key",
        "missing-ca-key": out / "ca" / "ca.key",
        "corrupt-leaf": out / "ledger" / "tls.crt",
    }[damage]
    if damage == "mismatched-ca-key":
        target.write_bytes((other / "ca" / "ca.key").read_bytes())
    elif damage == "missing-ca-key":
        target.unlink()
    else:
        target.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    before = snapshot(out)
    code, _, err = run_cli(
        capsys,
        "certs",
        "bootstrap",
        "--out",
        str(out),
        "--service",
        "gateway",
        "--service",
        "ledger",
        "--service",
        "cli",
    )
    assert code == 2
    assert str(target) in err and err.count("\n") == 1
    assert snapshot(out) == before  # not even the new cli identity was written
    assert "PRIVATE KEY" not in err


def test_inspect_reports_chain_and_expiry(tmp_path: Path, capsys, other_pki_dir: Path) -> None:
    out = tmp_path / "certs"
    bootstrap(BootstrapRequest(out=out, services=("gateway",)))
    code, text, _ = run_cli(
        capsys,
        "certs",
        "inspect",
        str(out / "gateway" / "tls.crt"),
        "--ca",
        str(out / "ca" / "ca.crt"),
    )
    assert code == 0
    assert "spiffe://mtls-demo.local/ns/default/sa/gateway" in text
    assert "chain (client auth): OK (spiffe://mtls-demo.local/ns/default/sa/gateway)" in text
    assert "chain (server auth): OK (spiffe://mtls-demo.local/ns/default/sa/gateway)" in text
    assert "valid, expires in 29d" in text
    code, text, _ = run_cli(
        capsys,
        "certs",
        "inspect",
        str(out / "gateway" / "tls.crt"),
        "--ca",
        str(other_pki_dir / "ca" / "ca.crt"),
    )
    assert code == 1 and "chain (client auth): FAILED: unknown_ca" in text  # the check failed


def test_inspect_corrupt_file_is_one_line_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.crt"
    bad.write_text("hello")
    code, _, err = run_cli(capsys, "certs", "inspect", str(bad))
    assert code == 2 and str(bad) in err


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "ledger", "--listen", "127.0.0.1:0", "--plaintext"],
        ["serve", "gateway", "--listen", "127.0.0.1:0", "--plaintext", "--ledger-plaintext"],
        ["sidecar", "--inbound-listen", "127.0.0.1:0", "--inbound-target", "127.0.0.1:1"],
        ["handshake"],
    ],
    ids=["ledger", "gateway", "sidecar", "trace"],
)
def test_one_identity_policy_refuses_a_bad_pattern_everywhere_at_startup(
    argv: list[str], capsys, tmp_path: Path
) -> None:
    """`--allow-id` is parsed by the one policy on every path: a partial-segment
    wildcard is one clear line and exit 2, before anything listens."""
    code, _, err = run_cli(
        capsys,
        *argv,
        "--allow-id",
        "spiffe://mtls-demo.local/ns/default/sa/gate*",
        *(["--certs-dir", str(tmp_path)] if argv == ["handshake"] else []),
    )
    assert code == 2
    assert err.strip().splitlines() == [
        "error: --allow-id 'spiffe://mtls-demo.local/ns/default/sa/gate*': '*' must be a whole "
        "path segment (in 'gate*'); it matches exactly one segment"
    ]


def _exit_code_and_stderr(capsys, argv: list[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse reports its own usage errors this way
        code = int(e.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,env,says",
    [
        (["handshake", "--suites", "FOO"], {}, "argument --suites: unknown suite 'FOO'"),
        (["handshake", "--server-suites", "BAR"], {}, "argument --server-suites: unknown suite"),
        (["handshake", "--connect", "nohost"], {}, "argument --connect: 'nohost' is not HOST:PORT"),
        (["sidecar", "--suites", "FOO"], {}, "argument --suites: unknown suite 'FOO'"),
        (["bench", "--n", "0"], {}, "argument --n: must be at least 4, got 0"),
        (["loadgen", "--rps", "-1"], {}, "argument --rps: must be at least 0.001"),
        (["run", "--traffic-seconds", "-1"], {}, "argument --traffic-seconds: must be at least 0"),
        (["client", "balance", "x"], {"MTLSDEMO_TIMEOUT": "abc"}, "MTLSDEMO_TIMEOUT='abc'"),
        (["handshake"], {"MTLSDEMO_CONNECT_TIMEOUT": "abc"}, "MTLSDEMO_CONNECT_TIMEOUT='abc'"),
        (["handshake"], {"MTLSDEMO_SUITES": "FOO"}, "the environment twin of --suites"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_never_a_traceback(
    argv: list[str], env: dict[str, str], says: str, capsys, monkeypatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, err = _exit_code_and_stderr(capsys, argv)
    assert code == 2
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]  # argparse puts its usage above the one line
    assert says in last and last.startswith(("error:", "mtlsdemo "))
