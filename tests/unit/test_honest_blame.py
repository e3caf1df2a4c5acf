"""Who rejected whom, and how sure each side can be (docs/protocol.md §6; issue 30):
an alert in clear is only the peer's claim, an alert under the record keys is the
peer's word. And what a holder of the server's RSA key can do (§5)."""

from __future__ import annotations

import hashlib
import os

from mtlsdemo.explain.trace import _failure_lines
from mtlsdemo.handshake import SUITES, DataReceived, ProtocolError, Reason
from mtlsdemo.handshake import messages as m
from mtlsdemo.handshake.errors import ALERT_CODES
from mtlsdemo.handshake.keyschedule import KeySchedule
from mtlsdemo.handshake.records import ContentType, Protector
from mtlsdemo.handshake.suites import KeyExchange
from mtlsdemo.sidecar.outcome import outcome_of
from support.hskit import config, handshake, join_messages, new, pump, split_messages

RSA = next(s for s in SUITES if s.kx is KeyExchange.RSA_OAEP)
ECDHE = next(s for s in SUITES if s.kx is KeyExchange.ECDHE_X25519)


def _clear_alert(reason: Reason) -> bytes:
    return bytes((ContentType.ALERT, 1, 0, 0, 2, 2, ALERT_CODES[reason]))


def test_an_alert_injected_in_clear_mid_handshake_is_an_unverified_claim() -> None:
    """A MITM answers the ClientHello with a forged `certificate_revoked`: the
    server never refused anything, and the client must not present it as fact."""
    c, s = new("client", config("gateway")), new("server", config("ledger"))
    c.start()
    s.receive_data(c.data_to_send())  # the real server answers; the attacker drops it
    s.data_to_send()
    try:
        c.receive_data(_clear_alert(Reason.CERTIFICATE_REVOKED))
    except ProtocolError as e:
        err = e
    assert (err.reason, err.origin) == (Reason.CERTIFICATE_REVOKED, "remote_unverified")
    assert err.from_peer and "unauthenticated" in str(err)
    # everywhere it is shown or counted: the outcome (metrics label, /handshakes) ...
    assert outcome_of(c, "route", "me", "1.2.3.4:5", 0.0, err).origin == "remote_unverified"
    # ... and the trace's words
    (line,) = _failure_lines([c])
    assert "alert in clear" in line and "unauthenticated" in line
    assert "was told by" not in line


def test_a_refusal_under_the_session_keys_is_the_peers_word() -> None:
    c, s, out = handshake(config("gateway"), config("ledger"))
    assert out.client_error is None and out.server_error is None
    s.fail(Reason.DECRYPT_ERROR, "the server ends the session")  # sealed: it has keys
    try:
        c.receive_data(s.data_to_send())
    except ProtocolError as e:
        err = e
    assert (err.reason, err.origin) == (Reason.DECRYPT_ERROR, "remote")
    (line,) = _failure_lines([c])
    assert "was told by the server's alert" in line


def test_every_in_handshake_refusal_reaches_the_refused_side_as_a_claim() -> None:
    """The real refusals of the handshake (here: a foreign CA) go out in clear, so the
    refused side counts them unverified; the refusing side's own record is `local`."""
    _c, _s, out = handshake(config("gateway", issuer="other"), config("ledger"))
    assert (out.client_error.reason, out.client_error.origin) == (Reason.UNKNOWN_CA, "local")
    assert (out.server_error.reason, out.server_error.origin) == (
        Reason.UNKNOWN_CA,
        "remote_unverified",
    )


# ---------------------------------------------------------------- RSA key transport
def _run_recording(ccfg, scfg):
    """A full handshake, every flight recorded as it crossed the wire."""
    wire: list[tuple[str, bytes]] = []

    def record(direction: str, data: bytes) -> bytes:
        wire.append((direction, data))
        return data

    c, s = new("client", ccfg), new("server", scfg)
    out = pump(c, s, record)
    assert out.client_error is None and out.server_error is None
    return c, s, wire


def _session_keys_from_the_wire(wire, server_key, suite):
    """What the holder of the server's RSA private key computes from a recorded
    handshake alone: the client's traffic secret, for records as the client."""
    msgs = [(d, raw) for d, data in wire for ctype, raw in split_messages(data) if ctype == 22]
    hello = m.decode(msgs[0][1][0], msgs[0][1][4:])
    server_hello = next(
        m.decode(r[0], r[4:]) for _d, r in msgs if r[0] == m.HandshakeType.SERVER_HELLO
    )
    cke = next(
        m.decode(r[0], r[4:]) for _d, r in msgs if r[0] == m.HandshakeType.CLIENT_KEY_EXCHANGE
    )
    from mtlsdemo.handshake import kx

    premaster, ok = kx.rsa_oaep_decrypt(server_key, cke.data, os.urandom)
    assert ok
    ks = KeySchedule(premaster, hello.random, server_hello.random)
    # the transcript through the client's Finished (every handshake message but the
    # server's last Finished, which follows it)
    upto = [raw for _d, raw in msgs]
    finished = [i for i, raw in enumerate(upto) if raw[0] == m.HandshakeType.FINISHED]
    th_cf = hashlib.sha256(b"".join(upto[: finished[0] + 1])).digest()
    return Protector(suite, ks.traffic_secret("client", th_cf))


