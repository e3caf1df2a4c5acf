"""The real `openssl` CLI agrees with the bootstrap: it accepts every leaf for both
TLS purposes, and its own CSRs (the seed's genrsa/req steps) are signed by our CA."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from mtlsdemo.cli import main
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.files import load_cert
from mtlsdemo.pki.keys import KEY_TYPES
from mtlsdemo.trust import svid_identity
from support.tools import require_binary


def openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [require_binary("openssl"), *args], capture_output=True, text=True, check=False
    )


# ML-DSA leaves are left out: the system OpenSSL (3.0) knows no ML-DSA (3.5 does);
# cryptography's verifier checks them (tests/unit/test_post_quantum.py)
CLASSIC_KEY_TYPES = tuple(k for k in KEY_TYPES if not k.startswith("ml-dsa"))


@pytest.mark.parametrize("key_type", CLASSIC_KEY_TYPES)
def test_openssl_verify_accepts_every_leaf(tmp_path: Path, key_type: str) -> None:
    bootstrap(
        BootstrapRequest(out=tmp_path, services=("gateway", "ledger", "cli"), key_type=key_type)
    )
    for service in ("gateway", "ledger", "cli"):
        for purpose in ("sslserver", "sslclient"):
            r = openssl(
                "verify",
                "-CAfile",
                str(tmp_path / "ca" / "ca.crt"),
                "-purpose",
                purpose,
                str(tmp_path / service / "tls.crt"),
            )
            assert r.returncode == 0 and r.stdout.strip().endswith(": OK"), (purpose, r.stderr)


def test_openssl_rejects_leaf_under_other_ca(tmp_path: Path, other_pki_dir: Path) -> None:
    bootstrap(BootstrapRequest(out=tmp_path, services=("gateway",)))
    r = openssl(
        "verify",
        "-CAfile",
        str(other_pki_dir / "ca" / "ca.crt"),
        str(tmp_path / "gateway" / "tls.crt"),
    )
    assert r.returncode != 0


def test_openssl_made_csr_is_signed_and_verifies(tmp_path: Path, capsys) -> None:
    bootstrap(BootstrapRequest(out=tmp_path, services=("gateway",)))
    key, csr = tmp_path / "seed.key", tmp_path / "seed.csr"
    assert openssl("genrsa", "-out", str(key), "2048").returncode == 0
    r = openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", "/CN=ledger")
    assert r.returncode == 0, r.stderr
    crt = tmp_path / "seed.crt"
    assert (
        main(["certs", "sign", str(csr), "--ca-dir", str(tmp_path / "ca"), "--out", str(crt)]) == 0
    )
    assert str(svid_identity(load_cert(crt))) == "spiffe://mtls-demo.local/ns/default/sa/ledger"
    for purpose in ("sslserver", "sslclient"):
        r = openssl(
            "verify", "-CAfile", str(tmp_path / "ca" / "ca.crt"), "-purpose", purpose, str(crt)
        )
        assert r.returncode == 0, r.stderr
    # The signed certificate carries the openssl key: they match.
    mod_key = openssl("rsa", "-in", str(key), "-noout", "-modulus").stdout
    mod_crt = openssl("x509", "-in", str(crt), "-noout", "-modulus").stdout
    assert mod_key == mod_crt


def test_sign_refuses_csr_with_broken_signature(tmp_path: Path, capsys) -> None:
    bootstrap(BootstrapRequest(out=tmp_path, services=("gateway",)))
    assert main(["certs", "csr", "--service", "ledger", "--out-dir", str(tmp_path / "req")]) == 0
    csr = tmp_path / "req" / "tls.csr"
    raw = subprocess.run(
        [require_binary("openssl"), "req", "-in", str(csr), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    tampered = bytearray(raw)
    tampered[-5] ^= 0x01  # inside the signature
    bad = tmp_path / "bad.csr"
    bad.write_bytes(bytes(tampered))
    capsys.readouterr()
    code = main(
        [
            "certs",
            "sign",
            str(bad),
            "--ca-dir",
            str(tmp_path / "ca"),
            "--out",
            str(tmp_path / "bad.crt"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "proof of possession" in err and str(bad) in err
    assert not (tmp_path / "bad.crt").exists()
