"""Post-quantum key exchange (issue 26): the hybrid X25519 + ML-KEM-768 suites,
through the handshake's own ML-KEM code paths (Wycheproof), end to end, against
peers without them, against a downgrade, and at every length a peer can get wrong."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from mtlsdemo.handshake import DEFAULT_SUITES, ProtocolError, Reason, kx
from mtlsdemo.handshake import messages as m
from mtlsdemo.handshake.suites import CLASSIC_SUITES, HYBRID_SUITES, KeyExchange
from support.hskit import assert_rejected, config, handshake, join_messages, split_messages

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "wycheproof"
KEY_TYPES = ("ecdsa-p256", "ed25519", "rsa-2048")


def _vectors(name: str) -> list:
    data = json.loads((VECTORS / name).read_text())
    return [pytest.param(t, id=str(t["tcId"])) for g in data["testGroups"] for t in g["tests"]]


@pytest.mark.parametrize("t", _vectors("mlkem_768_test.json"))
def test_wycheproof_mlkem768_keygen_and_decapsulation(t: dict) -> None:
    """The server's path: a key pair from 64 bytes of the caller's randomness, then
    decapsulation of the client's ciphertext."""
    seed = bytes.fromhex(t["seed"])
    try:
        priv, ek = kx.mlkem768_keypair(lambda n: seed)
        shared = kx.mlkem768_decapsulate(priv, bytes.fromhex(t["c"]))
    except (ProtocolError, ValueError):
        assert t["result"] == "invalid", t.get("comment")
        return
    assert t["result"] == "valid", t.get("comment")
    assert shared.hex() == t["K"]
    if "ek" in t:
        assert ek.hex() == t["ek"]


@pytest.mark.parametrize("t", _vectors("mlkem_768_encaps_test.json"))
def test_wycheproof_mlkem768_encapsulation_key_checks(t: dict) -> None:
    """The client's path: every encapsulation key FIPS 203 refuses (wrong length,
    coefficients not reduced modulo q) is `illegal_parameter`; every valid one gives a
    32-byte secret and a 1,088-byte ciphertext. (The vectors' fixed `m` cannot be fed
    in: cryptography has no encapsulation from given randomness.)"""
    try:
        shared, ct = kx.mlkem768_encapsulate(bytes.fromhex(t["ek"]))
    except ProtocolError as e:
        assert t["result"] == "invalid", t.get("comment")
        assert e.reason is Reason.ILLEGAL_PARAMETER
        return
    assert t["result"] == "valid", t.get("comment")
    assert (len(shared), len(ct)) == (32, kx.MLKEM768_CT_LEN)


def test_the_hybrid_secret_is_mlkem_then_x25519() -> None:
    assert kx.hybrid_secret(b"K" * 32, b"X" * 32) == b"K" * 32 + b"X" * 32


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("suite", HYBRID_SUITES, ids=str)
def test_hybrid_handshakes_complete_and_carry_data(suite, key_type: str) -> None:
    c, s, out = handshake(
        config("gateway", key_type, suites=(suite,)),
        config("ledger", key_type, suites=(suite,)),
        client_data=b"quantum-safe",
    )
    assert out.client_error is None and out.server_error is None
    assert out.delivered("server") == b"quantum-safe"
    assert c.result.suite == s.result.suite == suite.name
    assert c.result.key_exchange == "X25519MLKEM768"
    sizes = {name: size for _d, name, size, *_ in c.ladder}
    # the wire sizes docs/protocol.md states (with the 4-byte handshake header)
    assert sizes["SERVER_KEY_SHARE"] == 4 + 2 + 2 + kx.MLKEM768_EK_LEN + kx.X25519_LEN
    assert sizes["CLIENT_KEY_EXCHANGE"] == 4 + 2 + kx.MLKEM768_CT_LEN + kx.X25519_LEN


def test_the_default_offer_negotiates_the_hybrid() -> None:
    assert DEFAULT_SUITES[0].kx is KeyExchange.X25519_MLKEM768
    c, _s, out = handshake(config("gateway"), config("ledger"))
    assert out.client_error is None and c.result.key_exchange == "X25519MLKEM768"


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_peer_without_the_hybrid_falls_back_to_x25519(side: str) -> None:
    """Never fail a handshake that would have worked: a classic-only peer on either
    side meets the default offer in X25519."""
    classic = {"suites": CLASSIC_SUITES}
    ccfg = config("gateway", **(classic if side == "client" else {}))
    scfg = config("ledger", **(classic if side == "server" else {}))
    c, s, out = handshake(ccfg, scfg)
    assert out.client_error is None and out.server_error is None
    assert c.result.key_exchange == s.result.key_exchange == "ECDHE-X25519"


