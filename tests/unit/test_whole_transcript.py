"""MTD/1.2 (issue 31 items 1 and 4): CertificateVerify signs the whole transcript,
a 1.2 server marks a downgraded ServerHello, and a resumed client sends its Finished
first and completes only on the server's. Each attack here worked on MTD/1.1 (the
tests with `OLD` versions show it still does between two 1.1 peers, as documented in
docs/protocol.md §3 and §7a)."""

from __future__ import annotations

import dataclasses
import hashlib

from mtlsdemo.handshake import SUITES, DataReceived, HandshakeComplete, Reason
from mtlsdemo.handshake import messages as m
from mtlsdemo.handshake.keyschedule import KeySchedule
from mtlsdemo.handshake.kx import rsa_oaep_decrypt
from mtlsdemo.handshake.signatures import Scheme, sign, signed_content
from mtlsdemo.handshake.suites import (
    DOWNGRADE_SENTINEL,
    SUPPORTED_VERSIONS,
    VERSION_1,
    VERSION_1_1,
    VERSION_1_2,
    KeyExchange,
)
from mtlsdemo.handshake.tickets import TicketCache, TicketKeys
from support.hskit import (
    SeededEntropy,
    assert_rejected,
    config,
    handshake,
    join_messages,
    split_messages,
)

RSA = next(s for s in SUITES if s.kx is KeyExchange.RSA_OAEP)
OLD = (VERSION_1_1, VERSION_1)
HS = 22


class HelloRewriter:
    """An attacker holding the server's RSA key (issue 31 item 1): it rewrites the
    client's version list on the way in, decrypts the pre-master secret from the
    ClientKeyExchange, re-signs the server's CertificateVerify over the transcript the
    client saw (it has the key), and swaps the client's Finished for one over the
    transcript the server saw. The client's CertificateVerify is passed on untouched:
    it is the only thing left that could tell the server its ClientHello was not the
    client's."""

    def __init__(self, server_key: object, versions: tuple[int, ...]) -> None:
        self.server_key, self.versions = server_key, versions
        self.seen: list[bytes] = []  # every handshake message as the server received/sent it
        self.client_view: list[bytes] = []  # ... and as the client sent/received it
        self.client_random = self.server_random = b""
        self.v12 = False

    def __call__(self, direction: str, data: bytes) -> bytes:
        out = []
        for ctype, raw in split_messages(data):
            if ctype == HS:
                if direction == "c2s":
                    self.client_view.append(raw)
                raw = self._handle(direction, raw)
                self.seen.append(self._server_sent if direction == "s2c" else raw)
                if direction == "s2c":
                    self.client_view.append(raw)
            out.append((ctype, raw))
        return join_messages(out)

    def _handle(self, direction: str, raw: bytes) -> bytes:
        t, body = raw[0], raw[4:]
        self._server_sent = raw
        if t == m.HandshakeType.CERTIFICATE_VERIFY and direction == "s2c" and self.v12:
            # MTD/1.2's server signature covers the ClientHello: sign the client's
            # (before 1.2 nothing needs re-signing: the hello is not covered)
            cv = m.decode(t, body)
            th = hashlib.sha256(b"".join(self.client_view)).digest()
            sig = sign(self.server_key, Scheme(cv.scheme), signed_content("server", th))  # type: ignore[arg-type]
            return m.encode(m.CertificateVerify(cv.scheme, sig))
        if t == m.HandshakeType.CLIENT_HELLO:
            hello = m.decode(t, body)
            self.client_random = hello.random
            return m.encode(dataclasses.replace(hello, versions=self.versions))
        if t == m.HandshakeType.SERVER_HELLO:
            hello = m.decode(t, body)
            self.server_random, self.v12 = hello.random, hello.version >= VERSION_1_2
        if t == m.HandshakeType.CLIENT_KEY_EXCHANGE:
            pre, ok = rsa_oaep_decrypt(self.server_key, m.decode(t, body).data, SeededEntropy(b"x"))  # type: ignore[arg-type]
            assert ok
            self.ks = KeySchedule(pre, self.client_random, self.server_random)
        if t == m.HandshakeType.FINISHED and direction == "c2s":
            th = hashlib.sha256(b"".join(self.seen)).digest()
            return m.encode(m.Finished(self.ks.finished_mac("client", th)))
        return raw


def _rsa_pair(versions: tuple[int, ...] | None = None):
    ccfg = config("gateway", "rsa-2048", suites=(RSA,))
    scfg = config("ledger", "rsa-2048", suites=(RSA,))
    if versions is not None:
        ccfg = dataclasses.replace(ccfg, versions=versions)
        scfg = dataclasses.replace(scfg, versions=versions)
    return ccfg, scfg


