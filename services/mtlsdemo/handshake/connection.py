"""The sans-I/O state machine for one side of an MTD/1 connection.

Feed it bytes with ``receive_data`` (b"" for EOF); it returns events and queues
bytes for ``data_to_send``. It never touches a socket, never reads a clock of its
own (the caller passes wall time for certificate checks and a monotonic clock for
phase timings) and raises ``ProtocolError`` for every failure, having queued the
alert for the peer first.

Flow (see docs/protocol.md):

    client                                  server
    ClientHello            ------>
                           <------          ServerHello
                                            Certificate
                                            ServerKeyShare        (ECDHE only)
                                            CertificateRequest
                                            CertificateVerify
    Certificate
    ClientKeyExchange
    CertificateVerify
    Finished               ------>
                           <------          Finished
    [application data]     <=====>          [application data]
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import constant_time, hashes

from mtlsdemo.handshake import kx
from mtlsdemo.handshake import messages as m
from mtlsdemo.handshake.config import HandshakeConfig
from mtlsdemo.handshake.errors import (
    ALERT_CODES,
    REASON_BY_CODE,
    STEP_OF_REASON,
    ProtocolError,
    Reason,
)
from mtlsdemo.handshake.events import (
    DataReceived,
    Event,
    HandshakeComplete,
    HandshakeResult,
    KeyUpdated,
    PeerClosed,
)
from mtlsdemo.handshake.keyschedule import KeySchedule, binder, sha256
from mtlsdemo.handshake.peer import (
    VerifiedPeer,
    can_receive_rsa_key_transport,
    verify_peer,
)
from mtlsdemo.handshake.records import (
    HEADER_LEN,
    MAX_PLAINTEXT,
    ContentType,
    Protector,
    plaintext_record,
    split_view,
)
from mtlsdemo.handshake.signatures import SUPPORTED_SCHEMES, Scheme, sign, signed_content, verify
from mtlsdemo.handshake.suites import BY_CODE, VERSION_1_1, KeyExchange, Suite, version_name
from mtlsdemo.handshake.tickets import (
    REFUSAL_BY_CODE,
    REFUSAL_CODES,
    ClientTicket,
    Opened,
    SessionFacts,
    TicketRefused,
)
from mtlsdemo.handshake.trace import TraceEntry
from mtlsdemo.trust.certinfo import certificate_facts

T = m.HandshakeType
ALERT_WARNING, ALERT_FATAL = 1, 2
PHASES = ("hello", "certificate_verify", "key_exchange", "finished")


class State(StrEnum):
    START = "start"
    WAIT_CLIENT_HELLO = "wait_client_hello"
    WAIT_SERVER_HELLO = "wait_server_hello"
    WAIT_CERTIFICATE = "wait_certificate"
    WAIT_SERVER_KEY_SHARE = "wait_server_key_share"
    WAIT_CERTIFICATE_REQUEST = "wait_certificate_request"
    WAIT_CERTIFICATE_VERIFY = "wait_certificate_verify"
    WAIT_CLIENT_KEY_EXCHANGE = "wait_client_key_exchange"
    WAIT_FINISHED = "wait_finished"
    CONNECTED = "connected"
    CLOSED = "closed"  # peer sent close_notify (we may still send until we close)
    FAILED = "failed"


EXPECTED = {
    State.WAIT_CLIENT_HELLO: T.CLIENT_HELLO,
    State.WAIT_SERVER_HELLO: T.SERVER_HELLO,
    State.WAIT_CERTIFICATE: T.CERTIFICATE,
    State.WAIT_SERVER_KEY_SHARE: T.SERVER_KEY_SHARE,
    State.WAIT_CERTIFICATE_REQUEST: T.CERTIFICATE_REQUEST,
    State.WAIT_CERTIFICATE_VERIFY: T.CERTIFICATE_VERIFY,
    State.WAIT_CLIENT_KEY_EXCHANGE: T.CLIENT_KEY_EXCHANGE,
    State.WAIT_FINISHED: T.FINISHED,
}
STEP_OF = {
    T.CLIENT_HELLO: "hello",
    T.SERVER_HELLO: "hello",
    T.CERTIFICATE: "certificate_verify",
    T.CERTIFICATE_REQUEST: "certificate_verify",
    T.CERTIFICATE_VERIFY: "certificate_verify",
    T.SERVER_KEY_SHARE: "key_exchange",
    T.CLIENT_KEY_EXCHANGE: "key_exchange",
    T.FINISHED: "finished",
    T.NEW_SESSION_TICKET: "finished",
}


class Connection:
    def __init__(
        self,
        role: str,
        config: HandshakeConfig,
        *,
        now: dt.datetime,
        clock: Callable[[], float],
        entropy: kx.Entropy,
    ) -> None:
        """``now``: wall time for certificate validity; ``clock``: monotonic seconds
        for step timings; ``entropy``: n -> n random bytes (randoms, key shares,
        pre-master secrets). All three are the caller's: the core reads no clock
        and no randomness of its own (``mtlsdemo.endpoint.world`` has the real ones)."""
        if role not in ("client", "server"):
            raise ValueError(f"role must be client or server, not {role!r}")
        self.role = role
        self.peer_role = "server" if role == "client" else "client"
        self.config = config
        self.now = now
        self.clock = clock
        self.entropy = entropy
        self.state = State.START if role == "client" else State.WAIT_CLIENT_HELLO
        self.trace: list[TraceEntry] = []
        # Always on, unlike the trace: the handshake's messages as (direction, name,
        # wire bytes, step, clock) for the console's ladders; a tuple per message,
        # nothing after the handshake.
        self.ladder: list[tuple[str, str, int, str, float]] = []
        self.failed_step = ""  # the step a failure stopped the handshake in
        self.peer_certificate: m.Certificate | None = None  # as received, verified or not
        self.result: HandshakeResult | None = None
        self.error: ProtocolError | None = None
        self.phases = dict.fromkeys(PHASES, 0.0)
        self.started_at: float | None = None
        self._in = bytearray()
        self._out: list[bytes] = []
        self._hs = m.MessageBuffer(config.limits.max_handshake_message)
        self._transcript = hashes.Hash(hashes.SHA256())  # every handshake message
        self._sig_transcript = hashes.Hash(hashes.SHA256())  # client random + from ServerHello on
        self._random = entropy(m.RANDOM_LEN)
        self._client_random = self._random if role == "client" else b""
        self._server_random = self._random if role == "server" else b""
        self._offered: tuple[int, ...] = ()
        self.suite: Suite | None = None
        self.version = 0
        self.peer: VerifiedPeer | None = None
        self._ks: KeySchedule | None = None
        self._x25519: Any = None
        self._peer_share = b""
        self._send: Protector | None = None
        self._recv: Protector | None = None
        self._pending_recv_secret = b""
        self._shared_for_trace = b""
        self._close_sent = False
        # session resumption (MTD/1.1, tickets.py)
        self.resumed = False
        self.resumption = ""  # what happened with it, in words (the result carries it)
        self.resume_refusal: str | None = None  # a refused ticket's reason (metrics)
        self.resume_refused_by = "local"  # or "remote": the server's ServerHello said so
        self._refusal_code = 0  # server: the refused ticket's wire code (0: none offered)
        self._ticket: ClientTicket | None = None  # client: the ticket offered
        self._resumed_facts: SessionFacts | None = None  # what a ticket said of the peer
        self._opened: Opened | None = None  # server: the ticket being resumed
        # client: a ticket the ServerHello refused, and why (acted on once authenticated)
        self._refused: tuple[ClientTicket, str] | None = None
        self._psk = b""
        self._th_cf = b""  # client: transcript hash through its Finished (a ticket's psk)
        self._nst: m.NewSessionTicket | None = None  # client: the ticket the server sent
        self._last_raw = b""  # the handshake message being handled, as received
        self.ticket_issued = False  # server: a NewSessionTicket went out
        # application data only (not alerts or key updates), across key updates
        self._app = [0, 0, 0, 0]  # records sent, bytes sent, records received, bytes received

    # ------------------------------------------------------------------ public API
    def start(self) -> None:
        """Client: queue the ClientHello. (A server starts by receiving one.)"""
        if self.role != "client" or self.state is not State.START:
            raise RuntimeError("start() is for a client that has not started")
        self.started_at = self.clock()
        t0 = self.started_at
        self._offered = tuple(s.code for s in self.config.suites)
        offer = self._resume_offer()
        hello = m.ClientHello(self.config.versions, self._random, self._offered, offer)
        if offer is not None and self._ticket is not None:
            hello = dataclasses.replace(
                hello,
                resume=dataclasses.replace(
                    offer,
                    binder=binder(self._ticket.psk, sha256(m.binder_input(m.encode(hello)))),
                ),
            )
        self._sig_transcript.update(self._random)
        self._send_handshake([hello])
        self.phases["hello"] += self.clock() - t0
        self.state = State.WAIT_SERVER_HELLO

    @property
    def waiting_for(self) -> str:
        """What the connection needs next, for deadlines and error messages."""
        exp = EXPECTED.get(self.state)
        if exp is not None:
            return f"{exp.name} from the {self.peer_role}"
        return {
            State.START: "start()",
            State.CONNECTED: "application data",
            State.CLOSED: "nothing (peer closed)",
            State.FAILED: "nothing (failed)",
        }[self.state]

    @property
    def handshake_done(self) -> bool:
        return self.state in (State.CONNECTED, State.CLOSED)

    def receive_data(self, data: bytes) -> list[Event]:
        if self.state is State.FAILED:
            raise self.error or ProtocolError(Reason.INTERNAL_ERROR, "connection failed")
        if self.started_at is None:
            self.started_at = self.clock()
        if not data:
            return self._eof()
        events: list[Event] = []
        try:
            for ctype, hdr, payload in self._take_records(data):
                events.extend(self._record(ctype, hdr, payload))
            if len(self._in) + self._hs.pending > self.config.limits.max_buffered:
                raise ProtocolError(
                    Reason.RECORD_OVERFLOW,
                    f"{len(self._in) + self._hs.pending} bytes buffered "
                    f"(limit {self.config.limits.max_buffered})",
                )
        except ProtocolError as e:
            e.events = events
            self._failed(e)
            raise
        except Exception as e:  # a bug, not the peer's fault: still fail closed, with a name
            err = ProtocolError(Reason.INTERNAL_ERROR, f"{type(e).__name__}: {e}")
            err.events = events
            self._failed(err)
            raise err from e
        return events

    def _take_records(self, data: bytes) -> list[tuple[int, bytes, Any]]:
        """Every complete record, all headers checked before any is processed. A
        record left incomplete by the last read is finished from the head of this
        one (copied); the rest is cut out of ``data`` without copying; only an
        incomplete tail is kept."""
        data = bytes(data)  # a caller's bytearray may change under our views
        records: list[tuple[int, bytes, Any]] = []
        pos = 0
        while self._in and pos < len(data):
            have = len(self._in)
            if have < HEADER_LEN:
                take = HEADER_LEN - have
            else:
                take = HEADER_LEN + ((self._in[3] << 8) | self._in[4]) - have
            self._in += data[pos : pos + take]
            pos += take
            found, used = split_view(bytes(self._in))  # at most one record: small
            records.extend(found)
            del self._in[:used]
        if pos < len(data):
            found, used = split_view(data, pos)
            records.extend(found)
            self._in += data[used:]
        return records

    def send_data(self, data: bytes) -> None:
        if self.state not in (State.CONNECTED, State.CLOSED) or self._send is None:
            raise RuntimeError(f"cannot send application data in state {self.state}")
        if self._close_sent:
            raise RuntimeError("cannot send after close()")
        # no copy of the plaintext: the AEAD reads each record's slice of it directly,
        # and header and ciphertext stay two buffers (data_to_send_parts)
        view = memoryview(data)
        for i in range(0, len(view), MAX_PLAINTEXT):
            self._maybe_auto_update()
            try:
                self._out.extend(
                    self._send.seal_parts(ContentType.APPLICATION_DATA, view[i : i + MAX_PLAINTEXT])
                )
            except ProtocolError as e:  # sequence exhausted: end the session, and say why
                self._failed(e)
                raise
        self._app[0] += -(-len(data) // MAX_PLAINTEXT)
        self._app[1] += len(data)

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def data_to_send_parts(self) -> list[bytes]:
        """The same bytes as ``data_to_send``, as the buffers they were made in (for
        a vectored write: no join)."""
        out, self._out = self._out, []
        return out

    def close(self) -> None:
        """Queue close_notify: we send no more. Idempotent."""
        if self._close_sent or self.state is State.FAILED:
            return
        self._close_sent = True
        self._queue_alert(Reason.CLOSE_NOTIFY, ALERT_WARNING)

    def update_keys(self, request_peer: bool = False) -> None:
        """Send a KeyUpdate and move our sending keys forward; optionally ask the
        peer to move its sending keys too."""
        if self._send is None or self._close_sent:
            raise RuntimeError("no session keys to update")
        self._out.append(
            self._send.seal(ContentType.KEY_UPDATE, bytes((1 if request_peer else 0,)))
        )
        self._send.update()
        self._trace(
            "send",
            "record",
            "KeyUpdate",
            1,
            "data",
            {"request_peer": request_peer, "generation": self._send.generation},
        )

    def fail(self, reason: Reason, detail: str = "") -> ProtocolError:
        """A failure found by the caller (e.g. handshake deadline): queue the alert
        and return the error to raise or log."""
        e = ProtocolError(reason, detail)
        self._failed(e)
        return e

    @property
    def send_generation(self) -> int:
        return self._send.generation if self._send else 0

    @property
    def receive_generation(self) -> int:
        return self._recv.generation if self._recv else 0

    @property
    def counters(self) -> tuple[int, int, int, int]:
        """Application data: (records sent, bytes sent, records received, bytes received)."""
        return tuple(self._app)  # type: ignore[return-value]

    @property
    def peer_identity(self) -> str | None:
        if self.peer is not None:
            return self.peer.identity
        if self._resumed_facts is not None:
            return self._resumed_facts.peer_identity
        return self.error.peer_identity if self.error else None

    # ------------------------------------------------------------------ internals
    def _failed(self, e: ProtocolError) -> None:
        if self.state is State.FAILED:
            return
        waiting = EXPECTED.get(self.state)
        if self.result is not None:
            self.failed_step = "data"
        elif e.origin == "remote" and e.reason in STEP_OF_REASON:
            self.failed_step = STEP_OF_REASON[e.reason]  # where the peer stopped, not us
        else:
            self.failed_step = STEP_OF[waiting] if waiting else "hello"
        self.state = State.FAILED
        self.error = e
        if e.origin == "local" and e.reason is not Reason.TRUNCATED:
            self._queue_alert(e.reason, ALERT_FATAL)

    def _queue_alert(self, reason: Reason, level: int) -> None:
        body = bytes((level, ALERT_CODES[reason]))
        if self._send is not None:
            try:
                self._out.append(self._send.seal(ContentType.ALERT, body))
            except ProtocolError:  # sequence exhausted: nothing more can be sent under this key
                return
        else:
            self._out.append(plaintext_record(ContentType.ALERT, body))
        if self.result is None:
            self.ladder.append(("send", reason.value, 2, "alert", self.clock()))
        self._trace("send", "alert", reason.value, 2, "alert", {"level": level})

    def _eof(self) -> list[Event]:
        if self.state is State.CLOSED:
            return []
        e = ProtocolError(
            Reason.TRUNCATED, f"connection closed without close_notify while {self.state.value}"
        )
        self._failed(e)
        raise e

    def _seal(self, ctype: ContentType, payload: bytes) -> bytes:
        assert self._send is not None
        return self._send.seal(ctype, payload)

    def _maybe_auto_update(self) -> None:
        s = self._send
        assert s is not None
        cfg = self.config
        if (cfg.key_update_records and s.records >= cfg.key_update_records) or (
            cfg.key_update_bytes and s.bytes >= cfg.key_update_bytes
        ):
            self.update_keys()

    def _record(self, ctype: int, hdr: bytes, payload: bytes) -> list[Event]:
        if self.state is State.CLOSED:
            raise ProtocolError(Reason.UNEXPECTED_MESSAGE, "record after close_notify")
        if self._recv is not None:
            if ctype == ContentType.HANDSHAKE:
                raise ProtocolError(
                    Reason.UNEXPECTED_MESSAGE, "handshake record after the handshake"
                )
            plaintext = self._recv.open(hdr, payload)
            if ctype == ContentType.APPLICATION_DATA:
                if not plaintext:
                    raise ProtocolError(Reason.DECODE_ERROR, "empty application data record")
                self._app[2] += 1
                self._app[3] += len(plaintext)
                return [DataReceived(plaintext)]
            if ctype == ContentType.ALERT:
                return self._alert(plaintext)
            # KEY_UPDATE
            if len(plaintext) != 1 or plaintext[0] > 1:
                raise ProtocolError(Reason.DECODE_ERROR, "malformed KeyUpdate")
            self._recv.update()
            self._trace(
                "recv",
                "record",
                "KeyUpdate",
                1,
                "data",
                {"request_peer": bool(plaintext[0]), "generation": self._recv.generation},
            )
            events: list[Event] = [KeyUpdated("receive", self._recv.generation)]
            if plaintext[0] and not self._close_sent:
                self.update_keys(request_peer=False)
                events.append(KeyUpdated("send", self._send.generation if self._send else 0))
            return events
        if ctype == ContentType.ALERT:
            return self._alert(payload)
        if ctype != ContentType.HANDSHAKE:
            raise ProtocolError(
                Reason.UNEXPECTED_MESSAGE,
                f"{ContentType(ctype).name} record before the handshake completed",
            )
        if self.state not in EXPECTED:
            raise ProtocolError(
                Reason.UNEXPECTED_MESSAGE, f"handshake record in state {self.state}"
            )
        if not payload:
            raise ProtocolError(Reason.DECODE_ERROR, "empty handshake record")
        out: list[Event] = []
        for msg_type, raw in self._hs.feed(payload):
            out.extend(self._handshake(msg_type, raw))
        return out

    def _alert(self, body: bytes) -> list[Event]:
        if len(body) != 2:
            raise ProtocolError(Reason.DECODE_ERROR, f"alert of {len(body)} bytes")
        level, code = body
        reason = REASON_BY_CODE.get(code)
        if reason is None:
            raise ProtocolError(Reason.DECODE_ERROR, f"unknown alert code {code}")
        if self.result is None:
            self.ladder.append(("recv", reason.value, 2, "alert", self.clock()))
        self._trace("recv", "alert", reason.value, 2, "alert", {"level": level})
        if reason is Reason.CLOSE_NOTIFY:
            if not self.handshake_done:
                raise ProtocolError(
                    Reason.CLOSE_NOTIFY, "peer closed during the handshake", origin="remote"
                )
            self.state = State.CLOSED
            return [PeerClosed()]
        raise ProtocolError(
            reason, f"the {self.peer_role} rejected the connection", origin="remote"
        )

    # --- handshake messages ---
    def _handshake(self, msg_type: int, raw: bytes) -> list[Event]:
        expected = EXPECTED.get(self.state)
        if (
            msg_type == T.NEW_SESSION_TICKET
            and self.state is State.WAIT_FINISHED
            and self.role == "client"
            and self.version >= VERSION_1_1
            and not self.resumed
            and self._nst is None
        ):
            expected = T.NEW_SESSION_TICKET  # optional, once, before the server's Finished
        if msg_type != expected:
            got = T(msg_type).name if msg_type in T._value2member_map_ else f"type {msg_type}"
            step = (
                STEP_OF.get(T(msg_type), "hello") if msg_type in T._value2member_map_ else "hello"
            )
            self.ladder.append(("recv", got, len(raw), step, self.clock()))
            raise ProtocolError(
                Reason.UNEXPECTED_MESSAGE, f"got {got} while waiting for {self.waiting_for}"
            )
        self.ladder.append(("recv", T(msg_type).name, len(raw), STEP_OF[T(msg_type)], self.clock()))
        msg = m.decode(msg_type, raw[4:])
        if type(msg) is m.Certificate:
            self.peer_certificate = msg
        if self.config.trace:
            self._trace(
                "recv",
                "handshake",
                T(msg_type).name,
                len(raw),
                STEP_OF[T(msg_type)],
                self._fields(msg),
            )
        # the running hashes are forked only for the messages whose handler needs
        # the transcript before them (Finished: its MAC; CertificateVerify: the signature)
        th_before = self._transcript.copy().finalize() if msg_type == T.FINISHED else b""
        sig_before = (
            self._sig_transcript.copy().finalize() if msg_type == T.CERTIFICATE_VERIFY else b""
        )
        self._transcript.update(raw)
        if msg_type != T.CLIENT_HELLO:
            self._sig_transcript.update(raw)
        handler = HANDLERS[(self.role, T(msg_type))]
        self._last_raw = raw
        return handler(self, msg, th_before, sig_before) or []

    def _send_handshake(self, msgs: list[m.Message]) -> None:
        chunk = bytearray()
        for msg in msgs:
            raw = m.encode(msg)
            self._transcript.update(raw)
            if msg.type != T.CLIENT_HELLO:
                self._sig_transcript.update(raw)
            self.ladder.append(("send", msg.type.name, len(raw), STEP_OF[msg.type], self.clock()))
            if self.config.trace:
                self._trace(
                    "send",
                    "handshake",
                    msg.type.name,
                    len(raw),
                    STEP_OF[msg.type],
                    self._fields(msg),
                )
            chunk += raw
        # One flight, as few records as the size limit allows: one TCP write, one RTT.
        for i in range(0, len(chunk), MAX_PLAINTEXT):
            self._out.append(
                plaintext_record(ContentType.HANDSHAKE, bytes(chunk[i : i + MAX_PLAINTEXT]))
            )

    def _fields(self, msg: m.Message) -> dict[str, Any]:
        """describe(msg), plus what only the connection knows (the suite's key exchange)."""
        fields = describe(msg)
        if isinstance(msg, m.ServerKeyShare) and self.resumed:
            fields["carries"] = (
                "the server's ephemeral X25519 public key (resumed: authenticated by the "
                "Finished MACs under the ticket's secret, not by a signature)"
            )
        if isinstance(msg, m.ClientKeyExchange) and self.suite is not None:
            fields["carries"] = (
                "the client's ephemeral X25519 public key (the secret never travels)"
                if self.suite.kx is KeyExchange.ECDHE_X25519
                else "a random 48-byte pre-master secret, RSA-OAEP-encrypted to the server's "
                "certificate key (only its private key opens it)"
            )
        return fields

    def _trace_keys(self, shared: bytes, th_cf: bytes) -> None:
        """Step 3's result for the trace: the key schedule's labels with short
        fingerprints (SHA-256, 8 bytes) of what each derives; the values themselves
        only with ``trace_secrets`` (a teaching option)."""
        if not self.config.trace or self._ks is None:
            return
        c_ap = self._ks.traffic_secret("client", th_cf)
        s_ap = self._ks.traffic_secret("server", th_cf)
        values = {
            "shared secret (ECDHE output, pre-master, or resumed: X25519 output || ticket secret)": shared,
            "master = HKDF-Extract(client_random || server_random, shared)": self._ks.master,
            'client traffic = Expand-Label(master, "c ap traffic", H(..client Finished))': c_ap,
            'server traffic = Expand-Label(master, "s ap traffic", H(..client Finished))': s_ap,
        }
        fields: dict[str, Any] = {
            "transcript_hash": th_cf.hex(),
            "fingerprints": {k: fingerprint(v) for k, v in values.items()},
        }
        if self.config.trace_secrets:
            fields["secrets"] = {k: v.hex() for k, v in values.items()}
        self._trace("derive", "keys", "KEY_SCHEDULE", 0, "key_exchange", fields)

    def _phase(self, name: str, t0: float) -> float:
        t1 = self.clock()
        self.phases[name] += t1 - t0
        return t1

    def _trace(
        self, direction: str, kind: str, name: str, size: int, step: str, fields: dict[str, Any]
    ) -> None:
        if self.config.trace:
            self.trace.append(
                TraceEntry(self.role, direction, kind, name, size, step, fields, self.clock())
            )

    def _certificate_verify(self, signer: str, sig_hash: bytes) -> m.CertificateVerify:
        cred = self.config.credentials
        return m.CertificateVerify(
            cred.scheme, sign(cred.key, cred.scheme, signed_content(signer, sig_hash))
        )

    def _check_certificate_verify(self, msg: m.CertificateVerify, sig_hash: bytes) -> None:
        assert self.peer is not None
        verify(
            self.peer.public_key,
            msg.scheme,
            msg.signature,
            signed_content(self.peer_role, sig_hash),
        )
        self.peer.checks.append(
            f"CertificateVerify ({_scheme_name(msg.scheme)}) proves the {self.peer_role} "
            "holds the certificate's private key"
        )

    def _complete(self) -> list[Event]:
        assert self.suite and self.started_at is not None
        self.state = State.CONNECTED
        if self._refused is not None:  # the Finished covered the ServerHello: it is true
            assert self.config.ticket_cache is not None
            ticket, why = self._refused
            self.config.ticket_cache.drop(self.config.ticket_peer, ticket)
            self.resume_refusal, self.resume_refused_by = why, "remote"
        cred = self.config.credentials
        if self.resumed:
            facts = self._resumed_facts
            assert facts is not None
            identity, subject = facts.peer_identity, facts.peer_subject
            not_after = dt.datetime.fromtimestamp(facts.peer_not_after, dt.UTC)
            checks: tuple[str, ...] = tuple(self._resume_checks(facts))
            status_problem = None
        else:
            assert self.peer is not None
            identity, subject = self.peer.identity, self.peer.subject
            not_after = self.peer.leaf.not_valid_after_utc
            checks = tuple(self.peer.checks)
            problem = self.peer.status_problem
            status_problem = problem.reason.value if problem else None
        self.result = HandshakeResult(
            role=self.role,
            version=version_name(self.version),
            suite=self.suite.name,
            key_exchange=self.suite.kx.value,
            local_identity=cred.identity,
            peer_identity=identity,
            peer_subject=subject,
            peer_not_after=not_after,
            checks=checks,
            phases=dict(self.phases),
            duration=self.clock() - self.started_at,
            status_problem=status_problem,
            resumed=self.resumed,
            resumption=self.resumption,
        )
        return [HandshakeComplete(self.result)]

    # --- session resumption (MTD/1.1; tickets.py) ---
    def _resume_checks(self, facts: SessionFacts) -> list[str]:
        """What a resumed handshake re-checked, for the trace and the console."""
        now = int(self.now.timestamp())
        out = [
            f"resumed from a session ticket issued {now - facts.issued_at}s ago "
            f"(lifetime {facts.lifetime}s, at most {facts.max_uses} uses)",
            "binder and both Finished MACs prove the peer holds the ticket's secret",
            f"identity {facts.peer_identity} allowed by the current policy",
            "its certificate (verified when the ticket was issued) valid until "
            f"{dt.datetime.fromtimestamp(facts.peer_not_after, dt.UTC):%Y-%m-%d %H:%M:%SZ}",
            "trust bundle unchanged since the ticket was issued",
        ]
        if facts.status_until:
            out.append(
                "its stapled status (checked when the ticket was issued) good until "
                f"{dt.datetime.fromtimestamp(facts.status_until, dt.UTC):%Y-%m-%d %H:%M:%SZ}"
            )
        out.append("fresh X25519 shares on both sides: the session keeps forward secrecy")
        return out

    def _available_suites(self) -> tuple[int, ...]:
        return tuple(s.code for s in self.config.suites)

    def _resume_offer(self) -> m.ResumeOffer | None:
        """Client: the newest ticket for this peer that still passes every check."""
        cache, peer = self.config.ticket_cache, self.config.ticket_peer
        if cache is None or VERSION_1_1 not in self.config.versions:
            return None
        if self.config.peer.server_name:
            self.resumption = "full (a server-name check needs the certificate)"
            return None
        while (ticket := cache.take(peer)) is not None:
            try:
                ticket.facts.recheck(
                    self.now,
                    self.config.trust.fingerprint,
                    self.config.credentials.fingerprint,
                    self.config.peer.allows,
                    self._available_suites(),
                    self.config.peer.revoked,
                )
            except TicketRefused as e:
                cache.drop(peer, ticket)
                self.resumption = f"full: ticket not offered: {e}"
                self.resume_refusal = e.refusal.value
                continue
            self._ticket = ticket
            self._x25519, public = kx.x25519_keypair(self.entropy)
            return m.ResumeOffer(ticket.ticket, public)
        if not self.resumption:
            self.resumption = "full (no ticket held for this peer)"
        return None

    def _try_resume(self, hello: m.ClientHello, usable: list[Suite]) -> Opened | None:
        """Server: open and re-check an offered ticket; None (and the reason kept)
        when it cannot be used. A bad binder is fatal: the hello was altered or the
        client does not hold the ticket's secret."""
        tickets = self.config.tickets
        assert hello.resume is not None
        if tickets is None:
            self.resumption = "full: this server does not resume sessions"
            return None
        try:
            opened = tickets.open(hello.resume.ticket)
            # the binder first: only who holds the ticket's secret learns why it would be
            # refused (the ticket itself travels in clear; its holder could otherwise ask
            # "is this client still allowed, expired, revoked?")
            want = binder(opened.psk, sha256(m.binder_input(self._last_raw)))
            if not constant_time.bytes_eq(want, hello.resume.binder):
                raise ProtocolError(
                    Reason.BAD_FINISHED,
                    "resumption binder does not match: the ClientHello was altered, or the "
                    "client does not hold the ticket's secret",
                )
            opened.facts.recheck(
                self.now,
                self.config.trust.fingerprint,
                self.config.credentials.fingerprint,
                self.config.peer.allows,
                tuple(s.code for s in usable),
                self.config.peer.revoked,
            )
            tickets.check_use(opened)  # used up: refused (nothing is counted yet)
            self._opened = opened  # its use is counted when the client's Finished verifies
        except TicketRefused as e:
            self.resumption = f"full: ticket refused: {e}"
            self.resume_refusal = e.refusal.value
            self._refusal_code = REFUSAL_CODES[e.refusal]  # told in our ServerHello
            return None
        return opened

    def _server_resume(self, hello: m.ClientHello, opened: Opened) -> None:
        """Server: ServerHello (resumed), ServerKeyShare, Finished; then wait for the
        client's Finished. No certificates, no signatures."""
        assert hello.resume is not None
        self.suite = BY_CODE[opened.facts.suite]
        self.resumed = True
        self.resumption = "resumed"
        self._resumed_facts = opened.facts
        priv, public = kx.x25519_keypair(self.entropy)
        shared = kx.x25519_shared(priv, hello.resume.share)
        self._ks = KeySchedule(shared + opened.psk, self._client_random, self._server_random)
        if self.config.trace:  # kept only for the trace's key-schedule entry
            self._shared_for_trace = shared + opened.psk
        self._send_handshake(
            [
                m.ServerHello(self.version, self._random, self.suite.code, 1, 0),
                m.ServerKeyShare(m.X25519_GROUP, public),
            ]
        )
        fin = self._ks.finished_mac("server", self._transcript.copy().finalize())
        self._send_handshake([m.Finished(fin)])
        self.state = State.WAIT_FINISHED

    def _issue_ticket(self) -> None:
        """Server, full MTD/1.1 handshake: a NewSessionTicket before our Finished
        (so the Finished covers it)."""
        tickets, peer = self.config.tickets, self.peer
        if tickets is None or self.version < VERSION_1_1 or peer is None or self.suite is None:
            return
        assert self._ks is not None
        psk = self._ks.resumption_psk(self._transcript.copy().finalize())
        facts = self._facts_of_peer(tickets.lifetime, tickets.max_uses)
        ticket = tickets.seal(psk, facts, self.now, self.entropy)
        self._send_handshake([m.NewSessionTicket(tickets.lifetime, tickets.max_uses, ticket)])
        self.ticket_issued = True

    def _facts_of_peer(self, lifetime: int, max_uses: int) -> SessionFacts:
        peer = self.peer
        assert peer is not None and self.suite is not None
        return SessionFacts(
            peer_identity=peer.identity,
            peer_subject=peer.subject,
            peer_not_after=int(peer.leaf.not_valid_after_utc.timestamp()),
            status_until=int(peer.status_until.timestamp()) if peer.status_until else 0,
            trust=self.config.trust.fingerprint,
            own=self.config.credentials.fingerprint,
            suite=self.suite.code,
            issued_at=int(self.now.timestamp()),
            lifetime=lifetime,
            max_uses=max_uses,
            peer_issuer=peer.leaf.issuer.public_bytes(),
            peer_serial=peer.leaf.serial_number,
        )

    def _keep_ticket(self) -> None:
        """Client, after the server's Finished verified (it covers the ticket)."""
        nst, cache = self._nst, self.config.ticket_cache
        if nst is None or cache is None or self._ks is None:
            return
        psk = self._ks.resumption_psk(self._th_cf)
        facts = self._facts_of_peer(nst.lifetime, nst.max_uses)
        cache.put(self.config.ticket_peer, ClientTicket(nst.ticket, psk, facts))

    # --- client side ---
    def _on_client_server_hello(self, msg: m.ServerHello, _th: bytes, _sig: bytes) -> None:
        t0 = self.clock()
        if msg.version not in self.config.versions:
            raise ProtocolError(
                Reason.UNSUPPORTED_VERSION,
                f"server chose version 0x{msg.version:04x}, which was not offered",
            )
        if msg.suite not in self._offered:
            raise ProtocolError(
                Reason.ILLEGAL_PARAMETER,
                f"server chose suite 0x{msg.suite:04x}, which was not offered",
            )
        if (msg.resumed is None) != (msg.version < VERSION_1_1):
            raise ProtocolError(
                Reason.DECODE_ERROR,
                f"ServerHello for {version_name(msg.version)} "
                + ("lacks" if msg.resumed is None else "carries")
                + " the resumption fields",
            )
        self.version, self.suite = msg.version, BY_CODE[msg.suite]
        self._server_random = msg.random
        self._phase("hello", t0)
        if msg.resumed:
            if self._ticket is None or msg.suite != self._ticket.facts.suite:
                raise ProtocolError(
                    Reason.ILLEGAL_PARAMETER,
                    "server resumed a session that was not offered, or with another suite",
                )
            self.resumed = True
            self.resumption = "resumed"
            self._resumed_facts = self._ticket.facts
            self.state = State.WAIT_SERVER_KEY_SHARE
            return
        if self._ticket is not None:  # offered, not taken: the server says why
            refusal = REFUSAL_BY_CODE.get(msg.refusal)
            why = refusal.value if refusal else f"code {msg.refusal}"
            self.resumption = f"full: ticket refused by the server: {why}"
            # nothing authenticates this byte yet: the ticket is dropped and the refusal
            # counted only once the server's Finished (over this ServerHello) verifies
            # (_complete); a forged refusal fails the handshake and leaves the ticket
            self._refused = (self._ticket, why)
            self._ticket = None
            self._x25519 = None
        self.state = State.WAIT_CERTIFICATE

    def _on_client_certificate(self, msg: m.Certificate, _th: bytes, _sig: bytes) -> None:
        t0 = self.clock()
        self.peer = verify_peer(
            msg.chain,
            self.config.trust,
            "server",
            self.config.peer,
            self.now,
            status=msg.status,
            require_status=self.config.require_status,
        )
        assert self.suite is not None
        if self.suite.kx is KeyExchange.RSA_OAEP:
            if not can_receive_rsa_key_transport(self.peer.leaf):
                raise ProtocolError(
                    Reason.ILLEGAL_PARAMETER,
                    "RSA-OAEP suite chosen but the server key cannot encrypt "
                    "(needs RSA with keyEncipherment)",
                )
            self.state = State.WAIT_CERTIFICATE_REQUEST
        else:
            self.state = State.WAIT_SERVER_KEY_SHARE
        self._phase("certificate_verify", t0)

    def _on_client_server_key_share(self, msg: m.ServerKeyShare, _th: bytes, _sig: bytes) -> None:
        if msg.group != m.X25519_GROUP:
            raise ProtocolError(
                Reason.ILLEGAL_PARAMETER, f"key share group 0x{msg.group:04x} is not X25519"
            )
        self._peer_share = msg.public
        if self.resumed:
            assert self._ticket is not None
            shared = kx.x25519_shared(self._x25519, msg.public)
            self._x25519 = None
            self._ks = KeySchedule(
                shared + self._ticket.psk, self._client_random, self._server_random
            )
            if self.config.trace:
                self._shared_for_trace = shared + self._ticket.psk
            self.state = State.WAIT_FINISHED
            return
        self.state = State.WAIT_CERTIFICATE_REQUEST

    def _on_client_certificate_request(
        self, msg: m.CertificateRequest, _th: bytes, _sig: bytes
    ) -> None:
        if self.config.credentials.scheme not in msg.schemes:
            raise ProtocolError(
                Reason.NO_COMMON_SUITE,
                f"server accepts none of our signature scheme {self.config.credentials.scheme.name}",
            )
        self.state = State.WAIT_CERTIFICATE_VERIFY

    def _on_client_certificate_verify(
        self, msg: m.CertificateVerify, _th: bytes, sig: bytes
    ) -> None:
        t0 = self.clock()
        self._check_certificate_verify(msg, sig)
        t0 = self._phase("certificate_verify", t0)
        # Our flight: Certificate, ClientKeyExchange, CertificateVerify, Finished.
        assert self.suite is not None and self.peer is not None
        flight_start = len(self._out)
        cert_msg = m.Certificate(self.config.credentials.chain_der, self.config.credentials.status)
        if self.suite.kx is KeyExchange.ECDHE_X25519:
            priv, public = kx.x25519_keypair(self.entropy)
            shared = kx.x25519_shared(priv, self._peer_share)
            cke = m.ClientKeyExchange(public)
        else:
            shared = kx.new_premaster(self.entropy)
            cke = m.ClientKeyExchange(kx.rsa_oaep_encrypt(self.peer.public_key, shared))
        self._send_handshake([cert_msg, cke])
        self._ks = KeySchedule(shared, self._client_random, self._server_random)
        t0 = self._phase("key_exchange", t0)
        cv = self._certificate_verify("client", self._sig_transcript.copy().finalize())
        self._send_handshake([cv])
        t0 = self._phase("certificate_verify", t0)
        fin = m.Finished(self._ks.finished_mac("client", self._transcript.copy().finalize()))
        self._send_handshake([fin])
        th_cf = self._th_cf = self._transcript.copy().finalize()
        self._send = Protector(
            self.suite, self._ks.traffic_secret("client", th_cf), self.config.limits.max_seq
        )
        self._pending_recv_secret = self._ks.traffic_secret("server", th_cf)
        self._trace_keys(shared, th_cf)
        self._merge_handshake_records(flight_start)
        self._phase("finished", t0)
        self.state = State.WAIT_FINISHED

    def _on_client_finished(self, msg: m.Finished, th: bytes, _sig: bytes) -> list[Event]:
        t0 = self.clock()
        assert self._ks is not None and self.suite is not None
        if not self._ks.check_finished("server", th, msg.verify_data):
            raise ProtocolError(
                Reason.BAD_FINISHED, "server Finished does not match our transcript"
            )
        if self._hs.pending:
            raise ProtocolError(Reason.UNEXPECTED_MESSAGE, "handshake bytes after Finished")
        if self.resumed:  # our Finished answers the server's; then keys, as in a full one
            fin = self._ks.finished_mac("client", self._transcript.copy().finalize())
            self._send_handshake([m.Finished(fin)])
            th_cf = self._transcript.copy().finalize()
            self._send = Protector(
                self.suite, self._ks.traffic_secret("client", th_cf), self.config.limits.max_seq
            )
            self._pending_recv_secret = self._ks.traffic_secret("server", th_cf)
            self._trace_keys(self._shared_for_trace, th_cf)
            self._shared_for_trace = b""
        self._recv = Protector(self.suite, self._pending_recv_secret, self.config.limits.max_seq)
        self._keep_ticket()
        self._phase("finished", t0)
        return self._complete()

    def _on_client_new_session_ticket(
        self, msg: m.NewSessionTicket, _th: bytes, _sig: bytes
    ) -> None:
        self._nst = msg  # kept once the server's Finished (which covers it) verifies

    # --- server side ---
    def _on_server_client_hello(self, msg: m.ClientHello, _th: bytes, _sig: bytes) -> None:
        t0 = self.clock()
        flight_start = len(self._out)
        self._client_random = msg.random
        self._sig_transcript.update(msg.random)
        common = [v for v in self.config.versions if v in msg.versions]
        if not common:
            raise ProtocolError(
                Reason.UNSUPPORTED_VERSION,
                "no common version: client offers " + ", ".join(f"0x{v:04x}" for v in msg.versions),
            )
        self.version = max(common)
        cred = self.config.credentials
        ours = [s for s in self.config.suites if cred.supports(s)]
        offered = [BY_CODE[c] for c in msg.suites if c in BY_CODE]
        if self.config.server_preference:
            chosen = next((s for s in ours if s in offered), None)
        else:
            chosen = next((s for s in offered if s in ours), None)
        if chosen is None:
            unusable = [s.name for s in offered if s in self.config.suites and s not in ours]
            why = (
                f"; {', '.join(unusable)} needs an RSA key with keyEncipherment and this "
                f"server's key is {cred.scheme.name.split('_')[0]}"
                if unusable
                else ""
            )
            names = [BY_CODE[c].name if c in BY_CODE else f"0x{c:04x}" for c in msg.suites]
            raise ProtocolError(
                Reason.NO_COMMON_SUITE,
                f"none of the client's suites is enabled here (client: {', '.join(names)}; "
                f"server: {', '.join(s.name for s in ours)}){why}",
            )
        if msg.resume is None:
            self.resumption = "full (no ticket offered)"
        else:
            if self.version < VERSION_1_1:
                raise ProtocolError(
                    Reason.ILLEGAL_PARAMETER, "a resumption offer in an MTD/1.0 ClientHello"
                )
            usable = [s for s in offered if s in ours]
            opened = self._try_resume(msg, usable)
            if opened is not None:
                self._server_resume(msg, opened)
                self._phase("hello", t0)
                self._merge_handshake_records(flight_start)
                return
        self.suite = chosen
        if self.version >= VERSION_1_1:
            hello = m.ServerHello(self.version, self._random, chosen.code, 0, self._refusal_code)
        else:
            hello = m.ServerHello(self.version, self._random, chosen.code)
        self._send_handshake([hello])
        t0 = self._phase("hello", t0)
        flight: list[m.Message] = [m.Certificate(cred.chain_der, cred.status)]
        if chosen.kx is KeyExchange.ECDHE_X25519:
            self._x25519, public = kx.x25519_keypair(self.entropy)
            flight.append(m.ServerKeyShare(m.X25519_GROUP, public))
        flight.append(m.CertificateRequest(tuple(int(s) for s in SUPPORTED_SCHEMES)))
        self._send_handshake(flight)
        t0 = self._phase("key_exchange", t0)
        self._send_handshake(
            [self._certificate_verify("server", self._sig_transcript.copy().finalize())]
        )
        self._phase("certificate_verify", t0)
        self._merge_handshake_records(flight_start)
        self.state = State.WAIT_CERTIFICATE

    def _merge_handshake_records(self, start: int) -> None:
        """A flight was queued message by message (each needs the transcript up to
        it); merge its plaintext handshake records into as few as fit, so the
        flight leaves in one write."""
        payload = b"".join(r[5:] for r in self._out[start:])
        self._out[start:] = [
            plaintext_record(ContentType.HANDSHAKE, payload[i : i + MAX_PLAINTEXT])
            for i in range(0, len(payload), MAX_PLAINTEXT)
        ]

    def _on_server_certificate(self, msg: m.Certificate, _th: bytes, _sig: bytes) -> None:
        t0 = self.clock()
        self.peer = verify_peer(
            msg.chain,
            self.config.trust,
            "client",
            self.config.peer,
            self.now,
            status=msg.status,
            require_status=self.config.require_status,
        )
        self._phase("certificate_verify", t0)
        self.state = State.WAIT_CLIENT_KEY_EXCHANGE

    def _on_server_client_key_exchange(
        self, msg: m.ClientKeyExchange, _th: bytes, _sig: bytes
    ) -> None:
        t0 = self.clock()
        assert self.suite is not None
        if self.suite.kx is KeyExchange.ECDHE_X25519:
            shared = kx.x25519_shared(self._x25519, msg.data)
            self._x25519 = None  # ephemeral: forget it as soon as it has served
        else:
            shared, ok = kx.rsa_oaep_decrypt(self.config.credentials.key, msg.data, self.entropy)  # type: ignore[arg-type]
            # Deliberately no error here: a bad ciphertext surfaces as bad_finished.
            if self.config.trace:
                self.trace[-1].fields["decrypted"] = (
                    "ok" if ok else "failed; continuing with a random secret"
                )
        self._ks = KeySchedule(shared, self._client_random, self._server_random)
        if self.config.trace:  # kept only for the trace's key-schedule entry
            self._shared_for_trace = shared
        self._phase("key_exchange", t0)
        self.state = State.WAIT_CERTIFICATE_VERIFY

    def _on_server_certificate_verify(
        self, msg: m.CertificateVerify, _th: bytes, sig: bytes
    ) -> None:
        t0 = self.clock()
        self._check_certificate_verify(msg, sig)
        self._phase("certificate_verify", t0)
        self.state = State.WAIT_FINISHED

    def _on_server_finished(self, msg: m.Finished, th: bytes, _sig: bytes) -> list[Event]:
        t0 = self.clock()
        assert self._ks is not None and self.suite is not None
        if not self._ks.check_finished("client", th, msg.verify_data):
            raise ProtocolError(
                Reason.BAD_FINISHED, "client Finished does not match our transcript"
            )
        if self._hs.pending:
            raise ProtocolError(Reason.UNEXPECTED_MESSAGE, "handshake bytes after Finished")
        th_cf = self._transcript.copy().finalize()
        if self.resumed and self._opened is not None and self.config.tickets is not None:
            self.config.tickets.count_use(self._opened)  # a completed resumption, not a replay
        if not self.resumed:  # a full handshake: a ticket (1.1), then our Finished over it
            flight_start = len(self._out)
            self._issue_ticket()
            fin = self._ks.finished_mac("server", self._transcript.copy().finalize())
            self._send_handshake([m.Finished(fin)])
            self._merge_handshake_records(flight_start)
        self._send = Protector(
            self.suite, self._ks.traffic_secret("server", th_cf), self.config.limits.max_seq
        )
        self._recv = Protector(
            self.suite, self._ks.traffic_secret("client", th_cf), self.config.limits.max_seq
        )
        self._trace_keys(self._shared_for_trace, th_cf)
        self._shared_for_trace = b""
        self._phase("finished", t0)
        return self._complete()


def fingerprint(secret: bytes) -> str:
    """8 bytes of SHA-256: enough to see two sides derived the same value, useless
    to an attacker."""
    return sha256(secret)[:8].hex()


def _scheme_name(code: int) -> str:
    return Scheme(code).name if code in Scheme._value2member_map_ else f"0x{code:04x}"


def _certificate_fields(der: bytes) -> dict[str, Any]:
    facts = certificate_facts(x509.load_der_x509_certificate(der))
    return {k: facts[k] for k in ("subject", "issuer", "names", "key", "not_after")}


def describe(msg: m.Message) -> dict[str, Any]:
    """The key fields of a message, for the trace: names, not codes."""
    if isinstance(msg, m.ClientHello):
        hello: dict[str, Any] = {
            "versions": [version_name(v) for v in msg.versions],
            "random": msg.random.hex(),
            "suites": [BY_CODE[c].name if c in BY_CODE else f"0x{c:04x}" for c in msg.suites],
        }
        if msg.resume is not None:
            hello["resume"] = {
                "ticket_bytes": len(msg.resume.ticket),
                "x25519_share": msg.resume.share.hex(),
                "binder": msg.resume.binder.hex(),
            }
        return hello
    if isinstance(msg, m.ServerHello):
        server: dict[str, Any] = {
            "version": version_name(msg.version),
            "random": msg.random.hex(),
            "suite": BY_CODE[msg.suite].name if msg.suite in BY_CODE else f"0x{msg.suite:04x}",
        }
        if msg.resumed is not None:
            server["resumed"] = bool(msg.resumed)
            if msg.refusal:
                refusal = REFUSAL_BY_CODE.get(msg.refusal)
                server["ticket_refused"] = refusal.value if refusal else msg.refusal
        return server
    if isinstance(msg, m.NewSessionTicket):
        return {
            "lifetime_s": msg.lifetime,
            "max_uses": msg.max_uses,
            "ticket_bytes": len(msg.ticket),
            "carries": "this server's sealed record of the session: only it can open it",
        }
    if isinstance(msg, m.Certificate):
        out: list[str] = []
        certs: list[dict[str, Any]] = []
        for der in msg.chain:
            try:
                f = _certificate_fields(der)
            except Exception:  # the trace must never fail on a malformed certificate
                out.append("(unparsable)")
                continue
            out.append(f["subject"])
            certs.append(f)
        return {"chain": out, "certificates": certs, "stapled_status_bytes": len(msg.status)}
    if isinstance(msg, m.ServerKeyShare):
        return {
            "group": "X25519" if msg.group == m.X25519_GROUP else hex(msg.group),
            "public": msg.public.hex(),
            "carries": "the server's ephemeral X25519 public key, signed by its CertificateVerify",
        }
    if isinstance(msg, m.CertificateRequest):
        return {"schemes": [_scheme_name(x) for x in msg.schemes]}
    if isinstance(msg, m.CertificateVerify):
        return {"scheme": _scheme_name(msg.scheme), "signature_len": len(msg.signature)}
    if isinstance(msg, m.ClientKeyExchange):
        return {"data_len": len(msg.data), "data_head": msg.data[:16].hex()}
    return {"verify_data": msg.verify_data.hex()}


# Which method handles which message for which role: the whole dispatch, explicit.
# (The state machine lets through only the message EXPECTED in the current state.)
HANDLERS: dict[tuple[str, T], Callable[..., list[Event] | None]] = {
    ("client", T.SERVER_HELLO): Connection._on_client_server_hello,
    ("client", T.CERTIFICATE): Connection._on_client_certificate,
    ("client", T.SERVER_KEY_SHARE): Connection._on_client_server_key_share,
    ("client", T.CERTIFICATE_REQUEST): Connection._on_client_certificate_request,
    ("client", T.CERTIFICATE_VERIFY): Connection._on_client_certificate_verify,
    ("client", T.FINISHED): Connection._on_client_finished,
    ("client", T.NEW_SESSION_TICKET): Connection._on_client_new_session_ticket,
    ("server", T.CLIENT_HELLO): Connection._on_server_client_hello,
    ("server", T.CERTIFICATE): Connection._on_server_certificate,
    ("server", T.CLIENT_KEY_EXCHANGE): Connection._on_server_client_key_exchange,
    ("server", T.CERTIFICATE_VERIFY): Connection._on_server_certificate_verify,
    ("server", T.FINISHED): Connection._on_server_finished,
}