def test_codes_a_server_does_not_know_are_skipped_not_refused() -> None:
    """What an MTD/1.1 server from before the hybrid does with its codes: a ClientHello
    listing unknown codes first still negotiates the first known one."""

    def unknown_first(direction: str, data: bytes) -> bytes:
        if direction != "c2s" or data[5] != m.HandshakeType.CLIENT_HELLO:
            return data
        parts = split_messages(data)
        raw = parts[0][1]
        hello = m.decode(raw[0], raw[4:])
        hello = m.ClientHello(hello.versions, hello.random, (0x0999, *hello.suites), hello.resume)
        return join_messages([(22, m.encode(hello))])

    c, s, out = handshake(config("gateway"), config("ledger"), tamper=unknown_first)
    # the server chose from the altered list: the choice itself worked (no
    # no_common_suite), and the alteration is caught at the server's signature, which
    # covers the ClientHello as the server received it (MTD/1.2)
    assert s.suite is not None
    assert_rejected(out, "client", Reason.BAD_SIGNATURE)


def test_stripping_the_hybrid_from_the_client_hello_is_caught_at_the_signature() -> None:
    """A downgrade: an attacker removes the hybrid codes so the server picks X25519
    (which a future quantum computer could open). The server's CertificateVerify
    signs the ClientHello as it saw it (MTD/1.2; the Finished MACs cover it too): the
    client refuses, before any key is derived, and nothing is delivered."""

    def strip(direction: str, data: bytes) -> bytes:
        if direction != "c2s" or data[5] != m.HandshakeType.CLIENT_HELLO:
            return data
        raw = split_messages(data)[0][1]
        hello = m.decode(raw[0], raw[4:])
        classic = tuple(x for x in hello.suites if x not in {s.code for s in HYBRID_SUITES})
        return join_messages(
            [(22, m.encode(m.ClientHello(hello.versions, hello.random, classic, hello.resume)))]
        )

    _c, s, out = handshake(config("gateway"), config("ledger"), tamper=strip, client_data=b"x")
    assert s.suite is not None and s.suite.kx is KeyExchange.ECDHE_X25519  # it was fooled ...
    assert_rejected(out, "client", Reason.BAD_SIGNATURE)  # ... and found out


def _rewrite(msg_type: int, fn):
    def tamper(_direction: str, data: bytes) -> bytes:
        parts = split_messages(data)
        out = []
        for ctype, raw in parts:
            if ctype == 22 and raw[0] == msg_type:
                body = fn(raw[4:])
                raw = bytes((msg_type,)) + len(body).to_bytes(3, "big") + body
            out.append((ctype, raw))
        return join_messages(out)

    return tamper


def test_a_short_hybrid_key_share_is_illegal_parameter() -> None:
    def cut(body: bytes) -> bytes:  # u16 group, vec16 share: drop the share's last byte
        n = int.from_bytes(body[2:4], "big") - 1
        return body[:2] + n.to_bytes(2, "big") + body[4 : 4 + n]

    _c, _s, out = handshake(config("gateway"), config("ledger"), tamper=_rewrite(12, cut))
    assert out.client_error.reason is Reason.ILLEGAL_PARAMETER
    assert "hybrid key share of 1215 bytes" in out.client_error.detail


def test_a_short_hybrid_client_key_exchange_is_illegal_parameter() -> None:
    def cut(body: bytes) -> bytes:
        n = int.from_bytes(body[:2], "big") - 1
        return n.to_bytes(2, "big") + body[2 : 2 + n]

    _c, _s, out = handshake(config("gateway"), config("ledger"), tamper=_rewrite(16, cut))
    assert out.server_error.reason is Reason.ILLEGAL_PARAMETER


def test_a_tampered_mlkem_ciphertext_ends_in_bad_finished() -> None:
    """ML-KEM's implicit rejection: the server derives another secret, says nothing
    about it, and the Finished fails (no decapsulation oracle)."""

    def flip(body: bytes) -> bytes:
        return body[:10] + bytes((body[10] ^ 1,)) + body[11:]

    _c, _s, out = handshake(config("gateway"), config("ledger"), tamper=_rewrite(16, flip))
    assert out.server_error is not None and out.server_error.reason in (
        Reason.BAD_FINISHED,
        Reason.BAD_SIGNATURE,  # the flipped byte is also under the client's signature
    )


# ---------------------------------------------------------------- ML-DSA identities
def _mldsa_cases(name: str) -> list:
    data = json.loads((VECTORS / name).read_text())
    return [
        pytest.param(g["publicKey"], t, id=str(t["tcId"]))
        for g in data["testGroups"]
        for t in g["tests"]
        if not t.get("ctx")  # a CertificateVerify signs with the empty context only
    ]