def test_a_rewritten_hello_with_the_servers_rsa_key_fails_the_clients_signature() -> None:
    """MTD/1.2: the client's signature covers its own ClientHello, the server checks it
    against the one it received: `bad_signature`, and the server never accepts."""
    ccfg, scfg = _rsa_pair()
    attacker = HelloRewriter(scfg.credentials.key, (VERSION_1_2, VERSION_1_1))  # 1.0 cut
    c, s, out = handshake(ccfg, scfg, tamper=attacker)
    assert s.version == VERSION_1_2
    assert out.server_error is not None, "the server accepted a hello the client never sent"
    assert (out.server_error.reason, out.server_error.origin) == (Reason.BAD_SIGNATURE, "local")
    assert not out.completed("server")


def test_between_two_mtd_1_1_peers_the_same_rewrite_is_accepted_as_documented() -> None:
    """The defect the model found, kept for what it shows (§7a): MTD/1.1's signatures
    leave the offer lists out, so the server accepts the honest client on a transcript
    the client never saw."""
    ccfg, scfg = _rsa_pair(OLD)
    attacker = HelloRewriter(scfg.credentials.key, (VERSION_1,))
    c, s, out = handshake(ccfg, scfg, tamper=attacker)
    assert out.completed("server") and s.result.peer_identity.endswith("/sa/gateway")
    assert s.result.version == "MTD/1.0"


def _allowing_old():
    """Two 1.2 peers that also allow the older versions: an explicit setting."""
    return (
        dataclasses.replace(config("gateway"), versions=SUPPORTED_VERSIONS),
        dataclasses.replace(config("ledger"), versions=SUPPORTED_VERSIONS),
    )


def test_by_default_a_1_2_peer_refuses_a_1_1_peer_by_name() -> None:
    """The model's residual (§7a): when either peer is 1.1 a stolen RSA server key
    still rewrites the hello, and the mark protects nothing. So 1.2 alone is the
    default, both ways, and the refusal names the versions and the setting."""
    old_client = dataclasses.replace(config("gateway"), versions=OLD)
    _c, _s, out = handshake(old_client, config("ledger"))
    assert_rejected(out, "server", Reason.UNSUPPORTED_VERSION)
    assert "client offers MTD/1.1, MTD/1.0; this side accepts MTD/1.2" in out.server_error.detail
    assert "--versions" in out.server_error.detail
    old_server = dataclasses.replace(config("ledger"), versions=OLD)
    _c, _s, out = handshake(config("gateway"), old_server)
    assert_rejected(out, "server", Reason.UNSUPPORTED_VERSION)  # it finds no common version


def test_no_configuration_negotiates_a_hybrid_suite_below_1_2() -> None:
    """A server allowing {1.1, 1.0} with the hybrid suites enabled could be cut to
    X25519 by whoever breaks X25519 in real time: below 1.2 it never picks them."""
    ccfg = dataclasses.replace(config("gateway"), versions=OLD)
    scfg = dataclasses.replace(config("ledger"), versions=SUPPORTED_VERSIONS)
    c, s, out = handshake(ccfg, scfg, client_data=b"x")
    assert out.client_error is None and out.server_error is None
    assert c.result.version == "MTD/1.1" and "MLKEM" not in c.result.suite


def _cut_versions(keep: tuple[int, ...], strip_mark: bool = False):
    def tamper(direction: str, data: bytes) -> bytes:
        out = []
        for ctype, raw in split_messages(data):
            t = raw[0] if ctype == HS else None
            if t == m.HandshakeType.CLIENT_HELLO and direction == "c2s":
                raw = m.encode(dataclasses.replace(m.decode(t, raw[4:]), versions=keep))
            if t == m.HandshakeType.SERVER_HELLO and strip_mark:
                hello = m.decode(t, raw[4:])
                raw = m.encode(dataclasses.replace(hello, random=bytes(32)))
            out.append((ctype, raw))
        return join_messages(out)

    return tamper


def test_a_version_list_cut_to_mtd_1_1_is_refused_by_the_downgrade_mark() -> None:
    """Both peers speak 1.2 and still allow 1.1 (--versions); the path removes 1.2
    from the offer. The server, which would have chosen 1.2, marks its random; the
    client sees the mark and refuses."""
    c, s, out = handshake(*_allowing_old(), tamper=_cut_versions(OLD))
    assert s.version == VERSION_1_1 and s._server_random.endswith(DOWNGRADE_SENTINEL)
    assert_rejected(out, "client", Reason.ILLEGAL_PARAMETER)
    assert "downgrade" in out.client_error.detail


