"""The sidecar's recent handshakes, whole: a bounded ring of traces for
``/handshakes`` and a live feed for ``/events`` (the console draws each one as a
ladder). What it keeps is public: message names, sizes, timings and bytes (MTD/1's
handshake crosses in clear: ``/handshake-bytes``), the peer's certificate chain and
stapled status as received, the checks that passed and the one that failed. Never a
key, a secret or a byte of application data.

Certificates are turned into facts only when someone asks (the facts are cached
per certificate), so a sidecar nobody watches pays a deque append per handshake.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import functools
import itertools
import json
from dataclasses import dataclass
from typing import Any

from mtlsdemo import telemetry
from mtlsdemo.sidecar.outcome import HandshakeOutcome
from mtlsdemo.trust.certinfo import der_facts, staple_facts

KEEP = 200  # handshakes in the ring (~3-6 KiB each with the messages' bytes; ML-DSA ~20)
# The admin shares the data path's loop (the audit's F3: 4 clients reading
# /handshakes took a tunnel from 4 to 212 ms; 400 idle /events readers, 71 ms and
# 330 MB): each entry is encoded once, live readers are capped, and a reader that
# falls QUEUE events behind is dropped (counted) instead of buffering for it.
QUEUE = 256  # events queued per live subscriber; a reader that far behind is dropped
MAX_SUBSCRIBERS = 32  # live /events streams at once (the console holds one per sidecar)


@dataclass(frozen=True)
class Entry:
    id: int
    at: dt.datetime
    sidecar: str
    outcome: HandshakeOutcome

    @functools.cached_property
    def encoded(self) -> str:
        """The entry as JSON, made once: every /handshakes and /events reader shares it."""
        return json.dumps(self.as_dict(), default=str)

    def as_dict(self) -> dict[str, Any]:
        o = self.outcome
        e = o.error
        t0 = o.ladder[0].clock if o.ladder else 0.0
        return {
            "id": self.id,
            # a session that failed after its handshake succeeded (a bad record), or a handshake
            "kind": "session" if o.failed_step == "data" else "handshake",
            "at": self.at.isoformat(timespec="milliseconds"),
            "sidecar": self.sidecar,
            "role": o.role,
            "label": o.label,
            "local": o.local,
            "peer": o.peer,
            "peer_address": o.peer_address,
            "client": o.local if o.role == "client" else o.peer,
            "server": o.peer if o.role == "client" else o.local,
            "suite": o.suite,
            "duration_ms": round(o.duration * 1e3, 1),
            "outcome": o.outcome,
            "origin": o.origin,
            # who raised the failure, in people's words: this side, or the peer
            "rejected_by": "" if e is None else (o.local if e.origin == "local" else o.peer),
            # False: the peer's alert came in clear before keys, so "the peer refused"
            # is only its claim (anyone on the path could have sent it)
            "rejected_by_verified": None if e is None else e.origin != "remote_unverified",
            "detail": "" if e is None else e.detail,
            "step": o.failed_step,
            # 0.1 ms steps, not µs: exact server timings on an admin port are a timing
            # channel (the opt-in RSA-OAEP suites' decryption); the ladder needs no more
            "phases_ms": {k: round(v * 1e3, 1) for k, v in o.phases.items()},
            "messages": [
                {
                    "direction": d,
                    "name": name,
                    "size": size,
                    "step": step,
                    "at_ms": round((at - t0) * 1e3, 1),
                }
                for d, name, size, step, at, _raw in o.ladder
            ],
            "checks": list(o.checks),
            # the scheme the peer's CertificateVerify verified with ("": none yet)
            "peer_signature": o.peer_signature,
            "status_problem": o.status_problem,
            "resumed": o.resumed,
            "resumption": o.resumption,
            "peer_certificates": [der_facts(der) for der in o.peer_chain],
            "peer_status": staple_facts(o.peer_status) if o.peer_chain else None,
        }


class HandshakeJournal:
    def __init__(self, name: str, keep: int = KEEP) -> None:
        self.name = name
        self.ring: collections.deque[Entry] = collections.deque(maxlen=keep)
        self._ids = itertools.count(1)
        # a live reader's queue: entries, then None when it is dropped (one spare slot)
        self._subscribers: set[asyncio.Queue[Entry | None]] = set()

    def add(self, o: HandshakeOutcome) -> None:
        entry = Entry(next(self._ids), dt.datetime.now(dt.UTC), self.name, o)
        self.ring.append(entry)
        for q in list(self._subscribers):
            if q.qsize() >= QUEUE:  # it fell a whole queue behind: end its stream
                q.put_nowait(None)
                self._subscribers.discard(q)
                telemetry.ADMIN_EVENTS_DROPPED.labels("slow").inc()
            else:
                q.put_nowait(entry)

    @property
    def last_id(self) -> int:
        return self.ring[-1].id if self.ring else 0

    def entries(
        self, since: int = 0, limit: int = KEEP, failures_only: bool = False
    ) -> list[Entry]:
        """Newest first; only ids above ``since``; at most ``limit`` (and the ring)."""
        out: list[Entry] = []
        for entry in reversed(self.ring):
            if entry.id <= since or len(out) >= limit:
                break
            if failures_only and entry.outcome.error is None:
                continue
            out.append(entry)
        return out

    def get(self, entry_id: int) -> Entry | None:
        """One entry still in the ring, by id."""
        return next((e for e in reversed(self.ring) if e.id == entry_id), None)

    def recent(
        self, since: int = 0, limit: int = KEEP, failures_only: bool = False
    ) -> list[dict[str, Any]]:
        """Newest first; only ids above ``since``."""
        return [e.as_dict() for e in self.entries(since, limit, failures_only)]

    def summaries(self, limit: int) -> list[dict[str, Any]]:
        """/status's recent_handshakes: the last ``limit`` handshakes (not the
        session failures), newest first, in their short form."""
        out: list[dict[str, Any]] = []
        for entry in reversed(self.ring):
            if len(out) >= limit:
                break
            o = entry.outcome
            if o.failed_step == "data":
                continue
            out.append(
                {
                    "id": entry.id,  # as in /handshakes: the full record of this one
                    "at": entry.at.isoformat(timespec="milliseconds"),
                    "role": o.role,
                    "peer": o.peer,
                    "peer_address": o.peer_address,
                    "suite": o.suite,
                    "duration_ms": round(o.duration * 1000, 3),
                    "outcome": o.outcome,
                    "origin": o.origin,
                    "detail": o.error.detail if o.error is not None else "",
                    "resumed": o.resumed,
                }
            )
        return out

    def subscribe(self) -> asyncio.Queue[Entry | None] | None:
        """A live reader's queue, or None at MAX_SUBSCRIBERS (counted)."""
        if len(self._subscribers) >= MAX_SUBSCRIBERS:
            telemetry.ADMIN_EVENTS_DROPPED.labels("full").inc()
            return None
        q: asyncio.Queue[Entry | None] = asyncio.Queue(QUEUE + 1)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Entry | None]) -> None:
        self._subscribers.discard(q)
