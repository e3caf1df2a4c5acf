"""Step 4, data transmission: the record layer after the handshake."""

from __future__ import annotations

import pytest
from mtlsdemo.handshake import DataReceived, KeyUpdated, PeerClosed, ProtocolError, Reason, State
from mtlsdemo.handshake.config import Limits
from mtlsdemo.handshake.records import MAX_PLAINTEXT, TAG_LEN, ContentType, Protector, header
from support.hskit import config, handshake


def connected(**kw):
    c, s, out = handshake(config("gateway", **kw), config("ledger", **kw))
    assert out.client_error is None and out.server_error is None
    return c, s


def records(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        n = 5 + int.from_bytes(data[pos + 3 : pos + 5], "big")
        out.append(data[pos : pos + n])
        pos += n
    return out


def expect_failure(conn, data: bytes, reason: Reason) -> ProtocolError:
    with pytest.raises(ProtocolError) as e:
        conn.receive_data(data)
    assert (e.value.reason, e.value.origin) == (reason, "local")
    return e.value


def test_flipped_tag_is_decrypt_error_and_nothing_after_is_delivered() -> None:
    c, s = connected()
    c.send_data(b"one")
    c.send_data(b"two")
    c.send_data(b"three")
    r1, r2, r3 = records(c.data_to_send())
    bad = bytearray(r2)
    bad[-1] ^= 0x80
    err = expect_failure(s, r1 + bytes(bad) + r3, Reason.DECRYPT_ERROR)
    assert err.events == [DataReceived(b"one")]  # delivered before the flip, nothing after
    # the alert back is encrypted (the server's keys are live) and the client reads it
    with pytest.raises(ProtocolError) as e:
        c.receive_data(s.data_to_send())
    assert (e.value.reason, e.value.origin) == (Reason.DECRYPT_ERROR, "remote")


def test_flipped_header_byte_is_decrypt_error() -> None:
    c, s = connected()
    c.send_data(b"x" * 100)
    rec = bytearray(c.data_to_send())
    rec[0] = ContentType.KEY_UPDATE  # the header is AAD: changing it breaks the tag
    expect_failure(s, bytes(rec), Reason.DECRYPT_ERROR)


def test_replayed_record_is_decrypt_error() -> None:
    c, s = connected()
    c.send_data(b"pay 100")
    rec = c.data_to_send()
    assert s.receive_data(rec) == [DataReceived(b"pay 100")]
    expect_failure(s, rec, Reason.DECRYPT_ERROR)


def test_reordered_records_are_decrypt_error() -> None:
    c, s = connected()
    c.send_data(b"first")
    c.send_data(b"second")
    r1, r2 = records(c.data_to_send())
    expect_failure(s, r2 + r1, Reason.DECRYPT_ERROR)


def test_oversized_record_is_record_overflow() -> None:
    c, s = connected()
    expect_failure(
        s,
        header(ContentType.APPLICATION_DATA, MAX_PLAINTEXT + 257) + bytes(10),
        Reason.RECORD_OVERFLOW,
    )


def test_zero_length_record_is_decrypt_error() -> None:
    c, s = connected()
    expect_failure(s, header(ContentType.APPLICATION_DATA, 0), Reason.DECRYPT_ERROR)


def test_plaintext_after_keys_is_decrypt_error() -> None:
    c, s = connected()
    expect_failure(
        s, header(ContentType.APPLICATION_DATA, 20) + b"plaintext sneaking in", Reason.DECRYPT_ERROR
    )


def test_handshake_record_after_keys_is_unexpected() -> None:
    c, s = connected()
    expect_failure(
        s, header(ContentType.HANDSHAKE, 4) + b"\x01\x00\x00\x00", Reason.UNEXPECTED_MESSAGE
    )


def test_empty_encrypted_application_record_is_decode_error() -> None:
    c, s = connected()
    assert c._send is not None
    expect_failure(s, c._send.seal(ContentType.APPLICATION_DATA, b""), Reason.DECODE_ERROR)


def test_eof_without_close_notify_is_truncation() -> None:
    c, s = connected()
    c.send_data(b"partial")
    assert s.receive_data(c.data_to_send()) == [DataReceived(b"partial")]
    err = expect_failure(s, b"", Reason.TRUNCATED)
    assert "without close_notify" in err.detail
    assert s.data_to_send() == b""  # nobody to tell


def test_close_notify_then_eof_is_clean() -> None:
    c, s = connected()
    c.send_data(b"all of it")
    c.close()
    c.close()  # idempotent
    assert s.receive_data(c.data_to_send()) == [DataReceived(b"all of it"), PeerClosed()]
    assert s.receive_data(b"") == []
    with pytest.raises(RuntimeError):
        c.send_data(b"more")


def test_records_after_close_notify_are_unexpected() -> None:
    c, s = connected()
    assert c._send is not None
    c.close()
    data = c.data_to_send() + c._send.seal(ContentType.APPLICATION_DATA, b"late")
    expect_failure(s, data, Reason.UNEXPECTED_MESSAGE)


def test_key_update_on_demand_both_ways() -> None:
    c, s = connected()
    old = c._send.secret
    c.send_data(b"before")
    c.update_keys(request_peer=True)
    c.send_data(b"after")
    events = s.receive_data(c.data_to_send())
    assert events == [
        DataReceived(b"before"),
        KeyUpdated("receive", 1),
        KeyUpdated("send", 1),
        DataReceived(b"after"),
    ]
    assert c._send.secret != old
    # the server's answering KeyUpdate moves the client's receive keys
    s.send_data(b"reply")
    assert c.receive_data(s.data_to_send()) == [KeyUpdated("receive", 1), DataReceived(b"reply")]


def test_automatic_key_update_after_records() -> None:
    c, s = connected(key_update_records=3)
    for i in range(10):
        c.send_data(bytes([i]))
    events = s.receive_data(c.data_to_send())
    data = [e.data for e in events if isinstance(e, DataReceived)]
    updates = [e for e in events if isinstance(e, KeyUpdated)]
    assert data == [bytes([i]) for i in range(10)]
    assert [u.generation for u in updates] == [1, 2, 3]
    assert c.send_generation == 3


def test_automatic_key_update_after_bytes() -> None:
    c, s = connected(key_update_bytes=40_000)
    c.send_data(bytes(100_000))
    events = s.receive_data(c.data_to_send())
    assert sum(len(e.data) for e in events if isinstance(e, DataReceived)) == 100_000
    assert c.send_generation == 2


def test_sequence_exhaustion_closes_the_session() -> None:
    c, s = connected(limits=Limits(max_seq=4))
    for i in range(3):
        c.send_data(bytes([i]))
    with pytest.raises(ProtocolError) as e:
        c.send_data(b"one too many")
    assert e.value.reason is Reason.SEQUENCE_EXHAUSTED and c.state is State.FAILED


@pytest.mark.parametrize("side", ["client", "server"])
def test_send_side_sequence_exhaustion_alerts_the_peer(side: str) -> None:
    """The sender keeps its last sequence number for the alert: the peer learns why."""
    c, s = connected(limits=Limits(max_seq=4))
    sender, receiver = (c, s) if side == "client" else (s, c)
    for i in range(3):
        sender.send_data(bytes([i]))
    with pytest.raises(ProtocolError):
        sender.send_data(b"one too many")
    with pytest.raises(ProtocolError) as told:
        receiver.receive_data(sender.data_to_send())
    assert told.value.reason is Reason.SEQUENCE_EXHAUSTED and told.value.origin == "remote"
    assert (
        told.value.events and sum(len(e.data) for e in told.value.events) == 3
    )  # the data before it


def test_no_nonce_repeats_across_many_records_and_key_updates() -> None:
    c, s = connected(key_update_records=200)
    seen = set()
    sealer = c._send
    assert isinstance(sealer, Protector)
    for _ in range(1000):
        if sealer.records >= 200:
            sealer.update()
        key_and_nonce = (sealer.secret, sealer._nonce())
        assert key_and_nonce not in seen
        seen.add(key_and_nonce)
        sealer.seal(ContentType.APPLICATION_DATA, b"x")
    assert len(seen) == 1000
    # nonce = iv XOR seq: consecutive records differ in exactly the counter bits
    p = Protector(sealer.suite, b"\x01" * 32)
    n0 = p._nonce()
    p.seal(ContentType.APPLICATION_DATA, b"y")
    n1 = p._nonce()
    assert int.from_bytes(n0, "big") ^ int.from_bytes(n1, "big") == 1


def test_ciphertext_is_plaintext_plus_tag() -> None:
    c, s = connected()
    c.send_data(b"z" * 1000)
    rec = c.data_to_send()
    assert len(rec) == 5 + 1000 + TAG_LEN
    assert b"z" * 16 not in rec
