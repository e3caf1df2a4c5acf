"""Post-quantum key exchange (issue 26): the hybrid X25519 + ML-KEM-768 suites,
through the handshake's own ML-KEM code paths (Wycheproof), end to end, against
peers without them, against a downgrade, and at every length a peer can get wrong."""

from __future__ import annotations

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
    # the server chose from the altered list: the Finished catches the alteration,
    # but the choice itself worked (no no_common_suite)
    assert out.server_error is not None and out.server_error.reason is Reason.BAD_FINISHED


def test_stripping_the_hybrid_from_the_client_hello_is_bad_finished() -> None:
    """A downgrade: an attacker removes the hybrid codes so the server picks X25519
    (which a future quantum computer could open). The Finished MACs cover the
    ClientHello as each side saw it: the server refuses, nothing is delivered."""

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
    assert_rejected(out, "server", Reason.BAD_FINISHED)  # ... and found out


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
