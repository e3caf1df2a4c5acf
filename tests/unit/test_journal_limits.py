"""The admin's handshake journal cannot be turned against the data path (the
audit's F3): each entry is encoded once for every reader, live readers are capped,
and one that falls a queue behind is dropped and counted, not buffered for."""

from __future__ import annotations

import json

from mtlsdemo.sidecar.journal import MAX_SUBSCRIBERS, QUEUE, HandshakeJournal
from mtlsdemo.sidecar.outcome import HandshakeOutcome
from prometheus_client import generate_latest
from support.metrics import metric_value


def outcome(i: int) -> HandshakeOutcome:
    return HandshakeOutcome(
        "server", "inbound", "spiffe://td/a", f"spiffe://td/p{i}", "?:1", "S", 0.001
    )


def dropped(reason: str) -> float:
    try:
        return metric_value(
            generate_latest().decode(), "mtls_admin_event_streams_dropped_total", reason=reason
        )
    except KeyError:
        return 0.0


def test_each_entry_is_encoded_once_and_shared() -> None:
    j = HandshakeJournal("s")
    j.add(outcome(1))
    (a,) = j.entries()
    (b,) = j.entries()
    assert a.encoded is b.encoded  # made once, whoever asks
    assert json.loads(a.encoded) == j.recent()[0]


def test_live_readers_are_capped_and_the_refusal_counted() -> None:
    j = HandshakeJournal("s")
    before = dropped("full")
    queues = [j.subscribe() for _ in range(MAX_SUBSCRIBERS)]
    assert all(q is not None for q in queues)
    assert j.subscribe() is None
    assert dropped("full") == before + 1
    j.unsubscribe(queues[0])  # type: ignore[arg-type]
    assert j.subscribe() is not None


def test_a_reader_a_queue_behind_is_dropped_not_buffered_for() -> None:
    j = HandshakeJournal("s")
    before = dropped("slow")
    q = j.subscribe()
    assert q is not None
    for i in range(QUEUE + 10):  # nobody reads
        j.add(outcome(i))
    assert q.qsize() == QUEUE + 1  # the queue's entries, then its end
    items = [q.get_nowait() for _ in range(q.qsize())]
    assert items[-1] is None and all(e is not None for e in items[:-1])
    assert dropped("slow") == before + 1
    j.add(outcome(999))  # no longer fed
    assert q.qsize() == 0


def test_the_journal_says_whether_who_refused_is_known_or_only_claimed() -> None:
    """An alert in clear names the peer as the refuser only as its claim: the entry
    marks it (``rejected_by_verified``) as the failures table and the edge text do."""
    import datetime as dt

    from mtlsdemo.handshake import ProtocolError, Reason
    from mtlsdemo.sidecar.journal import Entry

    def entry(origin: str | None) -> dict:
        err = None if origin is None else ProtocolError(Reason.UNKNOWN_CA, "x", origin=origin)
        o = HandshakeOutcome("client", "r", "spiffe://td/a", "spiffe://td/b", "?:1", "S", 0.1, err)
        return Entry(1, dt.datetime.now(dt.UTC), "s", o).as_dict()

    assert entry(None)["rejected_by_verified"] is None
    local = entry("local")
    assert local["rejected_by"] == "spiffe://td/a" and local["rejected_by_verified"] is True
    assert entry("remote")["rejected_by_verified"] is True  # sealed under the session keys
    claimed = entry("remote_unverified")
    assert claimed["rejected_by"] == "spiffe://td/b" and claimed["rejected_by_verified"] is False
