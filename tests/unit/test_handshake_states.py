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
from mtlsdemo.handshake.suites import KeyExchange
from mtlsdemo.handshake.tickets import TicketCache, TicketKeys
from support.hskit import config, handshake, join_messages, new, split_messages

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
RSA = next(s for s in SUITES if s.kx is KeyExchange.RSA_OAEP)


def _transitions_of(ccfg, scfg) -> set[tuple]:
    """Run a handshake one message at a time and record every (role, state, message,
    state after) it went through: observed from outside, so it holds for the compiled
    core too (nothing is patched)."""
    c, s = new("client", ccfg), new("server", scfg)
    c.start()
    taken = {("client", st.State.START, None, c.state)}
    for _ in range(6):
        for src, dst in ((c, s), (s, c)):
            for ctype, raw in split_messages(src.data_to_send()):
                before = dst.state
                dst.receive_data(join_messages([(ctype, raw)]))
                if ctype == 22:
                    taken.add((dst.role, before, st.T(raw[0]), dst.state))
    assert c.handshake_done and s.handshake_done
    return taken


def _every_kind_of_handshake() -> set[tuple]:
    """X25519 full (MTD/1.1 with a ticket), resumed on it, RSA key transport, hybrid."""
    classic = (SUITES[0],)
    ccfg = dataclasses.replace(
        config("gateway", suites=classic), ticket_cache=TicketCache(), ticket_peer="l"
    )
    scfg = dataclasses.replace(config("ledger", suites=classic), tickets=TicketKeys())
    taken = _transitions_of(ccfg, scfg) | _transitions_of(ccfg, scfg)  # full, then resumed
    rsa_c = config("gateway", "rsa-2048", suites=(RSA,))
    rsa_s = config("ledger", "rsa-2048", suites=(RSA,))
    taken |= _transitions_of(rsa_c, rsa_s)
    return taken | _transitions_of(config("gateway"), config("ledger"))


def test_every_transition_in_the_table_is_taken_and_no_other() -> None:
    taken = _every_kind_of_handshake()
    table = {(t.role, t.state, t.message, t.to) for t in st.TRANSITIONS}
    assert taken == table


def test_a_transition_outside_the_table_fails_closed_as_internal_error(monkeypatch) -> None:
    # the table is data (a dict), so a test can take a row out (on the compiled core too)
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
