"""Admission fair across sources (sidecar/admission.py), with fake tunnels and a
fake clock: who starts, who waits, who is shed, and who is never shed."""

from __future__ import annotations

from dataclasses import dataclass, field

from mtlsdemo.handshake.states import State
from mtlsdemo.sidecar.admission import STALLED, Admission


@dataclass(eq=False)
class Conn:
    state: State = State.WAIT_CLIENT_HELLO


@dataclass(eq=False)
class FakeTunnel:
    source: str
    started: float
    conn: Conn = field(default_factory=Conn)
    shed_why: str | None = None
    room: Admission | None = None
    began: bool = False

    def shed(self, why: str) -> None:
        self.shed_why = why
        assert self.room is not None
        if self.began:
            self.room.done(self, self.source, began=True)
        else:
            self.room.closed_waiting(self)
            self.room.done(self, self.source, began=False)


class Room:
    def __init__(self, slots: int = 4, waiting: int = 4, per_source: int = 100) -> None:
        self.now = 0.0
        self.room: Admission = Admission(
            slots, waiting, per_source, lambda: self.room.started.total(), lambda: self.now
        )

    def connect(self, source: str) -> tuple[FakeTunnel, bool | None]:
        t = FakeTunnel(source, self.now, room=self.room)
        verdict = self.room.inbound(t, source)
        if verdict:
            t.began = True
            self.room.began(t, source)
        return t, verdict


def test_a_stalled_source_gives_its_slot_to_another_source() -> None:
    r = Room()
    attackers = [r.connect("10.0.0.2")[0] for _ in range(3)] + [r.connect("10.0.0.3")[0]]
    r.now += STALLED
    legit, verdict = r.connect("10.0.0.9")
    assert verdict is True  # started at once ...
    shed = [a for a in attackers if a.shed_why]
    assert len(shed) == 1 and shed[0].source == "10.0.0.2"  # ... from the biggest source
    assert "no ClientHello after 0.5s" in shed[0].shed_why


def test_a_burst_of_fresh_connections_is_never_shed() -> None:
    """A real client sends its hello at once: connections younger than STALLED
    are never taken for idle ones, so a burst of real clients waits, as before."""
    r = Room()
    first = [r.connect(f"10.0.1.{i}")[0] for i in range(4)]
    r.now += STALLED / 2
    _, verdict = r.connect("10.0.0.9")
    assert verdict is False and not any(t.shed_why for t in first)


def test_a_connection_that_sent_its_hello_is_never_shed() -> None:
    r = Room()
    busy = [r.connect("10.0.0.2")[0] for _ in range(4)]
    for t in busy:
        t.conn.state = State.WAIT_CERTIFICATE
    r.now += 10
    _, verdict = r.connect("10.0.0.9")
    assert verdict is False and not any(t.shed_why for t in busy)


def test_a_full_waiting_room_sheds_the_biggest_sources_oldest_waiter() -> None:
    r = Room(slots=1, waiting=3)
    r.connect("10.0.0.5")  # the slot (fresh: never shed)
    w = [r.connect("10.0.0.2")[0] for _ in range(2)] + [r.connect("10.0.0.3")[0]]
    legit, verdict = r.connect("10.0.0.9")
    assert verdict is False  # queued, in place of ...
    assert w[0].shed_why and "waiting" in w[0].shed_why  # ... 10.0.0.2's oldest
    _, verdict = r.connect("10.0.0.2")
    assert verdict is None  # the biggest source itself is refused, not served by shedding


def test_a_freed_slot_goes_to_the_waiting_source_holding_the_fewest() -> None:
    r = Room(slots=2, waiting=8)
    a1, _ = r.connect("10.0.0.2")
    r.connect("10.0.0.2")
    r.connect("10.0.0.2")  # waits
    legit, _ = r.connect("10.0.0.9")  # waits, after it
    r.room.done(a1, "10.0.0.2", began=True)
    tunnel, _route = r.room.next_waiter()
    assert tunnel is legit


def test_rebalance_sheds_a_stalled_slot_for_a_waiter() -> None:
    r = Room(slots=2, waiting=8)
    held = [r.connect("10.0.0.2")[0] for _ in range(2)]
    legit, verdict = r.connect("10.0.0.9")  # too early to shed: waits
    assert verdict is False
    assert r.room.rebalance() == 0
    r.now += STALLED
    assert r.room.rebalance() == 1 and held[0].shed_why
    assert r.room.next_waiter() == (legit, None)
