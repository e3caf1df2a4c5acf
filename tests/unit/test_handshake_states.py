"""The state machine is the table in handshake/states.py: every row is taken by
some handshake, no handshake takes a transition outside it, and docs/protocol.md
carries the table as rendered from the code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from mtlsdemo.handshake import SUITES, Reason
from mtlsdemo.handshake import states as st
from mtlsdemo.handshake.core import ConnectionCore
from mtlsdemo.handshake.suites import KeyExchange
from mtlsdemo.handshake.tickets import TicketCache, TicketKeys
from support.hskit import config, handshake

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
RSA = next(s for s in SUITES if s.kx is KeyExchange.RSA_OAEP)


def _every_kind_of_handshake() -> None:
    """ECDHE full (MTD/1.1 with a ticket), resumed on it, and RSA key transport."""
    ccfg = dataclasses.replace(config("gateway"), ticket_cache=TicketCache(), ticket_peer="l")
    scfg = dataclasses.replace(config("ledger"), tickets=TicketKeys())
    for _ in range(2):  # full, then resumed
        _c, _s, out = handshake(ccfg, scfg)
        assert out.client_error is None and out.server_error is None
    rsa_c = config("gateway", "rsa-2048", suites=(RSA,))
    rsa_s = config("ledger", "rsa-2048", suites=(RSA,))
    _c, _s, out = handshake(rsa_c, rsa_s)
    assert out.client_error is None and out.server_error is None


def test_every_transition_in_the_table_is_taken_and_no_other(monkeypatch) -> None:
    taken: set[tuple] = set()
    real = ConnectionCore._move

    def recording(self, to):
        taken.add((self.role, self.state, self._handling, to))
        real(self, to)

    monkeypatch.setattr(ConnectionCore, "_move", recording)
    _every_kind_of_handshake()
    table = {(t.role, t.state, t.message, t.to) for t in st.TRANSITIONS}
    assert taken == table


def test_a_transition_outside_the_table_fails_closed_as_internal_error(monkeypatch) -> None:
    key = ("server", st.State.WAIT_CERTIFICATE, st.T.CERTIFICATE)
    monkeypatch.setitem(st.ALLOWED, key, frozenset())
    _c, _s, out = handshake(config("gateway"), config("ledger"))
    assert out.server_error is not None
    assert out.server_error.reason is Reason.INTERNAL_ERROR
    assert "no transition wait_certificate" in str(out.server_error)


def test_each_waiting_state_expects_the_messages_its_rows_name() -> None:
    for t in st.TRANSITIONS:
        if t.message is None:
            continue
        assert st.EXPECTED[t.state] == t.message or (
            t.message is st.T.NEW_SESSION_TICKET and t.state is st.State.WAIT_FINISHED
        ), t


def test_protocol_md_carries_the_table_rendered_from_the_code() -> None:
    text = DOC.read_text()
    found = re.search(
        r"<!-- transitions: generated from handshake/states.py -->\n(.*?)<!-- /transitions -->",
        text,
        re.S,
    )
    assert found, "docs/protocol.md lost its transitions table markers"
    assert found.group(1) == st.transition_table(), (
        "docs/protocol.md's transition table is stale: paste states.transition_table()"
    )


@pytest.mark.parametrize("t", st.TRANSITIONS, ids=lambda t: f"{t.role}-{t.state}-{t.to}")
def test_transitions_are_described(t: st.Transition) -> None:
    assert t.when.strip()
