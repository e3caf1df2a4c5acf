"""The MTD/1 state machine as data: the states, the one message each waits for,
the step each message belongs to, and every transition a handler may take (h2's
way: a table, not assignments spread through the handlers). ``Connection._move``
refuses any transition not listed here; docs/protocol.md's transition table is
rendered from ``TRANSITIONS`` (a unit test keeps it current).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, NamedTuple

from mtlsdemo.handshake.messages import HandshakeType as T

Role = Literal["client", "server"]
Direction = Literal["send", "recv"]
# the four steps of the classic explanation, plus where a ladder shows alerts and data
Step = Literal["hello", "certificate_verify", "key_exchange", "finished", "alert", "data"]
# who decided a failure: this side, the peer (its alert under the keys), or an
# unauthenticated claim of the peer's (an alert in clear, before keys)
Origin = Literal["local", "remote", "remote_unverified"]
PHASES = ("hello", "certificate_verify", "key_exchange", "finished")
ALERT_WARNING, ALERT_FATAL = 1, 2


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


class LadderStep(NamedTuple):
    """One handshake message (or alert) as a ladder draws it."""

    direction: str  # "send" or "recv" (Direction)
    name: str  # the message type's name, or the alert's reason
    size: int  # bytes on the wire (handshake header included, record header not)
    step: str  # the Step it belongs to
    clock: float  # the injected monotonic clock when it was sent or received
    # the message as it crossed, handshake header included (alerts: none); public
    # bytes (MTD/1's handshake is in clear), kept for the byte view
    raw: bytes = b""


class Transition(NamedTuple):
    """``role`` in ``state``, on ``message`` (None: ``start()``), moves to ``to`` ``when``."""

    role: Role
    state: State
    message: T | None
    to: State
    when: str


TRANSITIONS: tuple[Transition, ...] = (
    Transition("client", State.START, None, State.WAIT_SERVER_HELLO, "start(): ClientHello sent"),
    Transition("client", State.WAIT_SERVER_HELLO, T.SERVER_HELLO, State.WAIT_CERTIFICATE, "full handshake"),
    Transition("client", State.WAIT_SERVER_HELLO, T.SERVER_HELLO, State.WAIT_SERVER_KEY_SHARE, "resumed (MTD/1.1 and later)"),
    Transition("client", State.WAIT_CERTIFICATE, T.CERTIFICATE, State.WAIT_SERVER_KEY_SHARE, "ECDHE or hybrid suite"),
    Transition("client", State.WAIT_CERTIFICATE, T.CERTIFICATE, State.WAIT_CERTIFICATE_REQUEST, "RSA key transport"),
    Transition("client", State.WAIT_SERVER_KEY_SHARE, T.SERVER_KEY_SHARE, State.WAIT_CERTIFICATE_REQUEST, "full handshake"),
    Transition("client", State.WAIT_SERVER_KEY_SHARE, T.SERVER_KEY_SHARE, State.WAIT_FINISHED, "resumed (MTD/1.2: our Finished sent)"),
    Transition("client", State.WAIT_CERTIFICATE_REQUEST, T.CERTIFICATE_REQUEST, State.WAIT_CERTIFICATE_VERIFY, "always"),
    Transition("client", State.WAIT_CERTIFICATE_VERIFY, T.CERTIFICATE_VERIFY, State.WAIT_FINISHED, "its flight sent: Certificate, ClientKeyExchange, CertificateVerify, Finished"),
    Transition("client", State.WAIT_FINISHED, T.NEW_SESSION_TICKET, State.WAIT_FINISHED, "MTD/1.1+ full handshake: at most once, before the Finished"),
    Transition("client", State.WAIT_FINISHED, T.FINISHED, State.CONNECTED, "the server's Finished verified (resumed MTD/1.1: ours then sent)"),
    Transition("server", State.WAIT_CLIENT_HELLO, T.CLIENT_HELLO, State.WAIT_CERTIFICATE, "full handshake: its flight sent"),
    Transition("server", State.WAIT_CLIENT_HELLO, T.CLIENT_HELLO, State.WAIT_FINISHED, "a ticket accepted: ServerHello, ServerKeyShare sent (MTD/1.1: and our Finished)"),
    Transition("server", State.WAIT_CERTIFICATE, T.CERTIFICATE, State.WAIT_CLIENT_KEY_EXCHANGE, "the client's chain verified"),
    Transition("server", State.WAIT_CLIENT_KEY_EXCHANGE, T.CLIENT_KEY_EXCHANGE, State.WAIT_CERTIFICATE_VERIFY, "always"),
    Transition("server", State.WAIT_CERTIFICATE_VERIFY, T.CERTIFICATE_VERIFY, State.WAIT_FINISHED, "the signature verified"),
    Transition("server", State.WAIT_FINISHED, T.FINISHED, State.CONNECTED, "the client's Finished verified (our Finished sent; full: a ticket before it; resumed 1.1: none)"),
)  # fmt: skip
# Beyond the table: any state -> FAILED (a ProtocolError, alert queued), and
# CONNECTED -> CLOSED (the peer's close_notify).

ALLOWED: dict[tuple[str, State, T | None], frozenset[State]] = {}
for _t in TRANSITIONS:
    _key = (_t.role, _t.state, _t.message)
    ALLOWED[_key] = ALLOWED.get(_key, frozenset()) | {_t.to}

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
STEP_OF: dict[T, str] = {
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


def transition_table() -> str:
    """TRANSITIONS as the markdown table docs/protocol.md carries."""
    rows = ["| role | in state | on | goes to | when |", "|---|---|---|---|---|"]
    for t in TRANSITIONS:
        on = t.message.name if t.message is not None else "start()"
        rows.append(f"| {t.role} | {t.state.value} | {on} | {t.to.value} | {t.when} |")
    return "\n".join(rows) + "\n"
