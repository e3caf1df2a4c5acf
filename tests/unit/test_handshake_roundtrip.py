"""Full mutual handshakes for every suite x key type, then data both ways."""

from __future__ import annotations

import itertools

import pytest
from mtlsdemo.handshake import (
    SUITES,
    DataReceived,
    HandshakeComplete,
    KeyExchange,
    PeerClosed,
    PeerPolicy,
    Reason,
)
from mtlsdemo.handshake.records import MAX_PLAINTEXT
from mtlsdemo.handshake.states import PHASES, State
from support.hskit import config, handshake, new, pump

KEY_TYPES = ("ecdsa-p256", "ed25519", "rsa-2048")
ECDHE = [s for s in SUITES if s.kx is KeyExchange.ECDHE_X25519]
RSA = [s for s in SUITES if s.kx is KeyExchange.RSA_OAEP]


def combos():
    for suite, ck, sk in itertools.product(SUITES, KEY_TYPES, KEY_TYPES):
        if suite.kx is KeyExchange.RSA_OAEP and sk != "rsa-2048":
            continue  # RSA key transport needs an RSA server key
        yield pytest.param(suite, ck, sk, id=f"{suite.name}-client_{ck}-server_{sk}")


@pytest.mark.parametrize(("suite", "client_key", "server_key"), list(combos()))
def test_round_trip(suite, client_key: str, server_key: str) -> None:
    ccfg = config("gateway", client_key, suites=(suite,), trace=True)
    scfg = config("ledger", server_key, suites=tuple(SUITES))
    c, s, out = handshake(ccfg, scfg)
    assert out.client_error is None and out.server_error is None, (
        out.client_error,
        out.server_error,
    )
    for conn, peer in (
        (c, "spiffe://mtls-demo.local/ns/default/sa/ledger"),
        (s, "spiffe://mtls-demo.local/ns/default/sa/gateway"),
    ):
        assert conn.state is State.CONNECTED
        assert conn.result is not None
        assert conn.result.suite == suite.name and conn.result.peer_identity == peer
        assert set(conn.result.phases) == set(PHASES)
        assert all(v >= 0 for v in conn.result.phases.values())
    # data both ways, including a payload that spans several records
    big = bytes(range(256)) * 300
    c.send_data(b"ping")
    s.send_data(big)
    got_s = s.receive_data(c.data_to_send())
    got_c = c.receive_data(s.data_to_send())
    assert got_s == [DataReceived(b"ping")]
    assert b"".join(e.data for e in got_c) == big
    assert len(got_c) == -(-len(big) // MAX_PLAINTEXT)
    # orderly close in both directions
    c.close()
    assert s.receive_data(c.data_to_send()) == [PeerClosed()]
    s.send_data(b"after half-close")  # the server may still send
    assert c.receive_data(s.data_to_send()) == [DataReceived(b"after half-close")]
    s.close()
    assert c.receive_data(s.data_to_send()) == [PeerClosed()]
    assert c.receive_data(b"") == [] and s.receive_data(b"") == []


def test_server_picks_first_supported_in_client_order() -> None:
    order = (ECDHE[2], ECDHE[0], ECDHE[1])
    c, s, out = handshake(config("gateway", suites=order), config("ledger", suites=tuple(SUITES)))
    assert c.result and c.result.suite == ECDHE[2].name


def test_server_preference_order_when_configured() -> None:
    c, s, out = handshake(
        config("gateway", suites=(ECDHE[2], ECDHE[0])),
        config("ledger", suites=(ECDHE[0], ECDHE[2]), server_preference=True),
    )
    assert c.result and c.result.suite == ECDHE[0].name


def test_rsa_oaep_is_skipped_when_server_key_cannot_decrypt() -> None:
    # client offers RSA first, but an ECDSA server cannot do key transport: ECDHE wins
    c, s, out = handshake(
        config("gateway", suites=(RSA[0], ECDHE[0])),
        config("ledger", "ecdsa-p256", suites=tuple(SUITES)),
    )
    assert c.result and c.result.key_exchange == "ECDHE-X25519"
    c, s, out = handshake(
        config("gateway", suites=(RSA[0],)), config("ledger", "ecdsa-p256", suites=tuple(SUITES))
    )
    assert out.server_error and out.server_error.reason is Reason.NO_COMMON_SUITE


def test_identity_allow_list_with_pattern() -> None:
    pol = PeerPolicy(allowed_ids=("spiffe://mtls-demo.local/ns/*/sa/gateway",))
    c, s, out = handshake(config("gateway"), config("ledger", peer=pol))
    assert s.result and s.result.peer_identity.endswith("/sa/gateway")
    assert pol.allows("spiffe://mtls-demo.local/ns/prod/sa/gateway")
    assert not pol.allows("spiffe://mtls-demo.local/ns/prod/sa/gateway/extra")
    assert not pol.allows("spiffe://mtls-demo.local/ns/prod/sa/cli")
    assert not pol.allows("spiffe://other.local/ns/prod/sa/gateway")


def test_server_name_checked_by_client() -> None:
    c, s, out = handshake(
        config("gateway", peer=PeerPolicy(server_name="ledger.default.svc")), config("ledger")
    )
    assert c.result is not None


def test_byte_by_byte_delivery_completes() -> None:
    """The core accepts any fragmentation: feed every flight one byte at a time."""
    c = new("client", config("gateway"))
    s = new("server", config("ledger"))
    c.start()
    done = {"client": False, "server": False}
    for _ in range(4):
        for src, dst, name in ((c, s, "server"), (s, c, "client")):
            for b in src.data_to_send():
                for e in dst.receive_data(bytes((b,))):
                    if isinstance(e, HandshakeComplete):
                        done[name] = True
    assert done == {"client": True, "server": True}
    c.send_data(b"x" * 1000)
    got = b""
    for b in c.data_to_send():
        got += b"".join(e.data for e in s.receive_data(bytes((b,))) if isinstance(e, DataReceived))
    assert got == b"x" * 1000


def test_waiting_for_tells_what_is_awaited() -> None:
    c = new("client", config("gateway"))
    s = new("server", config("ledger"))
    assert s.waiting_for == "CLIENT_HELLO from the client"
    c.start()
    assert c.waiting_for == "SERVER_HELLO from the server"
    pump(c, s)
    assert c.waiting_for == "application data"


def test_trace_records_every_message_and_step() -> None:
    c, s, out = handshake(config("gateway", trace=True), config("ledger", trace=True))
    names = [(e.direction, e.name) for e in c.trace]
    assert names == [
        ("send", "CLIENT_HELLO"),
        ("recv", "SERVER_HELLO"),
        ("recv", "CERTIFICATE"),
        ("recv", "SERVER_KEY_SHARE"),
        ("recv", "CERTIFICATE_REQUEST"),
        ("recv", "CERTIFICATE_VERIFY"),
        ("send", "CERTIFICATE"),
        ("send", "CLIENT_KEY_EXCHANGE"),
        ("send", "CERTIFICATE_VERIFY"),
        ("send", "FINISHED"),
        ("derive", "KEY_SCHEDULE"),
        ("recv", "FINISHED"),
    ]
    assert {e.step for e in c.trace} == {"hello", "certificate_verify", "key_exchange", "finished"}
    # both sides derived the same keys: the fingerprints agree, the secrets are not shown
    (ck,) = [e.fields for e in c.trace if e.kind == "keys"]
    (sk,) = [e.fields for e in s.trace if e.kind == "keys"]
    assert ck["fingerprints"] == sk["fingerprints"] and len(ck["fingerprints"]) == 4
    assert ck["transcript_hash"] == sk["transcript_hash"] and "secrets" not in ck
    cert = c.trace[2].fields["certificates"][0]
    assert (
        cert["key"] == "EC secp256r1"
        and "spiffe://mtls-demo.local/ns/default/sa/ledger" in cert["names"]
    )
    assert c.trace[4].fields["schemes"][0] == "ECDSA_SECP256R1_SHA256"


def test_trace_secrets_only_when_asked() -> None:
    c, _s, _out = handshake(
        config("gateway", trace=True, trace_secrets=True), config("ledger", trace=True)
    )
    (keys,) = [e.fields for e in c.trace if e.kind == "keys"]
    assert set(keys["secrets"]) == set(keys["fingerprints"])
    shared, *derived = keys["secrets"].values()
    assert len(shared) == 128  # the hybrid: ML-KEM-768's 32 bytes || X25519's 32
    assert all(len(v) == 64 for v in derived)
    hello = c.trace[0].fields
    assert hello["suites"][0] == "X25519MLKEM768-AES-256-GCM" and len(hello["random"]) == 64
    assert "CN=ledger" in c.trace[2].fields["chain"][0]