@pytest.mark.parametrize(
    ("name", "scheme"),
    [("mldsa_44_verify_test.json", "MLDSA44"), ("mldsa_65_verify_test.json", "MLDSA65")],
)
def test_wycheproof_mldsa_through_certificate_verify(name: str, scheme: str) -> None:
    """Every vector through the handshake's own verify (signatures.verify): a valid
    signature passes, every invalid one is `bad_signature` (or a key that cannot be
    loaded, which no certificate could carry)."""
    from cryptography.hazmat.primitives.asymmetric import mldsa
    from mtlsdemo.handshake.signatures import Scheme, verify

    cls = mldsa.MLDSA44PublicKey if scheme == "MLDSA44" else mldsa.MLDSA65PublicKey
    checked = 0
    for public_hex, t in (p.values for p in _mldsa_cases(name)):
        try:
            key = cls.from_public_bytes(bytes.fromhex(public_hex))
        except ValueError:
            assert t["result"] == "invalid"
            continue
        try:
            verify(key, Scheme[scheme], bytes.fromhex(t["sig"]), bytes.fromhex(t["msg"]))
        except ProtocolError as e:
            assert t["result"] == "invalid", (t["tcId"], t.get("comment"))
            assert e.reason is Reason.BAD_SIGNATURE
        else:
            assert t["result"] == "valid", (t["tcId"], t.get("comment"))
        checked += 1
    assert checked > 50


@pytest.fixture(scope="module")
def mldsa_pki(tmp_path_factory) -> Path:
    from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap

    out = tmp_path_factory.mktemp("mldsa")
    bootstrap(
        BootstrapRequest(
            out=out,
            services=("gateway", "ledger"),
            key_type="ml-dsa-65",
            ca_key_type="ml-dsa-65",
        )
    )
    return out


def test_an_mldsa_mesh_identity_completes_a_hybrid_handshake(mldsa_pki: Path) -> None:
    """ML-DSA-65 CA and leaves: the one verifier (cryptography's x509.verification)
    takes the chain, the ML-DSA-signed OCSP staple is checked, CertificateVerify is
    ML-DSA, and the key exchange is the hybrid: quantum-safe identities and keys."""
    from mtlsdemo.endpoint.identity import identity_config
    from mtlsdemo.handshake.signatures import Scheme

    ccfg = identity_config(mldsa_pki / "gateway", HYBRID_SUITES)
    scfg = identity_config(mldsa_pki / "ledger", HYBRID_SUITES)
    assert ccfg.credentials.scheme is Scheme.MLDSA65
    now = dt.datetime.now(dt.UTC)  # the bootstrap's clock, not the unit tier's fixed NOW
    c, s, out = handshake(ccfg, scfg, client_data=b"pq", client_now=now, server_now=now)
    assert out.client_error is None and out.server_error is None, out
    assert out.delivered("server") == b"pq"
    assert any("stapled status: good" in x for x in c.result.checks)
    assert any("CertificateVerify (MLDSA65)" in x for x in s.result.checks)
    # the same fact, typed, for the edges and the console (nobody parses the sentence)
    assert (c.report().peer_signature, s.report().peer_signature) == ("MLDSA65", "MLDSA65")
    sizes = {(d, name): size for d, name, size, *_ in c.ladder}
    # certificates of ~5.5 KB plus a ~3.5 KB staple: inside the 32 KiB message limit
    assert 8_000 < sizes[("recv", "CERTIFICATE")] < 12_000
    assert sizes[("recv", "CERTIFICATE_VERIFY")] > 3_300  # an ML-DSA-65 signature is 3,309 B


def test_an_mldsa_leaf_under_an_ecdsa_ca_still_verifies(tmp_path: Path) -> None:
    from mtlsdemo.endpoint.identity import identity_config
    from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap

    bootstrap(BootstrapRequest(out=tmp_path, services=("gateway", "ledger"), key_type="ml-dsa-44"))
    now = dt.datetime.now(dt.UTC)
    c, _s, out = handshake(
        identity_config(tmp_path / "gateway"),
        identity_config(tmp_path / "ledger"),
        client_now=now,
        server_now=now,
    )
    assert out.client_error is None and out.server_error is None


def test_bootstrap_gives_mldsa_leaves_an_mldsa_ca_unless_told(tmp_path: Path) -> None:
    from mtlsdemo.cli import main
    from mtlsdemo.pki.files import load_cert
    from mtlsdemo.pki.keys import key_type_of

    assert main(["certs", "bootstrap", "--key-type", "ml-dsa-65", "--out", str(tmp_path)]) == 0
    assert key_type_of(load_cert(tmp_path / "ca" / "ca.crt").public_key()) == "ml-dsa-65"


def test_the_documented_post_quantum_command_runs_as_written(tmp_path: Path) -> None:
    """docs/how-to.md's command (issue 26's done-when), exactly, in a scratch directory."""
    import shlex
    import subprocess
    import sys

    howto = (Path(__file__).resolve().parents[2] / "docs" / "how-to.md").read_text()
    line = next(
        x
        for x in howto.splitlines()
        if x.startswith("mtlsdemo certs bootstrap --key-type ml-dsa-65")
    )
    first, second = (shlex.split(part) for part in line.split(" && "))
    for argv in (first, second):
        r = subprocess.run(
            [sys.executable, "-m", "mtlsdemo", *argv[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    (client, _server) = sorted(doc["results"], key=lambda x: x["role"])
    assert client["key_exchange"] == "X25519MLKEM768"
    assert any("CertificateVerify (MLDSA65)" in c for c in client["checks"])
