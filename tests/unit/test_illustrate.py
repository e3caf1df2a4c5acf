"""`mtlsdemo illustrate`: the same seed writes the same page; every record is cut into
runs that cover its bytes exactly (no gap, no overlap), as the encoder joined them; the
"recompute it yourself" commands print the plaintext the page shows."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mtlsdemo.explain.illustrate import IllustrateConfig, handshake, write


def page(tmp: Path, seed: int = 1, suite: str = "ECDHE-X25519-AES-256-GCM") -> str:
    return write(IllustrateConfig(seed=seed, suite=suite, out=tmp)).read_text()


def test_the_same_seed_writes_the_same_page_and_another_seed_another(tmp_path: Path) -> None:
    a, b = page(tmp_path / "a"), page(tmp_path / "b")
    assert a == b
    assert page(tmp_path / "c", seed=2) != a


def test_the_runs_cover_every_byte_of_every_record_exactly(tmp_path: Path) -> None:
    text = page(tmp_path, suite="ECDHE-X25519-CHACHA20-POLY1305")
    records = json.loads(
        re.search(r'<script type="application/json" id="runs">(.*?)</script>', text).group(1)
    )
    wire, _c, _s = handshake(IllustrateConfig(suite="ECDHE-X25519-CHACHA20-POLY1305"))
    assert sum(r["size"] for r in records) == sum(len(d) for _, d in wire)
    names = set()
    for r in records:
        end = 0
        for name, offset, size in sorted(r["runs"], key=lambda x: x[1]):
            assert offset == end, (name, offset, end)  # no gap, no overlap
            end = offset + size
            names.add(name)
        assert end == r["size"]
    # the mutual part: both certificates and both signatures are on the page
    assert text.count('data-name="certificate"') == 2
    assert text.count('data-name="certificate_verify.signature"') == 2
    assert {"random", "x25519_public_key", "finished.verify_data", "tag"} <= names


def run(command: str) -> str:
    done = subprocess.run(
        ["bash", "-c", html.unescape(command)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_recompute_it_yourself_prints_the_shown_plaintext(tmp_path: Path) -> None:
    text = page(tmp_path)
    commands = re.findall(r'<pre class="recompute open"[^>]*>(.*?)</pre>', text, re.S)
    assert [run(c) for c in commands] == ["GET /balance/alice", "alice: 12.50"]


def test_each_key_schedule_value_and_proof_is_recomputed_from_the_page(
    tmp_path: Path,
) -> None:
    text = page(tmp_path)
    derived = re.findall(
        r'<pre class="recompute derive" data-value="(\w+)">(.*?)</pre>', text, re.S
    )
    # the X25519 shared secret, master, both traffic secrets, the server's
    # CertificateVerify, the client's Finished
    assert len(derived) == 6
    assert derived[4][0] == "valid"
    assert "X25519PrivateKey.from_private_bytes" in derived[0][1]
    for value, command in derived:
        assert f'<code class="value">{value}</code>' in text  # the value the page shows
        assert run(command) == value


def test_an_rsa_suite_is_one_line(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mtlsdemo", "illustrate", "--suite", "RSA-OAEP-AES-256-GCM", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: --suite RSA-OAEP-AES-256-GCM: the page is drawn for the ECDHE-X25519 and "
        "X25519MLKEM768 suites (RSA key transport needs RSA identities, and OAEP draws its "
        "own randomness)"
    ]


def test_an_ml_dsa_page_verifies_its_post_quantum_signature_from_the_page(tmp_path: Path) -> None:
    """ML-DSA-65 identities (their signatures are hedged: the page says it does not
    replay): the server's CertificateVerify checks with ML-DSA from the page's bytes,
    and every other value recomputes as on the ECDSA page."""
    text = write(IllustrateConfig(seed=1, out=tmp_path, key_type="ml-dsa-65")).read_text()
    assert "ml-dsa-65 identities" in text and "ML-DSA signatures are hedged" in text
    derived = re.findall(
        r'<pre class="recompute derive" data-value="(\w+)">(.*?)</pre>', text, re.S
    )
    (cv,) = [c for v, c in derived if v == "valid"]
    assert "ec.ECDSA" not in cv
    for value, command in derived:
        assert run(command) == value


@pytest.mark.parametrize(
    "suite", ["X25519MLKEM768-AES-256-GCM", "X25519MLKEM768-CHACHA20-POLY1305"]
)
def test_a_hybrid_page_recomputes_ml_kem_then_x25519_and_says_it_does_not_replay(
    tmp_path: Path, suite: str
) -> None:
    """ML-KEM's encapsulation draws its own randomness: the page says it is not byte
    for byte reproducible, and every command still prints the value it shows — ML-KEM's
    shared secret decapsulated with the server's key made from its seed, X25519's, the
    key schedule over both, the proofs, and the first record each way."""
    text = page(tmp_path, suite=suite)
    assert "Not byte for byte reproducible" in text
    derived = re.findall(
        r'<pre class="recompute derive" data-value="(\w+)">(.*?)</pre>', text, re.S
    )
    assert len(derived) == 7
    assert "MLKEM768PrivateKey.from_seed_bytes" in derived[0][1]
    assert "X25519PrivateKey.from_private_bytes" in derived[1][1]
    for value, command in derived:
        assert run(command) == value
    opened = re.findall(r'<pre class="recompute open"[^>]*>(.*?)</pre>', text, re.S)
    assert [run(c) for c in opened] == ["GET /balance/alice", "alice: 12.50"]


EXPECTED = {  # break -> (reason, the side that refuses, the field marked)
    "foreign-ca": ("unknown_ca", "client", "certificate"),
    "expired": ("certificate_expired", "client", "certificate"),
    "wrong-identity": ("identity_mismatch", "server", "certificate"),
    "wrong-server-name": ("identity_mismatch", "client", "certificate"),
    "no-common-suite": ("no_common_suite", "server", "suite"),
    "tamper": ("decrypt_error", "server", "tag"),
}


def test_every_break_is_covered() -> None:
    from mtlsdemo.explain.illustrate import BREAKS

    assert set(BREAKS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_broken_page_marks_the_failed_field_by_its_reason(tmp_path: Path, name: str) -> None:
    reason, refuser, field = EXPECTED[name]
    text = write(IllustrateConfig(out=tmp_path / "a", breaks=name)).read_text()
    assert f'class="verdict" data-reason="{reason}" data-refuser="{refuser}"' in text
    marked = re.findall(r'class="run failed" data-failed="(\w+)" data-name="([\w.]+)"', text)
    assert marked == [(reason, field)]  # exactly one field, by the refusal's name
    again = write(IllustrateConfig(out=tmp_path / "b", breaks=name)).read_text()
    assert again == text  # reproducible too