def test_stripping_the_mark_too_breaks_the_signatures() -> None:
    """The mark is in the server random, which both CertificateVerify signatures cover
    (in MTD/1.1 too): a path that removes it breaks the server's signature."""
    tamper = _cut_versions(OLD, strip_mark=True)
    c, s, out = handshake(*_allowing_old(), tamper=tamper)
    assert_rejected(out, "client", Reason.BAD_SIGNATURE)
    assert not out.completed("server")


def test_a_1_1_peer_and_a_1_2_peer_agree_on_1_1_without_a_mark_refusal() -> None:
    """A rolling upgrade, allowed explicitly (--versions 1.2,1.1,1.0 on the new side):
    the old side does not offer or know 1.2; the new side falls back. A 1.1 client
    ignores the mark (it does not know 1.2 exists)."""
    new_c, new_s = _allowing_old()
    for ccfg, scfg in (
        (dataclasses.replace(config("gateway"), versions=OLD), new_s),
        (new_c, dataclasses.replace(config("ledger"), versions=OLD)),
    ):
        c, s, out = handshake(ccfg, scfg, client_data=b"ping")
        assert out.client_error is None and out.server_error is None
        assert c.result.version == s.result.version == "MTD/1.1"
        assert out.delivered("server") == b"ping"


# ------------------------------------------------------------------ resumed (item 4)
def _resumable(versions: tuple[int, ...] | None = None):
    ccfg = dataclasses.replace(config("gateway"), ticket_cache=TicketCache(), ticket_peer="ledger")
    scfg = dataclasses.replace(config("ledger"), tickets=TicketKeys())
    if versions is not None:
        ccfg = dataclasses.replace(ccfg, versions=versions)
        scfg = dataclasses.replace(scfg, versions=versions)
    c, s, out = handshake(ccfg, scfg)
    assert out.completed("client") and len(ccfg.ticket_cache) == 1
    return ccfg, scfg


def _flip_finished(direction: str):
    def tamper(d: str, data: bytes) -> bytes:
        if d != direction:
            return data
        out = []
        for ctype, raw in split_messages(data):
            if ctype == HS and raw[0] == m.HandshakeType.FINISHED:
                raw = raw[:-1] + bytes((raw[-1] ^ 1,))
            out.append((ctype, raw))
        return join_messages(out)

    return tamper


def test_a_resumed_client_whose_finished_is_refused_never_reports_success() -> None:
    """MTD/1.1 let the client report the resumed handshake complete before the server
    had judged its Finished; the server's bad_finished then arrived in clear after the
    client's keys were on, and the client logged `decrypt_error (local)`. Now the
    client waits for the server's Finished: both sides name bad_finished."""
    ccfg, scfg = _resumable()
    c, s, out = handshake(ccfg, scfg, tamper=_flip_finished("c2s"), client_data=b"x")
    assert c.resumed and s.resumed
    assert_rejected(out, "server", Reason.BAD_FINISHED)
    assert not out.completed("client") and not out.completed("server")


def test_after_a_resumed_servers_finished_its_records_are_sealed() -> None:
    """Everything the server sends after its Finished is under its keys: the client
    refusing a damaged server Finished is heard under the client's keys, and the
    server's own later data is sealed (no record in clear after the Finished)."""
    ccfg, scfg = _resumable()
    c, s, out = handshake(ccfg, scfg, tamper=_flip_finished("s2c"))
    assert_rejected(out, "client", Reason.BAD_FINISHED, sealed=True)
    # and on success: the server's first record after its Finished is application data
    ccfg, scfg = _resumable()
    c, s, out = handshake(ccfg, scfg, client_data=b"ping")
    assert out.completed("client") and c.resumed
    assert isinstance(out.client_events[-1], HandshakeComplete)
    s.send_data(b"pong")
    record = s.data_to_send()
    assert record[0] == 23  # APPLICATION_DATA, sealed under the server's keys
    assert [e.data for e in c.receive_data(record) if isinstance(e, DataReceived)] == [b"pong"]


def test_two_mtd_1_1_peers_still_resume_in_the_old_order() -> None:
    """Wire compatibility: 1.1 peers resume as before (the server's Finished first)."""
    ccfg, scfg = _resumable(OLD)
    c, s, out = handshake(ccfg, scfg, client_data=b"ping")
    assert c.resumed and c.result.version == "MTD/1.1" and out.delivered("server") == b"ping"
    assert [(d, n) for d, n, *_ in c.ladder][-2:] == [("recv", "FINISHED"), ("send", "FINISHED")]
