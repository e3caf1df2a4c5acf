"""What `handshake --tls13` says about MTD/1 next to real TLS 1.3 is what the code
does: it resumes (MTD/1.1), so the table must not claim it always runs in full, and
the columns line up under their headings."""

from __future__ import annotations

import dataclasses

from mtlsdemo.explain.tls13 import Tls13Message, table
from mtlsdemo.handshake.tickets import TicketCache, TicketKeys
from support.hskit import config, handshake

MESSAGES = [
    Tls13Message("client", "ClientHello", 517, False),
    Tls13Message("server", "ServerHello", 122, False),
    Tls13Message("server", "Certificate", 900, True),
    Tls13Message("server", "NewSessionTicket", 250, True),
]


def mtd_resumed_ladder() -> list[tuple[str, str]]:
    client = dataclasses.replace(config("gateway"), ticket_cache=TicketCache(), ticket_peer="l")
    server = dataclasses.replace(config("ledger"), tickets=TicketKeys())
    handshake(client, server)
    c, _s, _out = handshake(client, server)
    assert c.result.resumed and c.result.version == "MTD/1.2"
    return [(d, name) for d, name, *_ in c.ladder]


def test_the_resumption_claim_matches_the_code() -> None:
    text = "\n".join(table(MESSAGES, "TLSv1.3", "TLS_AES_256_GCM_SHA384"))
    ladder = mtd_resumed_ladder()
    # "in MTD/1.2 the client's Finished goes first and the client completes only on the
    # server's": the client's last two messages, in that order
    assert "in MTD/1.2 the client's Finished goes first" in text
    assert ladder[-2:] == [("send", "FINISHED"), ("recv", "FINISHED")]
    assert "always does the full handshake" not in text and "no resumption" not in text
    assert "MTD/1.1 does the same" in text
    (row,) = [line for line in text.splitlines() if "NewSessionTicket " in line[:40]]
    assert "NewSessionTicket (MTD/1.1" in row


def test_columns_line_up_under_their_headings() -> None:
    lines = table(MESSAGES, "TLSv1.3", "TLS_AES_256_GCM_SHA384")
    header = lines[1]
    assert "on the wire classic step" in header
    step_col = header.index("classic step")
    for line in lines[2:6]:
        assert line[step_col - 1] == " " and line[step_col] != " ", line
