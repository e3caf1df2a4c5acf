"""`mtlsdemo handshake --trace` in memory: the ladder, the JSON twin, and a
failure told from both sides."""

from __future__ import annotations

import json
import re
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


def test_the_trace_says_in_memory_folds_hex_and_keeps_to_100_columns(certs: Path, capsys) -> None:
    """Issue 27: in-memory mode said nothing of it, ciphertexts ran to 300 columns,
    terms such as fp or Expand-Label were never explained, and a successful
    handshake's close_notify sat under the heading of a failure."""
    assert main(["handshake", "--trace", "--certs-dir", str(certs)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("MTD/1 handshake trace, in memory (both sides in this process")
    assert max(len(line) for line in out.splitlines()) <= 100
    first_fp = re.search(r"fp [0-9a-f]{16}", out).start()
    assert out.index("fp = a fingerprint") < first_fp  # explained before its first use
    assert out.index("Expand-Label derives") < out.index("= Expand-Label(")
    assert "the failure, told to the other side" not in out
    assert "real TLS 1.3 encrypts it" in out  # certificates: what TLS 1.3 does instead
    records = [line for line in out.splitlines() if "B on the wire:" in line]
    assert records and all(line.endswith("…") for line in records)  # 8 bytes, then …
    assert "peer decrypts and authenticates: alice: 112.50" in out  # the request's answer
    assert main(["handshake", "--trace", "--hex", "--certs-dir", str(certs)]) == 0
    whole = capsys.readouterr().out
    assert max(len(line) for line in whole.splitlines()) <= 100
    assert not any(line.endswith("…") for line in whole.splitlines() if "B on the wire:" in line)


def test_h2_frames_are_named_not_dumped() -> None:
    from mtlsdemo.explain.trace import h2_frames

    settings = bytes.fromhex("000006040000000000") + bytes(6)
    ack = bytes.fromhex("000000040100000000")
    update = bytes.fromhex("000004080000000000") + bytes(4)
    assert (
        h2_frames(settings + update + ack) == "SETTINGS 6 B, WINDOW_UPDATE 4 B, SETTINGS (ack) 0 B"
    )
    assert h2_frames(b"\x00\x00") == "2 B more"
