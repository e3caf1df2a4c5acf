"""Who may start a handshake now, who waits, and who is shed: the sidecar's
admission, fair across source addresses.

A handshake slot (``--max-pending-handshakes``) costs CPU and memory; a waiting
connection (``--max-waiting-handshakes``) a few KiB and no CPU. Per source
address at most ``--max-handshakes-per-source`` connections are short of their
handshake, and one source never takes the last eighth of the slots. That bounds
one source; several sources together could still fill both (the audit: six
loopback addresses of one-byte connections, and 14 of 17 legitimate handshakes
refused). So, under pressure, the source holding the most gives way:

- slots full: a newcomer from a source holding fewer slots sheds the oldest
  pending connection of the source holding the most that has shown no progress
  (not even its ClientHello after ``STALLED`` seconds: a real client sends it
  at once), and starts at once; a newcomer that found none waits, and the
  sidecar's once-a-second ``rebalance`` sheds for it when one stalls;
- waiting room full: a newcomer from a source with fewer waiters sheds the oldest
  waiter of the source with the most;
- a freed slot goes to the waiting source holding the fewest slots (oldest first
  within a source), not to whoever queued first.

A shed connection is ended with an ``overloaded`` alert, counted like a refusal.
Outbound connections (the local app's, no source) wait in their own line, first
served: they are this sidecar's own workload.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from mtlsdemo.handshake.states import State

T = TypeVar("T")  # a tunnel (anything with .conn.state, .started and .shed(why))
R = TypeVar("R")  # what a waiter carries to its start (an outbound route)

# seconds without a ClientHello after which a pending connection counts as stalled
# (sheddable): a client sends its hello right after connecting, so a burst of real
# clients is never shed, while connections held idle on purpose are
STALLED = 0.5


class Admission(Generic[T, R]):
    """The counters and queues; the sidecar calls it and carries out its verdicts."""

    def __init__(
        self,
        max_pending: int,
        max_waiting: int,
        per_source: int,
        pending: Callable[[], int],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.max_pending, self.max_waiting, self.per_source = max_pending, max_waiting, per_source
        self._pending = pending  # the observer's counter of handshakes in progress
        self._clock = clock  # the tunnels' ``started`` clock
        self.held: collections.Counter[str] = collections.Counter()  # per source: short of done
        self.started: collections.Counter[str] = collections.Counter()  # per source: in a slot
        # per source, insertion-ordered (oldest first): who holds a slot, who waits
        self._slots: dict[str, dict[T, None]] = {}
        self._waiting: dict[str | None, collections.deque[tuple[T, R | None]]] = {}
        self._queue_of: dict[T, str | None] = {}  # a waiter's queue (its source, or None)
        self.waiting_count = 0
        self.shed_count = 0

    # ------------------------------------------------------------------ shares
    @property
    def source_share(self) -> int:
        return self.max_pending - self.max_pending // 8

    def may_start(self, source: str | None) -> bool:
        if self._pending() >= self.max_pending:
            return False
        return source is None or self.started[source] < self.source_share

    # ------------------------------------------------------------------ verdicts
    def outbound(self, tunnel: T, route: R) -> bool | None:
        """The local app's connection: True start, False queued, None refuse."""
        if self._pending() < self.max_pending and not self.waiting_count:
            return True
        if self.waiting_count < self.max_waiting:
            self._enqueue(None, tunnel, route)
            return False
        return None

    def inbound(self, tunnel: T, source: str) -> bool | None:
        """A peer's connection from ``source``: True start, False queued, None refuse."""
        if self.per_source and self.held[source] >= self.per_source:
            return None
        if not self.may_start(source) and self._pending() >= self.max_pending:
            self._shed_a_slot(source)  # frees one at once when it finds a victim
        if self.may_start(source):
            verdict = True
        elif self.waiting_count < self.max_waiting or self._shed_a_waiter(source):
            self._enqueue(source, tunnel, None)
            verdict = False
        else:
            return None
        self.held[source] += 1
        return verdict

    def _shed_a_slot(self, source: str | None) -> bool:
        """Shed one stalled slot of the source holding the most, if it holds more
        than ``source`` (None: the local app's, which holds none)."""
        mine = 0 if source is None else self.started[source]
        now = self._clock()
        for victim_source in sorted(self._slots, key=lambda s: -self.started[s]):
            if self.started[victim_source] <= mine:
                return False
            for t in self._slots[victim_source]:
                if (
                    t.conn.state is State.WAIT_CLIENT_HELLO  # type: ignore[attr-defined]
                    and now - t.started >= STALLED  # type: ignore[attr-defined]
                ):
                    self.shed_count += 1
                    t.shed(  # type: ignore[attr-defined]
                        f"shed: no ClientHello after {now - t.started:.1f}s while the "  # type: ignore[attr-defined]
                        f"handshake slots were full and {victim_source} held the most "
                        f"({self.started[victim_source]})"
                    )
                    return True
        return False

    def rebalance(self) -> int:
        """For connections waiting while stalled ones hold the slots: shed those
        (the source holding the most first) so the waiters start. How many shed."""
        shed = 0
        if self._pending() < self.max_pending:
            return 0  # a free slot: the waiters are being admitted already
        for _ in range(self.waiting_count):  # one slot per waiter at most
            fewest = min(
                self._waiting, key=lambda s: -1 if s is None else self.started[s], default=None
            )
            if not self._shed_a_slot(fewest):
                break
            shed += 1
        return shed

    def _shed_a_waiter(self, source: str) -> bool:
        mine = len(self._waiting.get(source, ()))
        victim_source = max(
            (s for s, q in self._waiting.items() if s is not None and len(q) > mine),
            key=lambda s: len(self._waiting[s]),
            default=None,
        )
        if victim_source is None:
            return False
        victim, _ = self._waiting[victim_source][0]
        self.shed_count += 1
        victim.shed(  # type: ignore[attr-defined]
            f"shed: waiting while the waiting room was full and {victim_source} held the most "
            f"places ({len(self._waiting[victim_source])})"
        )
        # the shed tunnel's close left the queue (closed_waiting): a place is free
        return self.waiting_count < self.max_waiting

    # ------------------------------------------------------------------ bookkeeping
    def _enqueue(self, source: str | None, tunnel: T, route: R | None) -> None:
        self._waiting.setdefault(source, collections.deque()).append((tunnel, route))
        self._queue_of[tunnel] = source
        self.waiting_count += 1

    def began(self, tunnel: T, source: str) -> None:
        self.started[source] += 1
        self._slots.setdefault(source, {})[tunnel] = None

    def done(self, tunnel: T, source: str, began: bool) -> None:
        counters = (self.held, self.started) if began else (self.held,)
        for counter in counters:
            counter[source] -= 1
            if counter[source] <= 0:
                del counter[source]
        if began:
            slots = self._slots.get(source)
            if slots is not None:
                slots.pop(tunnel, None)
                if not slots:
                    del self._slots[source]

    def closed_waiting(self, tunnel: T) -> None:
        if tunnel not in self._queue_of:
            return
        source = self._queue_of.pop(tunnel)
        q = self._waiting.get(source)
        if q is None:
            return
        for i, (t, _route) in enumerate(q):
            if t is tunnel:
                del q[i]
                self.waiting_count -= 1
                if not q:
                    del self._waiting[source]
                return

    def next_waiter(self) -> tuple[T, R | None] | None:
        """Who takes a freed slot: the local app's first, then the waiting source
        holding the fewest slots (its oldest waiter)."""
        if self._pending() >= self.max_pending:
            return None
        eligible = [s for s in self._waiting if self.may_start(s)]
        if not eligible:
            return None
        source = min(eligible, key=lambda s: -1 if s is None else self.started[s])
        q = self._waiting[source]
        item = q.popleft()
        self._queue_of.pop(item[0], None)
        self.waiting_count -= 1
        if not q:
            del self._waiting[source]
        return item
