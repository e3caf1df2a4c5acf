"""Session resumption (MTD/1.1): a ticket after a full handshake, a short resumed
handshake with it, and every way a ticket must stop working — each refused with a
named reason, the refusal known to both sides, and a full handshake instead
(which then decides, as it would have without the ticket)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from mtlsdemo.handshake import HandshakeConfig, PeerPolicy, ProtocolError, Reason
from mtlsdemo.handshake import messages as m
from mtlsdemo.handshake.records import ContentType
from mtlsdemo.handshake.suites import SUPPORTED_VERSIONS, VERSION_1, VERSION_1_2
from mtlsdemo.handshake.tickets import (
    REFUSAL_CODES,
    Refusal,
    SessionFacts,
    TicketCache,
    TicketKeys,
    TicketRefused,
)
from mtlsdemo.trust import TrustStore
from support.hskit import NOW, assert_rejected, ca, config, creds, handshake, leaf, new

GATEWAY = "spiffe://mtls-demo.local/ns/default/sa/gateway"
LEDGER = "spiffe://mtls-demo.local/ns/default/sa/ledger"


def with_tickets(
    keys: TicketKeys | None = None, cache: TicketCache | None = None, **server_kw
) -> tuple[HandshakeConfig, HandshakeConfig]:
    client = dataclasses.replace(
        config("gateway"), ticket_cache=cache or TicketCache(), ticket_peer="ledger"
    )
    server = dataclasses.replace(config("ledger", **server_kw), tickets=keys or TicketKeys())
    return client, server


def first_full(ccfg, scfg) -> None:
    c, s, out = handshake(ccfg, scfg, client_data=b"ping")
    assert out.client_error is None and out.server_error is None
    assert not c.result.resumed and s.ticket_issued
    assert len(ccfg.ticket_cache) == 1


def test_a_full_handshake_issues_a_ticket_and_the_next_one_resumes_without_certificates() -> None:
    ccfg, scfg = with_tickets()
    first_full(ccfg, scfg)
    c, s, out = handshake(ccfg, scfg, client_data=b"ping")
    assert out.client_error is None and out.server_error is None
    assert out.delivered("server") == b"ping"
    assert c.result.resumed and s.result.resumed
    assert c.result.version == s.result.version == "MTD/1.2"
    assert (c.result.peer_identity, s.result.peer_identity) == (LEDGER, GATEWAY)
    # MTD/1.2: the client's Finished first, the server's answers it (issue 31 item 4)
    assert [(d, name) for d, name, *_ in c.ladder] == [
        ("send", "CLIENT_HELLO"),
        ("recv", "SERVER_HELLO"),
        ("recv", "SERVER_KEY_SHARE"),
        ("send", "FINISHED"),
        ("recv", "FINISHED"),
    ]
    assert "CERTIFICATE" not in [name for _d, name, *_ in s.ladder]
    assert any("forward secrecy" in check for check in s.result.checks)


def test_two_resumptions_of_one_ticket_get_different_keys() -> None:
    """A fresh X25519 exchange in every resumed handshake: the same ticket never
    gives the same traffic keys (forward secrecy is kept)."""
    ccfg, scfg = with_tickets()
    first_full(ccfg, scfg)
    c1, _s1, _ = handshake(ccfg, scfg)
    c2, _s2, _ = handshake(ccfg, scfg)
    assert c1.result.resumed and c2.result.resumed
    assert c1._send.secret != c2._send.secret


def test_a_ticket_replayed_past_its_limit_is_refused_and_the_handshake_is_full() -> None:
    keys = TicketKeys(max_uses=2)
    ccfg, scfg = with_tickets(keys)
    first_full(ccfg, scfg)
    ticket = ccfg.ticket_cache._tickets["ledger"][0]
    for _ in range(2):
        c, s, _ = handshake(ccfg, scfg)
        assert c.result.resumed
    # the client would now stop offering it (its own count); an attacker replaying it
    # (or a client that lost count) meets the server's count
    ticket.uses = 0
    ccfg.ticket_cache.put("ledger", ticket)
    c, s, out = handshake(ccfg, scfg)
    assert out.client_error is None and out.server_error is None
    assert not c.result.resumed and not s.result.resumed
    assert s.resume_refusal == "ticket_replayed" and s.resume_refused_by == "local"
    assert c.resume_refusal == "ticket_replayed" and c.resume_refused_by == "remote"
    assert "ticket refused by the server: ticket_replayed" in c.result.resumption
    assert "CERTIFICATE" in [name for _d, name, *_ in c.ladder]  # the full handshake


def test_a_ticket_from_another_server_key_is_refused() -> None:
    """Another server (or this one restarted: keys live in memory) cannot open it."""
    ccfg, scfg = with_tickets()
    first_full(ccfg, scfg)
    other = dataclasses.replace(scfg, tickets=TicketKeys())
    c, s, out = handshake(ccfg, other)
    assert out.client_error is None and out.server_error is None
    assert s.resume_refusal == "ticket_unknown_key" and not c.result.resumed
    assert len(ccfg.ticket_cache) == 1  # the refused one dropped, the new full one's kept


def test_a_ticket_for_an_identity_since_removed_from_the_allow_list_falls_back_and_is_refused() -> (
    None
):
    keys = TicketKeys()
    ccfg, scfg = with_tickets(keys)
    first_full(ccfg, scfg)
    stricter = dataclasses.replace(
        scfg, peer=PeerPolicy(allowed_ids=("spiffe://mtls-demo.local/ns/default/sa/other",))
    )
    c, s, out = handshake(ccfg, stricter)
    assert s.resume_refusal == "ticket_peer_not_allowed"
    # the full handshake then decides: the gateway is not allowed any more
    assert_rejected(out, "server", Reason.IDENTITY_MISMATCH)


def test_a_ticket_after_a_ca_rollover_is_refused_on_both_sides() -> None:
    """The trust bundle changed (prepare: old and new CA): tickets verified against
    the old bundle are not used — the client does not offer, and a server whose
    bundle changed refuses what is offered."""
    keys = TicketKeys()
    ccfg, scfg = with_tickets(keys)
    first_full(ccfg, scfg)
    bundle = TrustStore([ca("main").cert, ca("other").cert])
    server_rolled = dataclasses.replace(scfg, trust=bundle)
    c, s, out = handshake(ccfg, server_rolled)
    assert out.server_error is None and not s.result.resumed
    assert s.resume_refusal == "ticket_trust_changed"
    # and a client whose bundle changed does not even offer its ticket
    client_rolled = dataclasses.replace(ccfg, trust=bundle)
    c, s, out = handshake(client_rolled, scfg)
    assert out.client_error is None and not c.result.resumed
    assert c.resume_refusal == "ticket_trust_changed" and c.resume_refused_by == "local"
    assert "ticket not offered" in c.result.resumption


def test_an_expired_ticket_is_refused_by_the_server_even_if_the_client_offers_it() -> None:
    keys = TicketKeys(lifetime=60)
    ccfg, scfg = with_tickets(keys)
    first_full(ccfg, scfg)
    later = NOW + dt.timedelta(seconds=61)
    c, s, out = handshake(ccfg, scfg, client_now=NOW, server_now=later)
    assert out.server_error is None and s.resume_refusal == "ticket_expired"
    # a client that knows the time does not offer it
    ccfg, scfg = with_tickets(keys)
    first_full(ccfg, scfg)
    c, s, out = handshake(ccfg, scfg, client_now=later, server_now=later)
    assert c.resume_refusal == "ticket_expired" and c.resume_refused_by == "local"


def test_a_renewed_or_restapled_identity_sends_the_next_handshake_through_in_full() -> None:
    """The client's own staple changed (e.g. the CA now says revoked): a resumed
    handshake would hide it, so the client does not offer its tickets."""
    ccfg, scfg = with_tickets()
    first_full(ccfg, scfg)
    cert, key = leaf("gateway")
    revoked = dataclasses.replace(ccfg, credentials=creds(cert, key, staple=_revoked(cert)))
    c, s, out = handshake(revoked, scfg)
    assert c.resume_refusal == "ticket_credentials_changed"
    assert_rejected(out, "server", Reason.CERTIFICATE_REVOKED)


def _revoked(cert) -> bytes:
    from mtlsdemo.pki.revocation import Revocation, key_id
    from support.hskit import status

    entry = Revocation(
        f"{cert.serial_number:x}", key_id(ca().cert), NOW.isoformat(), "key_compromise", "gw"
    )
    return status(cert, revoked=[entry])


def test_the_server_refuses_when_its_own_credentials_changed() -> None:
    keys = TicketKeys()
    ccfg, scfg = with_tickets(keys)
    first_full(ccfg, scfg)
    cert, key = leaf("ledger", key_type="rsa-2048")
    renewed = dataclasses.replace(scfg, credentials=creds(cert, key))
    _c, s, out = handshake(ccfg, renewed)
    assert out.server_error is None and s.resume_refusal == "ticket_credentials_changed"


def test_a_server_reloaded_as_another_workload_refuses_its_old_identitys_tickets() -> None:
    """Issue 31 item 6: ticket keys outlive identity reloads (one TicketKeys per
    process), so a ticket names the identity it belongs to: a server that is now
    another workload refuses it as `ticket_identity_changed`, by name (not only
    because its certificate's fingerprint moved), and the ticket says whose it is."""
    keys = TicketKeys()
    ccfg, scfg = with_tickets(keys)
    first_full(ccfg, scfg)
    [ticket] = list(ccfg.ticket_cache._tickets["ledger"])
    assert keys.open(ticket.ticket).facts.own_identity == LEDGER
    assert ticket.facts.own_identity == GATEWAY  # the client's copy: its own side
    audit = dataclasses.replace(scfg, credentials=creds(*leaf("audit")))
    _c, s, _out = handshake(ccfg, audit)
    assert not s.resumed and s.resume_refusal == "ticket_identity_changed"
    assert "belongs to " + LEDGER in s.resumption


def test_an_altered_resumption_offer_fails_the_binder() -> None:
    """The binder is an HMAC under the ticket's secret over the ClientHello: a
    changed hello (here: one bit of its random) or a client without the secret is
    refused outright, not resumed and not downgraded to a full handshake."""
    ccfg, scfg = with_tickets()
    first_full(ccfg, scfg)
    c, s = new("client", ccfg), new("server", scfg)
    c.start()
    hello = bytearray(c.data_to_send())
    assert hello[0] == ContentType.HANDSHAKE and hello[5] == m.HandshakeType.CLIENT_HELLO
    hello[5 + 4 + 1 + 4] ^= 1  # record header, message header, versions: the random
    with pytest.raises(ProtocolError) as err:
        s.receive_data(bytes(hello))
    assert err.value.reason is Reason.BAD_FINISHED and "binder" in err.value.detail
    assert not s.ticket_issued and s.result is None


def test_a_server_cannot_resume_what_was_not_offered() -> None:
    ccfg, scfg = with_tickets()
    c = new("client", ccfg)  # empty cache: offers nothing
    c.start()
    c.data_to_send()
    forged = m.ServerHello(VERSION_1_2, bytes(32), 0x1301, 1, 0)
    from mtlsdemo.handshake.records import plaintext_record

    with pytest.raises(ProtocolError) as err:
        c.receive_data(plaintext_record(ContentType.HANDSHAKE, m.encode(forged)))
    assert err.value.reason in (Reason.ILLEGAL_PARAMETER, Reason.UNEXPECTED_MESSAGE)


@pytest.mark.parametrize("side", ["client", "server"])
def test_mtd_1_0_peers_still_connect_and_get_no_ticket(side: str) -> None:
    ccfg, scfg = with_tickets()  # the new side allows the old versions: --versions
    if side == "client":
        ccfg = dataclasses.replace(ccfg, versions=(VERSION_1,))
        scfg = dataclasses.replace(scfg, versions=SUPPORTED_VERSIONS)
    else:
        scfg = dataclasses.replace(scfg, versions=(VERSION_1,))
        ccfg = dataclasses.replace(ccfg, versions=SUPPORTED_VERSIONS)
    c, s, out = handshake(ccfg, scfg, client_data=b"x")
    assert out.client_error is None and out.server_error is None
    assert c.result.version == "MTD/1.0" and not s.ticket_issued
    assert len(ccfg.ticket_cache) == 0


def test_ticket_keys_rotate_and_a_retired_key_opens_its_tickets_until_they_expire() -> None:
    keys = TicketKeys(lifetime=100)
    counter = iter(range(10_000))

    def entropy(n: int) -> bytes:
        return (next(counter).to_bytes(4, "big") * (n // 4 + 1))[:n]

    facts = SessionFacts(GATEWAY, "CN=gateway", 10**10, 0, b"t", b"o", 0x1301, 0, 100, 5)
    t0 = dt.datetime.fromtimestamp(1_000_000, dt.UTC)
    old = keys.seal(b"p" * 32, facts, t0, entropy)
    new_ticket = keys.seal(b"q" * 32, facts, t0 + dt.timedelta(seconds=150), entropy)
    assert keys.rotations == 2 and old[:4] != new_ticket[:4]
    assert keys.open(old).psk == b"p" * 32  # retired, still opens
    keys.seal(b"r" * 32, facts, t0 + dt.timedelta(seconds=250), entropy)
    with pytest.raises(TicketRefused) as err:
        keys.open(old)  # past 2 lifetimes: its key is gone
    assert err.value.refusal is Refusal.UNKNOWN_KEY


def test_refusal_codes_are_one_byte_and_distinct() -> None:
    codes = list(REFUSAL_CODES.values())
    assert len(set(codes)) == len(codes) == len(Refusal) and max(codes) < 256


def test_the_protocol_document_lists_every_refusal_with_its_wire_code() -> None:
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    listed = {name: int(code) for name, code in re.findall(r"`(ticket_[a-z_]+)` \((\d+)\)", doc)}
    assert listed == {r.value: code for r, code in REFUSAL_CODES.items()}


def test_a_peer_revoked_on_the_crl_loses_its_tickets_and_the_full_handshake_refuses_it() -> None:
    """The audit's F4: a sidecar believed a revoked peer's last good staple for up to
    an hour and its tickets kept resuming. With a CRL (PeerPolicy.revoked) the ticket
    is refused and the full handshake that follows names the revocation."""
    keys = TicketKeys()
    ccfg, scfg = with_tickets(keys)
    first_full(ccfg, scfg)
    asked: list[tuple[bytes, int]] = []

    def revoked(issuer: bytes, serial: int) -> str | None:
        asked.append((issuer, serial))
        return f"certificate serial {serial:x} was revoked (key_compromise)"

    with_crl = dataclasses.replace(scfg, peer=PeerPolicy(revoked=revoked))
    c, s, out = handshake(ccfg, with_crl)
    assert s.resume_refusal == "ticket_peer_revoked"
    assert_rejected(out, "server", Reason.CERTIFICATE_REVOKED)
    assert "(the CRL)" in out.server_error.detail
    issuer, serial = asked[0]
    assert serial == ccfg.credentials.chain[0].serial_number and issuer


def test_a_crl_that_does_not_list_the_peer_lets_it_resume() -> None:
    keys = TicketKeys()
    ccfg, scfg = with_tickets(keys)
    not_listed = dataclasses.replace(scfg, peer=PeerPolicy(revoked=lambda _i, _s: None))
    first_full(ccfg, not_listed)
    c, s, out = handshake(ccfg, not_listed)
    assert out.server_error is None and s.result.resumed


def test_replayed_resumption_hellos_use_up_nothing() -> None:
    """Issue 31, item 2: a captured resumption ClientHello passes the binder again and
    each replay burned a use, so the genuine client was later refused ticket_replayed.
    A use is counted only when the client's Finished verifies, which a replay can never
    send; a used-up ticket is refused before the binder."""
    from support.hskit import new

    keys = TicketKeys(max_uses=3)
    ccfg, scfg = with_tickets(keys)
    first_full(ccfg, scfg)
    ticket = ccfg.ticket_cache._tickets["ledger"][0]
    captured = new("client", ccfg)
    captured.start()
    hello = captured.data_to_send()  # a genuine resumption offer, seen on the wire
    for _ in range(5):  # replayed to the server: each one answered, none ever finished
        s = new("server", scfg)
        s.receive_data(hello)
        assert not s.handshake_done
    ticket.uses = 0  # the client that sent it never finished either
    ccfg.ticket_cache.put("ledger", ticket)
    for _ in range(3):  # the genuine client still has all its uses
        c, s, out = handshake(ccfg, scfg)
        assert out.server_error is None and c.result.resumed and s.result.resumed
    ticket.uses = 0
    ccfg.ticket_cache.put("ledger", ticket)
    c, s, _ = handshake(ccfg, scfg)  # and a fourth is one too many
    assert not s.result.resumed and s.resume_refusal == "ticket_replayed"


def test_a_forged_refusal_in_the_server_hello_costs_the_client_nothing() -> None:
    """Issue 31, item 3: the client acted on the ServerHello's refusal byte before
    anything authenticated it — a forged `ticket_peer_not_allowed` made it discard a
    good ticket and count a remote refusal. Now it acts only once the server's Finished
    (over that ServerHello) verifies: a forgery fails the handshake, the ticket stays."""
    from support.hskit import rewrite

    ccfg, scfg = with_tickets()
    first_full(ccfg, scfg)
    other = dataclasses.replace(scfg, tickets=TicketKeys())  # refuses: ticket_unknown_key

    def forge(flight: bytes) -> bytes:
        b = bytearray(flight)
        assert b[5] == m.HandshakeType.SERVER_HELLO and int.from_bytes(b[6:9], "big") == 38
        assert b[46] == REFUSAL_CODES[Refusal.UNKNOWN_KEY]
        b[46] = REFUSAL_CODES[Refusal.PEER_NOT_ALLOWED]
        return bytes(b)

    c, _s, out = handshake(ccfg, other, tamper=rewrite("s2c", 0, forge))
    # the transcript differs: the server's CertificateVerify (or Finished) does not verify
    assert out.client_error is not None
    assert out.client_error.reason in (Reason.BAD_SIGNATURE, Reason.BAD_FINISHED)
    assert c.resume_refusal is None  # no refusal counted as the server's
    assert len(ccfg.ticket_cache) == 1  # the good ticket is still there
    # an honest refusal, once the Finished verified, is believed and the ticket dropped
    c, _s, out = handshake(ccfg, other)
    assert out.client_error is None and c.resume_refusal == "ticket_unknown_key"
    assert c.resume_refused_by == "remote" and len(ccfg.ticket_cache) == 1  # the new ticket


def test_only_the_tickets_holder_learns_why_it_would_be_refused() -> None:
    """Issue 31, item 3: re-checks and their refusal codes ran before the binder, so
    anyone with a captured ticket (it travels in clear) could ask the server whether
    the client is still allowed. The binder is checked first: without the ticket's
    secret the hello is refused as altered, and no reason is told."""
    ccfg, scfg = with_tickets()
    first_full(ccfg, scfg)
    ticket = ccfg.ticket_cache._tickets["ledger"][0]
    ticket.psk = bytes(32)  # the ticket without its secret
    stricter = dataclasses.replace(
        scfg, peer=PeerPolicy(allowed_ids=("spiffe://mtls-demo.local/ns/default/sa/other",))
    )
    _c, s, out = handshake(ccfg, stricter)
    assert out.server_error is not None and out.server_error.reason is Reason.BAD_FINISHED
    assert s.resume_refusal is None and s._refusal_code == 0
