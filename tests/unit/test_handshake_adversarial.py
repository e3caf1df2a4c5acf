"""Every way to break the handshake gets its exact reason, the peer is told the
same reason, and no application byte is delivered."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os

import pytest
from cryptography.hazmat.primitives import serialization
from mtlsdemo.handshake import SUITES, KeyExchange, PeerPolicy, ProtocolError, Reason
from mtlsdemo.handshake import messages as m
from mtlsdemo.handshake.codec import u16, u24
from mtlsdemo.handshake.config import Limits
from mtlsdemo.handshake.suites import VERSION_1, VERSION_1_1
from support.hskit import (
    CLIENT_AUTH,
    NOW,
    SERVER_AUTH,
    SigningPeer,
    assert_rejected,
    ca,
    config,
    creds,
    custom_leaf,
    handshake,
    join_messages,
    leaf,
    new,
    pump,
    rewrite,
    split_messages,
)

RSA = [s for s in SUITES if s.kx is KeyExchange.RSA_OAEP]
DATA = b"secret application data"


def edit(direction: str, flight: int, msg_index: int, fn) -> object:
    """Replace message ``msg_index`` of a flight with fn(message bytes) (None: drop it)."""

    def change(data: bytes) -> bytes:
        parts = split_messages(data)
        new = fn(parts[msg_index][1])
        if new is None:
            del parts[msg_index]
        else:
            parts[msg_index] = (22, new)
        return join_messages(parts)

    return rewrite(direction, flight, change)


def body_edit(fn):
    """Apply fn to a message body and fix up the length header."""

    def inner(raw: bytes) -> bytes:
        body = fn(raw[4:])
        return raw[:1] + u24(len(body)) + body

    return inner


def flip(raw: bytes, pos: int = -1) -> bytes:
    b = bytearray(raw)
    b[pos] ^= 0x01
    return bytes(b)


# ---------------------------------------------------------------- certificates
def test_client_rejects_server_from_unknown_ca() -> None:
    _, _, out = handshake(config("gateway"), config("ledger", issuer="evil"), client_data=DATA)
    assert_rejected(out, "client", Reason.UNKNOWN_CA)


def test_server_rejects_client_from_unknown_ca() -> None:
    ccfg = config("gateway", issuer="evil", trust=(ca("main"),))
    _, _, out = handshake(ccfg, config("ledger"), client_data=DATA)
    assert_rejected(out, "server", Reason.UNKNOWN_CA)


def test_expired_leaf_is_rejected() -> None:
    old = creds(*leaf("gateway", at=NOW - dt.timedelta(days=60), days=30))
    _, _, out = handshake(config("gateway", credentials=old), config("ledger"), client_data=DATA)
    assert_rejected(out, "server", Reason.CERTIFICATE_EXPIRED)


def test_not_yet_valid_leaf_is_rejected() -> None:
    future = creds(*leaf("ledger", at=NOW + dt.timedelta(days=2)))
    _, _, out = handshake(config("gateway"), config("ledger", credentials=future), client_data=DATA)
    assert_rejected(out, "client", Reason.CERTIFICATE_NOT_YET_VALID)


def test_expired_ca_is_rejected() -> None:
    # The CA lived one day; the leaf asked for 30 and was clipped to the CA's end.
    # Two days later the chain is expired.
    short = ca("short")
    later = NOW + dt.timedelta(days=2)
    ccfg = config("gateway", issuer="short")
    scfg = config("ledger", issuer="short")
    assert short.cert.not_valid_after_utc < later
    assert scfg.credentials.leaf.not_valid_after_utc == short.cert.not_valid_after_utc
    _, _, out = handshake(ccfg, scfg, client_now=later, server_now=later)
    assert_rejected(out, "client", Reason.CERTIFICATE_EXPIRED)


def test_expired_ca_under_a_valid_leaf_is_named() -> None:
    # A leaf that outlives its CA (another CA's making: ours clips) is refused for the CA.
    later = NOW + dt.timedelta(days=2)
    cert, key = custom_leaf("ledger", [SERVER_AUTH, CLIENT_AUTH], issuer="short", days=30)
    scfg = config("ledger", issuer="short", credentials=creds(cert, key))
    _, _, out = handshake(
        config("gateway", issuer="short"), scfg, client_now=later, server_now=later
    )
    assert_rejected(out, "client", Reason.CERTIFICATE_EXPIRED)
    assert "CA" in out.client_error.detail


def test_not_yet_valid_ca_is_rejected() -> None:
    soon = ca("future")
    from mtlsdemo.pki.identity import ServiceIdentity
    from mtlsdemo.pki.issue import issue_leaf
    from mtlsdemo.pki.keys import generate_key

    key = generate_key("ecdsa-p256")
    cert = issue_leaf(soon, key.public_key(), ServiceIdentity("ledger"), NOW, 30)
    scfg = config("ledger", credentials=creds(cert, key))
    _, _, out = handshake(config("gateway", trust=(soon,)), scfg)
    assert_rejected(out, "client", Reason.CERTIFICATE_NOT_YET_VALID)


def test_wrong_spiffe_id_is_identity_mismatch() -> None:
    pol = PeerPolicy(allowed_ids=("spiffe://mtls-demo.local/ns/default/sa/gateway",))
    _, _, out = handshake(config("cli"), config("ledger", peer=pol), client_data=DATA)
    assert_rejected(out, "server", Reason.IDENTITY_MISMATCH)
    assert "sa/cli" in out.server_error.detail


def test_client_checks_server_identity() -> None:
    pol = PeerPolicy(allowed_ids=("spiffe://mtls-demo.local/ns/default/sa/ledger",))
    _, _, out = handshake(config("gateway", peer=pol), config("cli"))
    assert_rejected(out, "client", Reason.IDENTITY_MISMATCH)
    _, _, out = handshake(config("gateway", peer=PeerPolicy(server_name="ledger")), config("cli"))
    assert_rejected(out, "client", Reason.IDENTITY_MISMATCH)


@pytest.mark.parametrize("name", ["ledger", "LEDGER", "ledger."])
def test_server_names_compare_as_dns_names(name: str) -> None:
    """Case and a trailing dot do not make another name (RFC 4343); another name is
    still refused."""
    _, _, out = handshake(config("gateway", peer=PeerPolicy(server_name=name)), config("ledger"))
    assert out.client_error is None and out.server_error is None


def test_ca_certificate_used_as_leaf_is_bad_certificate() -> None:
    authority = ca("main")
    scfg = config("ledger", credentials=creds(authority.cert, authority.key))
    _, _, out = handshake(config("gateway"), scfg)
    assert_rejected(out, "client", Reason.BAD_CERTIFICATE)
    assert "CA certificate" in out.client_error.detail


@pytest.mark.parametrize(
    ("side", "ekus"),
    [("server", [CLIENT_AUTH]), ("server", None), ("client", [SERVER_AUTH]), ("client", None)],
)
def test_missing_eku_for_role_is_bad_certificate(side: str, ekus) -> None:
    broken = creds(*custom_leaf("gateway" if side == "client" else "ledger", ekus))
    if side == "client":
        _, _, out = handshake(config("gateway", credentials=broken), config("ledger"))
        assert_rejected(out, "server", Reason.BAD_CERTIFICATE)
    else:
        _, _, out = handshake(config("gateway"), config("ledger", credentials=broken))
        assert_rejected(out, "client", Reason.BAD_CERTIFICATE)
    local = out.server_error if side == "client" else out.client_error
    assert "extended key usage" in local.detail


def test_a_critical_eku_is_accepted_and_still_enforced() -> None:
    """Decided (docs/protocol.md, step 3): RFC 5280 allows a critical EKU and this
    verifier understands it, so it is accepted; its contents still bind the role."""
    both = creds(*custom_leaf("gateway", [SERVER_AUTH, CLIENT_AUTH], eku_critical=True))
    _, _, out = handshake(config("gateway", credentials=both), config("ledger"))
    assert out.client_error is None and out.server_error is None
    server_only = creds(*custom_leaf("gateway", [SERVER_AUTH], eku_critical=True))
    _, _, out = handshake(config("gateway", credentials=server_only), config("ledger"))
    assert_rejected(out, "server", Reason.BAD_CERTIFICATE)
    assert "clientAuth extended key usage" in out.server_error.detail


def test_empty_chain_is_certificate_required() -> None:
    good = creds(*leaf("gateway"))
    empty = type(good)(good.chain, good.key, (), good.scheme)
    _, _, out = handshake(config("gateway", credentials=empty), config("ledger"))
    assert_rejected(out, "server", Reason.CERTIFICATE_REQUIRED)


def test_garbage_certificate_bytes_are_bad_certificate() -> None:
    good = creds(*leaf("gateway"))
    junk = type(good)(good.chain, good.key, (os.urandom(300),), good.scheme)
    _, _, out = handshake(config("gateway", credentials=junk), config("ledger"))
    assert_rejected(out, "server", Reason.BAD_CERTIFICATE)


def test_overlong_chain_is_bad_certificate() -> None:
    good = creds(*leaf("gateway"))
    long = type(good)(good.chain, good.key, good.chain_der * 5, good.scheme)
    _, _, out = handshake(config("gateway", credentials=long), config("ledger"))
    assert_rejected(out, "server", Reason.BAD_CERTIFICATE)


# ---------------------------------------------------------------- framing and order
@pytest.mark.parametrize(
    "fn",
    [
        lambda b: b[:-5],  # truncated body (length header fixed up)
        lambda b: b + b"\x00",  # trailing byte
        lambda b: b"\x09" + b[1:],  # versions vector claims 9 bytes
        lambda b: b[:1] + b"",  # nearly empty
    ],
    ids=["truncated", "trailing", "overlong-field", "empty"],
)
def test_malformed_client_hello_is_decode_error(fn) -> None:
    _, _, out = handshake(
        config("gateway"), config("ledger"), tamper=edit("c2s", 0, 0, body_edit(fn))
    )
    assert_rejected(out, "server", Reason.DECODE_ERROR)


def test_message_length_over_limit_is_record_overflow() -> None:
    def huge(raw: bytes) -> bytes:
        return raw[:1] + u24(10_000_000) + raw[4:]

    _, _, out = handshake(config("gateway"), config("ledger"), tamper=edit("c2s", 0, 0, huge))
    assert_rejected(out, "server", Reason.RECORD_OVERFLOW)


def test_trailing_bytes_in_finished_are_decode_error() -> None:
    _, _, out = handshake(
        config("gateway"),
        config("ledger"),
        tamper=edit("c2s", 1, 3, body_edit(lambda b: b + b"\x00")),
    )
    assert_rejected(out, "server", Reason.DECODE_ERROR)


def test_skipped_message_is_unexpected() -> None:
    # drop ServerKeyShare: the client gets CertificateRequest while waiting for it
    _, _, out = handshake(
        config("gateway"), config("ledger"), tamper=edit("s2c", 0, 2, lambda b: None)
    )
    assert_rejected(out, "client", Reason.UNEXPECTED_MESSAGE)
    assert "SERVER_KEY_SHARE" in out.client_error.detail


def test_duplicated_message_is_unexpected() -> None:
    def dup(data: bytes) -> bytes:
        parts = split_messages(data)
        parts.insert(1, parts[1])
        return join_messages(parts)

    _, _, out = handshake(config("gateway"), config("ledger"), tamper=rewrite("s2c", 0, dup))
    assert_rejected(out, "client", Reason.UNEXPECTED_MESSAGE)


def test_reordered_messages_are_unexpected() -> None:
    def swap(data: bytes) -> bytes:
        parts = split_messages(data)
        parts[1], parts[3] = parts[3], parts[1]
        return join_messages(parts)

    _, _, out = handshake(config("gateway"), config("ledger"), tamper=rewrite("c2s", 1, swap))
    assert_rejected(out, "server", Reason.UNEXPECTED_MESSAGE)


def test_unknown_message_type_is_unexpected() -> None:
    _, _, out = handshake(
        config("gateway"), config("ledger"), tamper=edit("c2s", 0, 0, lambda b: b"\x63" + b[1:])
    )
    assert_rejected(out, "server", Reason.UNEXPECTED_MESSAGE)


def test_application_data_before_handshake_is_unexpected() -> None:
    s = new("server", config("ledger"))
    with pytest.raises(ProtocolError) as e:
        s.receive_data(bytes((23, 1, 0, 0, 4)) + b"data")
    assert e.value.reason is Reason.UNEXPECTED_MESSAGE
    assert s.data_to_send() == bytes((21, 1, 0, 0, 2, 2, 10))  # fatal alert, unexpected_message


# ---------------------------------------------------------------- negotiation
def test_no_common_suite() -> None:
    ecdhe = [s for s in SUITES if s.kx is KeyExchange.ECDHE_X25519]
    _, _, out = handshake(
        config("gateway", suites=(ecdhe[0],)), config("ledger", suites=(ecdhe[1],))
    )
    assert_rejected(out, "server", Reason.NO_COMMON_SUITE)


def test_no_common_version() -> None:
    _, _, out = handshake(config("gateway", versions=(0x0200,)), config("ledger"))
    assert_rejected(out, "server", Reason.UNSUPPORTED_VERSION)


def test_server_choosing_unoffered_suite_is_illegal_parameter() -> None:
    def other_suite(body: bytes) -> bytes:
        return body[:-2] + u16(0x0103)

    _, _, out = handshake(
        config("gateway", suites=(SUITES[0],)),
        config("ledger"),
        tamper=edit("s2c", 0, 0, body_edit(other_suite)),
    )
    assert_rejected(out, "client", Reason.ILLEGAL_PARAMETER)


def test_server_choosing_unoffered_version_is_unsupported_version() -> None:
    _, _, out = handshake(
        config("gateway"),
        config("ledger"),
        tamper=edit("s2c", 0, 0, body_edit(lambda b: u16(0x0200) + b[2:])),
    )
    assert_rejected(out, "client", Reason.UNSUPPORTED_VERSION)


def _strip_first_suite(body: bytes) -> bytes:
    versions = body[: 1 + body[0]]
    rest = body[len(versions) :]
    random, suites = rest[:32], rest[32:]
    return versions + random + bytes((suites[0] - 2,)) + suites[3:]


def test_downgrade_of_offered_suites_is_caught_by_the_servers_signature() -> None:
    """An attacker strips the client's preferred suite so the server picks a
    weaker one. MTD/1.2's CertificateVerify signs the whole transcript, the
    ClientHello as the server received it included: the client refuses the server's
    signature at step 2, before any key is derived."""
    c, s, out = handshake(
        config("gateway"),
        config("ledger"),
        tamper=edit("c2s", 0, 0, body_edit(_strip_first_suite)),
        client_data=DATA,
    )
    assert_rejected(out, "client", Reason.BAD_SIGNATURE)


def test_mtd_1_1_peers_catch_the_same_downgrade_only_at_the_finished() -> None:
    """Between two MTD/1.1 peers the signatures leave the ClientHello out: nothing
    fails until the Finished, which covers the original offer."""
    old = (VERSION_1_1, VERSION_1)
    c, s, out = handshake(
        dataclasses.replace(config("gateway"), versions=old),
        dataclasses.replace(config("ledger"), versions=old),
        tamper=edit("c2s", 0, 0, body_edit(_strip_first_suite)),
        client_data=DATA,
    )
    assert_rejected(out, "server", Reason.BAD_FINISHED)


# ---------------------------------------------------------------- signatures and Finished
def test_finished_with_one_bit_flipped_is_bad_finished() -> None:
    _, _, out = handshake(
        config("gateway"),
        config("ledger"),
        tamper=edit("c2s", 1, 3, lambda b: flip(b)),
        client_data=DATA,
    )
    assert_rejected(out, "server", Reason.BAD_FINISHED)


def test_server_finished_flipped_is_bad_finished_at_client() -> None:
    _, _, out = handshake(
        config("gateway"), config("ledger"), tamper=edit("s2c", 1, 0, lambda b: flip(b))
    )
    assert_rejected(
        out, "client", Reason.BAD_FINISHED, sealed=True
    )  # the server has its keys by then


def test_finished_from_another_session_is_bad_finished() -> None:
    captured = {}

    def grab(direction: str, data: bytes) -> bytes:
        if direction == "c2s" and len(split_messages(data)) == 4:
            captured["fin"] = split_messages(data)[3][1]
        return data

    handshake(config("gateway"), config("ledger"), tamper=grab)
    assert "fin" in captured
    _, _, out = handshake(
        config("gateway"), config("ledger"), tamper=edit("c2s", 1, 3, lambda b: captured["fin"])
    )
    assert_rejected(out, "server", Reason.BAD_FINISHED)


def test_certificate_verify_over_wrong_transcript_is_bad_signature() -> None:
    cred = creds(*leaf("gateway"))
    from mtlsdemo.handshake.signatures import sign, signed_content

    def forge(raw: bytes) -> bytes:
        sig = sign(cred.key, cred.scheme, signed_content("client", os.urandom(32)))
        return m.encode(m.CertificateVerify(cred.scheme, sig))

    _, _, out = handshake(
        config("gateway", credentials=cred), config("ledger"), tamper=edit("c2s", 1, 2, forge)
    )
    assert_rejected(out, "server", Reason.BAD_SIGNATURE)


def test_signature_bytes_flipped_is_bad_signature() -> None:
    _, _, out = handshake(
        config("gateway", "ed25519"), config("ledger"), tamper=edit("s2c", 0, 4, lambda b: flip(b))
    )
    assert_rejected(out, "client", Reason.BAD_SIGNATURE)


def test_reflected_client_hello_is_unexpected_message() -> None:
    c = new("client", config("gateway"))
    c.start()
    hello = c.data_to_send()
    with pytest.raises(ProtocolError) as e:
        c.receive_data(hello)
    assert e.value.reason is Reason.UNEXPECTED_MESSAGE


def test_reflected_certificate_verify_fails_even_with_same_key() -> None:
    """Both sides hold the same certificate: only the per-role context strings
    stop the server's own signature from being accepted as the client's."""
    shared = creds(*leaf("gateway"))
    captured = {}

    def reflect(direction: str, data: bytes) -> bytes:
        parts = split_messages(data)
        if direction == "s2c" and len(parts) == 5:
            captured["cv"] = parts[4][1]
        if direction == "c2s" and len(parts) == 4:
            parts[2] = (22, captured["cv"])
            return join_messages(parts)
        return data

    _, _, out = handshake(
        config("gateway", credentials=shared), config("gateway", credentials=shared), tamper=reflect
    )
    assert_rejected(out, "server", Reason.BAD_SIGNATURE)


def test_certificate_verify_scheme_not_matching_key_is_illegal_parameter() -> None:
    _, _, out = handshake(
        config("gateway"),
        config("ledger"),
        tamper=edit("s2c", 0, 4, body_edit(lambda b: u16(0x0807) + b[2:])),
    )
    assert_rejected(out, "client", Reason.ILLEGAL_PARAMETER)


# ---------------------------------------------------------------- key exchange
@pytest.mark.parametrize(
    "public",
    [bytes(32), (1).to_bytes(32, "little"), bytes(31), bytes(33)],
    ids=["all-zero", "order-1", "short", "long"],
)
def test_bad_server_key_share_is_illegal_parameter(public: bytes) -> None:
    share = m.encode(m.ServerKeyShare(m.X25519_GROUP, public))
    _, _, out = handshake(
        config("gateway"), config("ledger"), tamper=edit("s2c", 0, 2, lambda b: share)
    )
    # the server signed its real key share: the forged one breaks the signature
    # first unless the key share itself is unusable, which is checked at use.
    assert out.client_error is not None
    assert out.client_error.reason in (Reason.BAD_SIGNATURE, Reason.ILLEGAL_PARAMETER)


@pytest.mark.parametrize(
    "public",
    [bytes(32), (1).to_bytes(32, "little"), bytes(16)],
    ids=["all-zero", "order-1", "short"],
)
def test_bad_client_key_share_is_illegal_parameter(public: bytes) -> None:
    # A malicious client sends (and signs) a low-order or malformed key share,
    # so every signature is honest and the server's own check must stop it.
    classic = (SUITES[0],)  # X25519 alone: its ClientKeyExchange is the share itself
    evil = SigningPeer(
        "client",
        None,
        {m.HandshakeType.CLIENT_KEY_EXCHANGE: lambda _body: m.ClientKeyExchange(public).body()},
    )
    ccfg = config("gateway", suites=classic)
    evil.key = ccfg.credentials.key
    _c, _s, out = handshake(ccfg, config("ledger", suites=classic), tamper=evil)
    assert out.server_error is not None
    assert out.server_error.reason is Reason.ILLEGAL_PARAMETER
    assert (out.client_error.reason, out.client_error.origin) == (
        Reason.ILLEGAL_PARAMETER,
        "remote_unverified",
    )


def test_low_order_server_share_detected_before_any_key_use() -> None:
    """A server signing a low-order share (malicious server): the client refuses it."""
    classic = (SUITES[0],)
    scfg = config("ledger", suites=classic)
    evil = SigningPeer(
        "server",
        scfg.credentials.key,
        {
            m.HandshakeType.SERVER_KEY_SHARE: lambda _b: m.ServerKeyShare(
                m.X25519_GROUP, bytes(32)
            ).body()
        },
    )
    c, _s, out = handshake(config("gateway", suites=classic), scfg, tamper=evil)
    assert out.client_error is not None
    assert (out.client_error.reason, out.client_error.origin) == (Reason.ILLEGAL_PARAMETER, "local")
    assert out.server_error is not None and out.server_error.reason is Reason.ILLEGAL_PARAMETER


@pytest.mark.parametrize(
    "mangle",
    [
        lambda ct: flip(ct, 10),  # corrupted ciphertext
        lambda ct: os.urandom(len(ct)),  # random bytes of the right length
        lambda ct: ct[:-1],  # wrong length
        lambda ct: b"",  # empty
        "short-secret",  # valid OAEP, but of a 16-byte secret
    ],
    ids=["flipped", "random", "short", "empty", "wrong-secret-length"],
)
def test_malformed_oaep_ciphertext_looks_like_any_bad_key(mangle) -> None:
    scfg = config("ledger", "rsa-2048", suites=tuple(SUITES))
    server_key = scfg.credentials.key.public_key()

    def tamper_cke(raw: bytes) -> bytes:
        ct = m.decode(raw[0], raw[4:]).data
        if mangle == "short-secret":
            from mtlsdemo.handshake.kx import rsa_oaep_encrypt

            new = rsa_oaep_encrypt(server_key, os.urandom(16))
        else:
            new = mangle(ct)
        return m.encode(m.ClientKeyExchange(new))

    _, _, out = handshake(
        config("gateway", suites=(RSA[0],)), scfg, tamper=edit("c2s", 1, 1, tamper_cke)
    )
    # The client's CertificateVerify covered the original ciphertext, so the
    # signature check fails first... unless the attacker is the client itself.
    assert out.server_error is not None
    assert out.server_error.reason in (Reason.BAD_SIGNATURE, Reason.BAD_FINISHED)


@pytest.mark.parametrize("kind", ["flipped", "random", "wrong-length", "short-secret"])
def test_oaep_failure_is_indistinguishable_from_wrong_secret(kind: str) -> None:
    """A malicious *client* (it signs whatever it sends) with a bad ciphertext:
    the server goes on with a random secret and answers exactly as for a wrong
    pre-master secret: bad_finished, same alert bytes, same message count."""
    from mtlsdemo.handshake.kx import rsa_oaep_encrypt

    scfg = config("ledger", "rsa-2048", suites=tuple(SUITES))
    server_key = scfg.credentials.key.public_key()

    def evil(body: bytes) -> bytes:
        ct = m.decode(m.HandshakeType.CLIENT_KEY_EXCHANGE, body).data
        if kind == "flipped":
            ct = flip(ct, 7)
        elif kind == "random":
            ct = os.urandom(len(ct))
        elif kind == "wrong-length":
            ct = ct + b"\x00"
        else:
            ct = rsa_oaep_encrypt(server_key, os.urandom(16))
        return m.ClientKeyExchange(ct).body()

    def wrong_secret(_body: bytes) -> bytes:  # well-formed, but not the secret it keyed with
        return m.ClientKeyExchange(rsa_oaep_encrypt(server_key, os.urandom(48))).body()

    alerts = []
    for fn in (evil, wrong_secret):
        ccfg = config("gateway", suites=(RSA[0],))
        peer = SigningPeer(
            "client", ccfg.credentials.key, {m.HandshakeType.CLIENT_KEY_EXCHANGE: fn}
        )
        c, s, out = handshake(ccfg, scfg, tamper=peer, client_data=DATA)
        assert_rejected(out, "server", Reason.BAD_FINISHED)
        alerts.append(out.client_error.reason)
    assert alerts[0] == alerts[1]


def test_two_sessions_with_same_inputs_have_different_keys() -> None:
    ccfg, scfg = config("gateway"), config("ledger")
    c1, s1, _ = handshake(ccfg, scfg)
    c2, s2, _ = handshake(ccfg, scfg)
    assert c1._send.secret == s1._recv.secret  # the two ends agree...
    assert c1._send.secret != c2._send.secret  # ...and no two sessions share keys
    assert s1._send.secret != s2._send.secret


# ---------------------------------------------------------------- limits and deadlines
def test_too_many_buffered_bytes_is_record_overflow() -> None:
    s = new(
        "server",
        config("ledger", limits=Limits(max_handshake_message=200_000, max_buffered=20_000)),
    )
    partial = bytes((1,)) + u24(100_000) + os.urandom(16_000)
    with pytest.raises(ProtocolError) as e:
        s.receive_data(bytes((22, 1, 0)) + len(partial).to_bytes(2, "big") + partial)
        s.receive_data(bytes((22, 1, 0)) + len(partial).to_bytes(2, "big") + partial)
    assert e.value.reason is Reason.RECORD_OVERFLOW


def test_handshake_timeout_is_sent_as_alert() -> None:
    c = new("client", config("gateway"))
    s = new("server", config("ledger"))
    c.start()
    s.receive_data(c.data_to_send())
    # the client stalls; the server's caller hits its deadline
    err = s.fail(Reason.HANDSHAKE_TIMEOUT, f"waited too long for {s.waiting_for}")
    assert err.reason is Reason.HANDSHAKE_TIMEOUT and "CERTIFICATE" in err.detail
    with pytest.raises(ProtocolError) as e:
        c.receive_data(s.data_to_send())
    assert (e.value.reason, e.value.origin) == (Reason.HANDSHAKE_TIMEOUT, "remote_unverified")


def test_eof_during_handshake_is_truncated() -> None:
    c = new("client", config("gateway"))
    c.start()
    with pytest.raises(ProtocolError) as e:
        c.receive_data(b"")
    assert e.value.reason is Reason.TRUNCATED


def test_peer_closing_during_handshake_is_reported() -> None:
    c = new("client", config("gateway"))
    c.start()
    with pytest.raises(ProtocolError) as e:
        c.receive_data(bytes((21, 1, 0, 0, 2, 1, 0)))
    assert (e.value.reason, e.value.origin) == (Reason.CLOSE_NOTIFY, "remote_unverified")


@pytest.mark.parametrize(
    "record",
    [
        bytes((99, 1, 0, 0, 1, 0)),  # unknown record type
        bytes((22, 3, 3, 0, 1, 0)),  # wrong record version
        bytes((22, 1, 0, 0x48, 0x01)) + bytes(0x4801),  # oversized record
        bytes((22, 1, 0, 0, 0)),  # empty handshake record
        bytes((21, 1, 0, 0, 3, 2, 40, 0)),  # alert of 3 bytes
        bytes((21, 1, 0, 0, 2, 2, 200)),  # unknown alert code
    ],
)
def test_malformed_records_before_keys(record: bytes) -> None:
    s = new("server", config("ledger"))
    with pytest.raises(ProtocolError) as e:
        s.receive_data(record)
    assert e.value.reason in (
        Reason.UNEXPECTED_MESSAGE,
        Reason.DECODE_ERROR,
        Reason.RECORD_OVERFLOW,
    )
    assert e.value.origin == "local"
    assert s.data_to_send()[:1] == b"\x15"  # and an alert goes back


def test_version_constant_in_records() -> None:
    assert VERSION_1 == 0x0100
    c = new("client", config("gateway"))
    c.start()
    assert c.data_to_send()[:3] == bytes((22, 1, 0))


def test_the_helpers_see_flights() -> None:
    c = new("client", config("gateway"))
    s = new("server", config("ledger"))
    out = pump(c, s)
    assert out.client_error is None and out.server_error is None
    assert serialization  # imported for readers extending these tests


def test_a_refusal_reports_the_checks_that_passed_before_it() -> None:
    """The ladder of a refused handshake shows what held before the one check that
    failed: chain, status, the signature — then identity_mismatch."""
    ccfg = config("gateway")
    cli = "spiffe://mtls-demo.local/ns/default/sa/cli"
    scfg = dataclasses.replace(config("ledger"), peer=PeerPolicy(allowed_ids=(cli,)))
    c, s, out = handshake(ccfg, scfg)
    assert_rejected(out, "server", Reason.IDENTITY_MISMATCH)
    passed = s.report().checks
    assert passed, "no passed check reported"
    assert any("CertificateVerify" in p for p in passed), passed
    assert not any(p.startswith("identity ") for p in passed), passed  # the one that failed
