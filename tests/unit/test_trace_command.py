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
    for text in (
        "1 hello",
        "2 certs",
        "3 key exch",
        "4 finished",
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
        "server": ("certificate_expired", "remote"),
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
