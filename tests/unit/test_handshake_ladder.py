"""The always-on ladder of the handshake core (what the sidecar's /handshakes and
the console draw): every message in order with its step and size, the step a
failure stopped in, the alert, and the peer's certificate as received — with
tracing off, and nothing recorded after the handshake."""

from __future__ import annotations

from mtlsdemo.handshake import Reason
from mtlsdemo.handshake import messages as m
from support import hskit
from support.hskit import assert_rejected, config, handshake

SERVER_VIEW = [
    ("recv", "CLIENT_HELLO", "hello"),
    ("send", "SERVER_HELLO", "hello"),
    ("send", "CERTIFICATE", "certificate_verify"),
    ("send", "SERVER_KEY_SHARE", "key_exchange"),
    ("send", "CERTIFICATE_REQUEST", "certificate_verify"),
    ("send", "CERTIFICATE_VERIFY", "certificate_verify"),
    ("recv", "CERTIFICATE", "certificate_verify"),
    ("recv", "CLIENT_KEY_EXCHANGE", "key_exchange"),
    ("recv", "CERTIFICATE_VERIFY", "certificate_verify"),
    ("recv", "FINISHED", "finished"),
    ("send", "FINISHED", "finished"),
]


def test_a_good_handshake_records_every_message_in_order_without_tracing() -> None:
    c, s, out = handshake(config("gateway"), config("ledger"), client_data=b"ping")
    assert out.completed("client") and out.completed("server")
    assert c.trace == [] and s.trace == []  # the teaching trace stays off
    assert [(x.direction, x.name, x.step) for x in s.ladder] == SERVER_VIEW
    flipped = {"send": "recv", "recv": "send"}
    assert [(flipped[x.direction], x.name, x.step) for x in c.ladder] == SERVER_VIEW
    # the sizes are the wire's: the two sides agree on every message
    assert [x[2] for x in c.ladder] == [x[2] for x in s.ladder]
    # and so are the bytes each side kept of every message (the byte view's)
    assert [x.raw for x in c.ladder] == [x.raw for x in s.ladder]
    assert all(len(x.raw) == x.size for x in c.ladder)
    times = [x[4] for x in c.ladder]
    assert times == sorted(times)
    assert c.failed_step == "" and s.failed_step == ""
    # application data (and later alerts) never grow it
    c.send_data(b"more")
    s.receive_data(c.data_to_send())
    c.close()
    s.receive_data(c.data_to_send())
    assert len(s.ladder) == len(SERVER_VIEW) and len(c.ladder) == len(SERVER_VIEW)


def test_a_refused_certificate_records_the_step_the_alert_and_the_certificate() -> None:
    c, s, out = handshake(config("gateway", issuer="other", trust=(hskit.ca(),)), config("ledger"))
    assert_rejected(out, "server", Reason.UNKNOWN_CA)
    assert s.failed_step == "certificate_verify"
    assert s.ladder[-1][:4] == ("send", "unknown_ca", 2, "alert")
    assert c.ladder[-1][:4] == ("recv", "unknown_ca", 2, "alert")
    # the client's Certificate arrived (and was refused): kept as received
    assert s.peer_certificate is not None and len(s.peer_certificate.chain) >= 1
    assert s.peer_certificate.status  # its stapled status, unverified
    # the client was waiting for Finished when told: the alert's reason names the step
    assert c.failed_step == "certificate_verify"


def test_an_unexpected_message_is_on_the_ladder_before_the_failure() -> None:
    s = hskit.new("server", config("ledger"))
    finished = m.Finished(b"\x00" * 32)
    from mtlsdemo.handshake.records import ContentType, plaintext_record

    try:
        s.receive_data(plaintext_record(ContentType.HANDSHAKE, m.encode(finished)))
    except Exception as e:
        assert getattr(e, "reason", None) is Reason.UNEXPECTED_MESSAGE
    assert [x[:2] for x in s.ladder] == [("recv", "FINISHED"), ("send", "unexpected_message")]
    assert s.failed_step == "hello"  # it was still waiting for the ClientHello
