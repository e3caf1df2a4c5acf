"""`mtlsdemo handshake --trace` in memory: the ladder, the JSON twin, and a
failure told from both sides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mtlsdemo.cli import main
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    bootstrap(BootstrapRequest(out=tmp_path, services=("gateway", "ledger")))
    return tmp_path


def test_ladder_shows_the_four_steps_and_records(certs: Path, capsys) -> None:
    assert main(["handshake", "--trace", "--certs-dir", str(certs)]) == 0
    out = capsys.readouterr().out
    # the four steps as four contiguous blocks, in order, each message in its own
    lines = out.splitlines()
    heads = [i for i, line in enumerate(lines) if line.startswith(" step ")]
    assert [lines[i].split("—")[0].strip() for i in heads[:4]] == [
        "step 1",
        "step 2",
        "step 3",
        "step 4",
    ]
    block = {n: "\n".join(lines[heads[n - 1] : heads[n]]) for n in (1, 2, 3)}
    assert "ClientHello" in block[1] and "ServerHello" in block[1]
    assert "Certificate " in block[2] and "CertificateVerify" in block[2]
    assert "ServerKeyShare" in block[3] and "ClientKeyExchange" in block[3]
    assert "key schedule" in block[3] and "identical on both sides" in block[3]
    assert "ECDSA_SECP256R1_SHA256" in block[2] and "0x403" not in out  # names, not hex
    for text in (
        "ClientHello",
        "ServerKeyShare",
        "ClientKeyExchange",
        "chain signature verified",
        "forward secrecy",
        "peer decrypts and authenticates: GET /balance/alice",
    ):
        assert text in out, text


def test_json_has_every_message_both_results_and_records(certs: Path, capsys) -> None:
    assert main(["handshake", "--certs-dir", str(certs), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    sent = [m["name"] for m in doc["messages"] if m["direction"] == "send"]
    assert sent == [
        "CLIENT_HELLO",
        "SERVER_HELLO",
        "CERTIFICATE",
        "SERVER_KEY_SHARE",
        "CERTIFICATE_REQUEST",
        "CERTIFICATE_VERIFY",
        "CERTIFICATE",
        "CLIENT_KEY_EXCHANGE",
        "CERTIFICATE_VERIFY",
        "FINISHED",
        "FINISHED",
    ]
    assert {r["role"] for r in doc["results"]} == {"client", "server"}
    assert all(
        set(r["phases"]) == {"hello", "certificate_verify", "key_exchange", "finished"}
        for r in doc["results"]
    )
    assert len(doc["records"]) == 3 and doc["error"] is None
    rec = doc["records"][0]
    assert rec["plaintext"].encode().hex() not in rec["ciphertext"]


def test_failure_is_named_on_both_sides_and_exits_1(certs: Path, capsys) -> None:
    assert main(["handshake", "--certs-dir", str(certs), "--days-ahead", "40", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    errors = {e["role"]: (e["reason"], e["origin"]) for e in doc["errors"]}
    assert errors == {
        "client": ("certificate_expired", "local"),
        "server": ("certificate_expired", "remote_unverified"),
    }
    assert doc["records"] == []


def test_rsa_key_transport_trace(tmp_path: Path, capsys) -> None:
    bootstrap(BootstrapRequest(out=tmp_path, services=("gateway", "ledger"), key_type="rsa-2048"))
    assert (
        main(["handshake", "--certs-dir", str(tmp_path), "--suites", "RSA-OAEP-AES-128-GCM"]) == 0
    )
    out = capsys.readouterr().out
    assert "RSA-OAEP" in out and "no forward secrecy" in out and "ServerKeyShare" not in out
    assert "decryption ok" in out


def test_show_secrets_is_explicit_and_a_failure_says_what_to_do(certs: Path, capsys) -> None:
    assert main(["handshake", "--certs-dir", str(certs)]) == 0
    assert "SECRET (--show-secrets)" not in capsys.readouterr().out
    assert main(["handshake", "--certs-dir", str(certs), "--show-secrets"]) == 0
    assert capsys.readouterr().out.count("SECRET (--show-secrets)") == 4
    assert main(["handshake", "--certs-dir", str(certs), "--days-ahead", "40", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    refusing = [e for e in doc["errors"] if e["origin"] == "local"]
    assert refusing[0]["reason"] == "certificate_expired"
    assert "renew it" in refusing[0]["what_to_do"]
