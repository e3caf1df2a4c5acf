"""Everything the sidecar tells the outside about its tunnels, in one place:
Prometheus metrics, the /status page and the log. Tunnels hand it typed
outcomes; they never touch a metric, the status page or the logger themselves.

Failure lines are rate-limited per kind and reason: the first one in an interval
is logged at once (with both identities: who rejected whom, and why), the rest
are counted and reported as one line when the interval ends, so a connect flood
cannot turn the log into the bottleneck.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from mtlsdemo import telemetry as t
from mtlsdemo.handshake import ProtocolError, Reason
from mtlsdemo.sidecar.edges import Status
from mtlsdemo.sidecar.outcome import HandshakeOutcome

log = logging.getLogger("mtlsdemo.sidecar.tunnel")
LOG_INTERVAL = 5.0  # seconds: at most one failure line per (kind, reason) per interval


class RateLimitedLog:
    """One line per key per interval; the suppressed rest summed up in the next line."""

    def __init__(
        self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval, self.clock = interval, clock
        self._window: dict[
            tuple[str, str], tuple[float, int]
        ] = {}  # key -> (window start, suppressed)

    def __call__(self, key: tuple[str, str], level: int, msg: str, *args: object) -> bool:
        now = self.clock()
        start, suppressed = self._window.get(key, (None, 0))
        if start is not None and now - start < self.interval:
            self._window[key] = (start, suppressed + 1)
            return False
        if suppressed:
            msg += f" (+{suppressed} more {key[0]} {key[1]} in the last {self.interval:g}s, not logged)"
        self._window[key] = (now, 0)
        log.log(level, msg, *args)
        return True

    def flush(self) -> None:
        """Report what a finished interval suppressed, even if nothing came after it."""
        now = self.clock()
        for key, (start, suppressed) in list(self._window.items()):
            if suppressed and now - start >= self.interval:
                log.warning(
                    "%d more %s %s in the last %gs, not logged one by one",
                    suppressed,
                    key[0],
                    key[1],
                    self.interval,
                )
                self._window[key] = (now, 0)


class Observer:
    def __init__(self, status: Status, rate_limit: RateLimitedLog | None = None) -> None:
        self.status = status
        self.journal = status.journal
        self.limited = rate_limit or RateLimitedLog()
        self.pending = 0  # handshakes started and not ended, both roles (admission control)

    def handshake_started(self, role: str) -> None:
        self.pending += 1
        t.HANDSHAKES_IN_PROGRESS.labels(role).inc()

    def handshake_ended(self, role: str) -> None:
        self.pending -= 1
        t.HANDSHAKES_IN_PROGRESS.labels(role).dec()

    def not_dialled(self, o: HandshakeOutcome) -> None:
        """A route whose remote sidecar could not be reached: on /status and in the
        journal, not in the handshake metrics (no handshake began)."""
        self.status.record(o)
        self.journal.add(o)

    def handshake(self, o: HandshakeOutcome) -> None:
        self.status.record(o)
        self.journal.add(o)
        e = o.error
        resumed = "true" if o.resumed else "false"
        if o.ticket_refusal is not None:
            t.TICKET_REFUSALS.labels(o.role, *o.ticket_refusal).inc()
        if o.ticket_issued:
            t.TICKETS_ISSUED.inc()
        if e is None:
            t.HANDSHAKES.labels(o.role, o.suite, "success", "none", "none", resumed).inc()
            t.HANDSHAKE_DURATION.labels(o.role, o.suite, resumed).observe(o.duration)
            for phase, seconds in o.phases.items():
                t.HANDSHAKE_PHASE.labels(o.role, phase).observe(seconds)
            t.PEER_AUTHORIZATIONS.labels(o.peer, "allow").inc()
            t.SESSIONS_ACTIVE.labels(o.role).inc()
            if o.status_problem is not None:
                t.STATUS_SOFT_FAILURES.labels(o.status_problem).inc()
                self.limited(
                    ("status soft failures", o.status_problem),
                    logging.WARNING,
                    "accepted %s although its stapled status failed: %s (--require-status soft)",
                    o.peer,
                    o.status_problem,
                )
            log.debug(
                "handshake ok role=%s local=%s peer=%s suite=%s %.2fms",
                o.role,
                o.local,
                o.peer,
                o.suite,
                o.duration * 1e3,
            )
            return
        t.HANDSHAKES.labels(o.role, o.suite, "failure", e.reason.value, e.origin, resumed).inc()
        if e.reason is Reason.IDENTITY_MISMATCH and e.origin == "local" and e.peer_identity:
            t.PEER_AUTHORIZATIONS.labels(e.peer_identity, "deny").inc()
        self.limited(
            ("handshake failures", e.reason.value),
            logging.WARNING,
            "handshake failed: %s role=%s local=%s peer=%s peer_addr=%s suite=%s "
            "reason=%s origin=%s: %s",
            o.label,
            o.role,
            o.local,
            o.peer,
            o.peer_address,
            o.suite,
            e.reason.value,
            e.origin,
            e.detail,
        )

    def session_failed(self, o: HandshakeOutcome) -> None:
        """An established session ended by a record-layer failure (its handshake had
        succeeded: the journal shows the whole ladder, then the failed record)."""
        e = o.error
        assert e is not None
        t.RECORD_FAILURES.labels(e.reason.value).inc()
        self.journal.add(o)
        self.limited(
            ("session failures", e.reason.value),
            logging.WARNING,
            "session failed: %s role=%s local=%s peer=%s reason=%s origin=%s: %s",
            o.label,
            o.role,
            o.local,
            o.peer,
            e.reason.value,
            e.origin,
            e.detail,
        )

    def session_closed(self, role: str, seconds: float) -> None:
        t.SESSIONS_ACTIVE.labels(role).dec()
        t.SESSION_DURATION.observe(seconds)

    def overloaded(
        self, role: str, label: str, local: str, peer_address: str, pending: int
    ) -> None:
        """A connection refused at once: ``pending`` handshakes already running."""
        e = ProtocolError(
            Reason.OVERLOADED,
            f"{pending} handshakes already in progress (--max-pending-handshakes)",
        )
        self.handshake(
            HandshakeOutcome(role, label, local, "unknown", peer_address, "none", 0.0, e)
        )

    def traffic(
        self,
        records_sent: int,
        bytes_sent: int,
        records_received: int,
        bytes_received: int,
        key_updates: int,
        overhead: int,
    ) -> None:
        """Record-layer counts since the last call (pushed once a second, not per record:
        the counter locks cost more than the AES-GCM of a small record)."""
        if key_updates:
            t.KEY_UPDATES.inc(key_updates)
        if records_sent:
            t.RECORDS.labels("sent").inc(records_sent)
            t.RECORD_BYTES.labels("sent", "plaintext").inc(bytes_sent)
            t.RECORD_BYTES.labels("sent", "ciphertext").inc(bytes_sent + records_sent * overhead)
        if records_received:
            t.RECORDS.labels("received").inc(records_received)
            t.RECORD_BYTES.labels("received", "plaintext").inc(bytes_received)
            t.RECORD_BYTES.labels("received", "ciphertext").inc(
                bytes_received + records_received * overhead
            )

    def flush(self) -> None:
        self.limited.flush()
