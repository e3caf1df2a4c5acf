"""What both roles of an MTD/1 connection share: the state they hold, the record
layer around the handshake (records in, alerts, key updates, application data out),
sending and receiving handshake messages (transcripts, ladder, trace), and the end
of a handshake (the result, the report). The roles' handlers are in
``client_side.py`` and ``server_side.py``, resumption in ``resumption.py``; the
transitions they may take are the table in ``states.py``; ``connection.py``
assembles them into ``Connection``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes

from mtlsdemo.handshake import kx
from mtlsdemo.handshake import messages as m
from mtlsdemo.handshake.config import HandshakeConfig
from mtlsdemo.handshake.errors import (
    ALERT_CODES,
    REASON_BY_CODE,
    REMOTE,
    REMOTE_UNVERIFIED,
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
    TrafficSecrets,
)
from mtlsdemo.handshake.keyschedule import KeySchedule
from mtlsdemo.handshake.peer import (
    VerifiedPeer,
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
from mtlsdemo.handshake.report import HandshakeReport
from mtlsdemo.handshake.signatures import sign, signed_content, verify
from mtlsdemo.handshake.states import (
    ALERT_FATAL,
    ALERT_WARNING,
    ALLOWED,
    EXPECTED,
    PHASES,
    STEP_OF,
    LadderStep,
    Role,
    State,
)
from mtlsdemo.handshake.suites import (
    VERSION_1_1,
    VERSION_1_2,
    KeyExchange,
    Suite,
    version_name,
)
from mtlsdemo.handshake.tickets import (
    ClientTicket,
    Opened,
    SessionFacts,
)
from mtlsdemo.handshake.trace import TraceEntry, describe, fingerprint, resume_checks, scheme_name

T = m.HandshakeType
# Which method handles which message for which role: the whole dispatch, as data.
# The handlers live in client_side.py and server_side.py, below this module, so
# connection.py fills the table once they exist (the state machine lets through only
# the message EXPECTED in the current state).
HANDLERS: dict[tuple[str, T], Callable[..., list[Event] | None]] = {}


class ConnectionCore:
    """One side of a connection, without its role's handlers (see ``Connection``)."""

    def __init__(
        self,
        role: Role,
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
        self.state: State = State.START if role == "client" else State.WAIT_CLIENT_HELLO
        self.trace: list[TraceEntry] = []
        # Always on, unlike the trace: the handshake's messages as (direction, name,
        # wire bytes, step, clock) for the console's ladders; a tuple per message,
        # nothing after the handshake.
        self.ladder: list[LadderStep] = []
        self.peer_signature = ""  # the peer's CertificateVerify scheme, once it verified
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
        # MTD/1.0-1.1's CertificateVerify input: client random + from ServerHello on
        self._sig_transcript = hashes.Hash(hashes.SHA256())
        self._random = entropy(m.RANDOM_LEN)
        self._client_random = self._random if role == "client" else b""
        self._server_random = self._random if role == "server" else b""
        self._offered: tuple[int, ...] = ()
        self.suite: Suite | None = None
        self.version = 0
        self.peer: VerifiedPeer | None = None
        self._ks: KeySchedule | None = None
        self._x25519: Any = None
        self._mlkem: Any = None  # server, hybrid suites: the ephemeral ML-KEM-768 key
        # a chain/staple refusal held until the peer's CertificateVerify verifies
        self._deferred: ProtocolError | None = None
        self._unverified_leaf: x509.Certificate | None = None
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
        self._handling: T | None = None  # the message being handled (None: start())
        # kept only when the config asks for a key log (HandshakeConfig.keep_secrets)
        self.secrets: TrafficSecrets | None = None

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
        except Exception as bug:  # not the peer's fault: still fail closed, with a name
            err = ProtocolError(Reason.INTERNAL_ERROR, f"{type(bug).__name__}: {bug}")
            err.events = events
            self._failed(err)
            raise err from bug
        return events

    def _take_records(self, data: bytes) -> list[tuple[int, bytes, memoryview]]:
        """Every complete record, all headers checked before any is processed. A
        record left incomplete by the last read is finished from the head of this
        one (copied); the rest is cut out of ``data`` without copying; only an
        incomplete tail is kept."""
        data = bytes(data)  # a caller's bytearray may change under our views
        records: list[tuple[int, bytes, memoryview]] = []
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

    def _failed(self, e: ProtocolError) -> None:
        if self.state is State.FAILED:
            return
        waiting = EXPECTED.get(self.state)
        if self.result is not None:
            self.failed_step = "data"
        elif e.from_peer and e.reason in STEP_OF_REASON:
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
            self.ladder.append(LadderStep("send", reason.value, 2, "alert", self.clock()))
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

    def _record(self, ctype: int, hdr: bytes, payload: bytes | memoryview) -> list[Event]:
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

    def _alert(self, body: bytes | memoryview) -> list[Event]:
        if len(body) != 2:
            raise ProtocolError(Reason.DECODE_ERROR, f"alert of {len(body)} bytes")
        level, code = body
        reason = REASON_BY_CODE.get(code)
        if reason is None:
            raise ProtocolError(Reason.DECODE_ERROR, f"unknown alert code {code}")
        if self.result is None:
            self.ladder.append(LadderStep("recv", reason.value, 2, "alert", self.clock()))
        self._trace("recv", "alert", reason.value, 2, "alert", {"level": level})
        # Only an alert under the record keys is provably the peer's: one in clear
        # could come from anyone on the path (docs/protocol.md §6).
        sealed = self._recv is not None
        origin = REMOTE if sealed else REMOTE_UNVERIFIED
        if reason is Reason.CLOSE_NOTIFY:
            if not self.handshake_done:
                raise ProtocolError(
                    Reason.CLOSE_NOTIFY, "peer closed during the handshake", origin=origin
                )
            self.state = State.CLOSED
            return [PeerClosed()]
        said = (
            f"the {self.peer_role} rejected the connection"
            if sealed
            else f"an alert in clear says the {self.peer_role} rejected the connection "
            "(unauthenticated: sent before the session keys, anyone on the path could send it)"
        )
        raise ProtocolError(reason, said, origin=origin)

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
            self.ladder.append(LadderStep("recv", got, len(raw), step, self.clock(), raw))
            raise ProtocolError(
                Reason.UNEXPECTED_MESSAGE, f"got {got} while waiting for {self.waiting_for}"
            )
        self.ladder.append(
            LadderStep(
                "recv", T(msg_type).name, len(raw), STEP_OF[T(msg_type)], self.clock(), bytes(raw)
            )
        )
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
        sig_before = self._signed_hash() if msg_type == T.CERTIFICATE_VERIFY else b""
        self._transcript.update(raw)
        if msg_type != T.CLIENT_HELLO:
            self._sig_transcript.update(raw)
        self._last_raw = raw
        self._handling = T(msg_type)
        return HANDLERS[(self.role, self._handling)](self, msg, th_before, sig_before) or []

    def _send_handshake(self, msgs: list[m.Message]) -> None:
        chunk = bytearray()
        for msg in msgs:
            raw = m.encode(msg)
            self._transcript.update(raw)
            if msg.type != T.CLIENT_HELLO:
                self._sig_transcript.update(raw)
            self.ladder.append(
                LadderStep("send", msg.type.name, len(raw), STEP_OF[msg.type], self.clock(), raw)
            )
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
            fields["carries"] = {
                KeyExchange.ECDHE_X25519: "the client's ephemeral X25519 public key "
                "(the secret never travels)",
                KeyExchange.X25519_MLKEM768: "an ML-KEM-768 ciphertext (1,088 bytes: a secret "
                "only the server's ephemeral ML-KEM key opens) and the client's ephemeral "
                "X25519 public key; the session secret is both shared secrets together",
                KeyExchange.RSA_OAEP: "a random 48-byte pre-master secret, RSA-OAEP-encrypted "
                "to the server's certificate key (only its private key opens it)",
            }[self.suite.kx]
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
            "shared secret (ECDHE output; hybrid: ML-KEM-768 || X25519; pre-master; or resumed: X25519 || ticket secret)": shared,
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

    def _signed_hash(self) -> bytes:
        """What a CertificateVerify signs now: from MTD/1.2 on the whole transcript so
        far (as TLS 1.3), so a ClientHello rewritten on the path breaks the signature;
        before it, the client random and every message from the ServerHello on — the
        offer lists unsigned (issue 31 item 1: with RSA key transport and the server's
        key stolen, a rewritten offer went unnoticed)."""
        running = self._transcript if self.version >= VERSION_1_2 else self._sig_transcript
        return running.copy().finalize()

    def _certificate_verify(self, signer: str) -> m.CertificateVerify:
        cred = self.config.credentials
        return m.CertificateVerify(
            cred.scheme, sign(cred.key, cred.scheme, signed_content(signer, self._signed_hash()))
        )

    def _judge_peer(self, msg: m.Certificate, peer_role: str) -> None:
        """Verify the peer's chain and staple; a refusal waits for the peer's
        CertificateVerify (issue 31 item 5): only once the signature over the transcript
        holds — the Certificate message included, as the peer sent it — is a chain or
        status reason provably about what the peer presented, not about what someone on
        the path stripped or swapped. A tampered Certificate fails as bad_signature."""
        try:
            self.peer = verify_peer(
                msg.chain,
                self.config.trust,
                peer_role,
                self.config.peer,
                self.now,
                status=msg.status,
                require_status=self.config.require_status,
            )
        except ProtocolError as e:
            leaf = _leaf_of(msg.chain)
            if leaf is None:  # nothing to check a signature with: the refusal stands now
                raise
            self._deferred, self._unverified_leaf = e, leaf

    def _check_certificate_verify(self, msg: m.CertificateVerify, sig_hash: bytes) -> None:
        key = self.peer.public_key if self.peer else self._unverified_leaf.public_key()  # type: ignore[union-attr]
        verify(
            key,
            msg.scheme,
            msg.signature,
            signed_content(self.peer_role, sig_hash),
        )
        self.peer_signature = scheme_name(msg.scheme)  # a fact, for whoever reads the report
        if self._deferred is not None:  # the signature holds: the refusal is about the peer's own
            deferred: ProtocolError = self._deferred
            deferred.passed = deferred.passed + (
                f"CertificateVerify ({scheme_name(msg.scheme)}) proves the {self.peer_role} "
                "holds the certificate's private key",
            )
            raise deferred
        assert self.peer is not None
        self.peer.checks.append(
            f"CertificateVerify ({scheme_name(msg.scheme)}) proves the {self.peer_role} "
            "holds the certificate's private key"
        )

    def _complete(self) -> list[Event]:
        assert self.suite and self.started_at is not None
        self._move(State.CONNECTED)
        if self._refused is not None:  # the Finished covered the ServerHello: it is true
            assert self.config.ticket_cache is not None
            ticket, why = self._refused
            self.config.ticket_cache.drop(self.config.ticket_peer, ticket)
            self.resume_refusal, self.resume_refused_by = why, "remote"
        if self.config.keep_secrets:
            assert self._send is not None and self._recv is not None
            mine, theirs = self._send.secret, self._recv.secret
            self.secrets = TrafficSecrets(
                self._client_random,
                mine if self.role == "client" else theirs,
                theirs if self.role == "client" else mine,
            )
        cred = self.config.credentials
        if self.resumed:
            facts = self._resumed_facts
            assert facts is not None
            identity, subject = facts.peer_identity, facts.peer_subject
            not_after = dt.datetime.fromtimestamp(facts.peer_not_after, dt.UTC)
            checks: tuple[str, ...] = tuple(resume_checks(facts, self.now))
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

    def _available_suites(self) -> tuple[int, ...]:
        return tuple(s.code for s in self.config.suites)

    def _merge_handshake_records(self, start: int) -> None:
        """A flight was queued message by message (each needs the transcript up to
        it); merge its plaintext handshake records into as few as fit, so the
        flight leaves in one write."""
        payload = b"".join(r[5:] for r in self._out[start:])
        self._out[start:] = [
            plaintext_record(ContentType.HANDSHAKE, payload[i : i + MAX_PLAINTEXT])
            for i in range(0, len(payload), MAX_PLAINTEXT)
        ]

    # ------------------------------------------------------------------ the state machine
    def _move(self, to: State) -> None:
        """Take one transition of the table in states.py (``ALLOWED``): a handler
        that tries any other is a bug, and fails closed as internal_error."""
        if to not in ALLOWED.get((self.role, self.state, self._handling), ()):
            raise AssertionError(
                f"{self.role}: no transition {self.state} --{self._handling}--> {to}"
            )
        self.state = to

    def report(self) -> HandshakeReport:
        """This handshake as the observer, the journal and the console read it, on
        success and on failure alike (no reading of the connection's internals)."""
        r, cert = self.result, self.peer_certificate
        return HandshakeReport(
            role=self.role,
            suite=r.suite if r else self.suite.name if self.suite else "none",
            peer_identity=r.peer_identity if r else self.peer_identity or "unknown",
            phases=dict(self.phases),
            status_problem=r.status_problem if r else None,
            ladder=tuple(self.ladder),
            failed_step=self.failed_step,
            peer_chain=cert.chain if cert else (),
            peer_status=cert.status if cert else b"",
            checks=r.checks
            if r
            else tuple(self.peer.checks)
            if self.peer
            else self.error.passed
            if self.error
            else (),
            resumed=self.resumed,
            resumption=r.resumption if r else self.resumption,
            peer_signature=self.peer_signature,
            ticket_refusal=(
                (self.resume_refusal, self.resume_refused_by) if self.resume_refusal else None
            ),
            ticket_issued=self.ticket_issued,
            error=self.error,
        )


def _leaf_of(chain: tuple[bytes, ...]) -> x509.Certificate | None:
    """The first certificate, parsed with a usable public key, or None (empty chain,
    garbage, a key cryptography cannot load)."""
    try:
        leaf = x509.load_der_x509_certificate(chain[0]) if chain else None
        if leaf is not None:
            leaf.public_key()  # parsed lazily: a damaged key fails here, not at the signature
        return leaf
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):
        # InvalidVersion is no ValueError: uncaught, a peer's v4 certificate was
        # reported as internal_error ("a bug") instead of bad_certificate
        return None