def test_the_server_rsa_key_lets_its_holder_write_as_the_client_in_a_session_the_client_opened() -> (
    None
):
    """Settled (issue 30, item 2): with RSA key transport, whoever holds the server's
    private key can take over a session an honest client opened — decrypt the
    pre-master from ClientKeyExchange, derive the keys, and send records the server
    accepts as the client's. The client's CertificateVerify is intact (it covers the
    server's random, so it cannot be replayed into another session): the server's
    belief "the client started this session" holds; "these bytes are the client's"
    does not. No signature can fix that: the session keys come from a secret the
    server's key opens. This is what RSA-OAEP gives up besides forward secrecy."""
    ccfg = config("gateway", "rsa-2048", suites=(RSA,))
    scfg = config("ledger", "rsa-2048", suites=(RSA,))
    c, s, wire = _run_recording(ccfg, scfg)
    forged = _session_keys_from_the_wire(wire, scfg.credentials.key, RSA)
    record = forged.seal(ContentType.APPLICATION_DATA, b"transfer 1000.00 to mallory")
    events = s.receive_data(record)
    assert [e.data for e in events if isinstance(e, DataReceived)] == [
        b"transfer 1000.00 to mallory"
    ]
    assert s.result.peer_identity.endswith("/sa/gateway")  # the server thinks it is the client


def test_with_ecdhe_the_server_key_gives_its_holder_no_session_keys() -> None:
    """The same attacker against an ECDHE session: the shared secret is X25519 of two
    ephemeral keys, and the server's certificate key plays no part in it, so the
    recorded handshake plus that key yield nothing that seals a record the server
    accepts (it is refused `decrypt_error`)."""
    ccfg = config("gateway", suites=(ECDHE,))
    scfg = config("ledger", suites=(ECDHE,))
    c, s, wire = _run_recording(ccfg, scfg)
    # the best the attacker can do: a key schedule over what it saw, with a guessed secret
    msgs = [raw for _d, data in wire for ctype, raw in split_messages(data) if ctype == 22]
    hello = m.decode(msgs[0][0], msgs[0][4:])
    server_hello = m.decode(msgs[1][0], msgs[1][4:])
    ks = KeySchedule(os.urandom(32), hello.random, server_hello.random)
    finished = [i for i, raw in enumerate(msgs) if raw[0] == m.HandshakeType.FINISHED]
    th_cf = hashlib.sha256(b"".join(msgs[: finished[0] + 1])).digest()
    forged = Protector(ECDHE, ks.traffic_secret("client", th_cf))
    try:
        s.receive_data(forged.seal(ContentType.APPLICATION_DATA, b"transfer 1000.00 to mallory"))
    except ProtocolError as e:
        assert e.reason is Reason.DECRYPT_ERROR
    else:
        raise AssertionError("a record sealed without the session keys was accepted")


# ---------------------------------------------------------------- blame after the signature
def _strip_staple(direction: str, data: bytes) -> bytes:
    """On the path: the client's Certificate message loses its stapled status."""
    if direction != "c2s":
        return data
    out = []
    for ctype, raw in split_messages(data):
        if ctype == 22 and raw[0] == m.HandshakeType.CERTIFICATE:
            cert = m.decode(raw[0], raw[4:])
            raw = m.encode(m.Certificate(cert.chain, b""))
        out.append((ctype, raw))
    return join_messages(out)


def test_a_staple_stripped_in_transit_is_not_blamed_on_the_peer() -> None:
    """issue 31 item 5: the server used to refuse `status_missing`, naming the client
    for a staple it did send. Now a chain or status verdict waits for the peer's
    CertificateVerify, which covers the Certificate as the peer sent it: the
    alteration shows as bad_signature, and the client is not blamed."""
    _c, _s, out = handshake(config("gateway"), config("ledger"), tamper=_strip_staple)
    assert out.server_error is not None
    assert out.server_error.reason is Reason.BAD_SIGNATURE, out.server_error


def test_a_peer_that_really_sends_no_staple_is_refused_status_missing() -> None:
    from support.hskit import creds, leaf

    unstapled = config("gateway", credentials=creds(*leaf("gateway"), staple=b""))
    _c, _s, out = handshake(unstapled, config("ledger"))
    assert (out.server_error.reason, out.server_error.origin) == (Reason.STATUS_MISSING, "local")
