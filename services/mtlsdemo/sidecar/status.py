"""What the sidecar reports on /status: recent handshakes and the mesh edges
(the `linkerd viz edges` view: who talked to whom, with which suite, how often)."""

from __future__ import annotations

import collections
import datetime as dt
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mtlsdemo.sidecar.observer import HandshakeOutcome


@dataclass
class HandshakeRecord:
    at: str
    role: str
    peer: str
    peer_address: str
    suite: str
    duration_ms: float
    outcome: str  # success, or the failure reason
    origin: str  # none, local, remote
    detail: str = ""  # for a failure: what exactly (the same text as the log line)


@dataclass
class Edge:
    role: str
    local: str
    peer: str
    suite: str
    ok: int = 0
    failed: int = 0
    last_reason: str = ""


class Status:
    def __init__(self, keep: int = 50) -> None:
        self.recent: collections.deque[HandshakeRecord] = collections.deque(maxlen=keep)
        self.edges: dict[tuple[str, str, str], Edge] = {}
        self.totals: collections.Counter[str] = collections.Counter()

    def record(self, o: HandshakeOutcome) -> None:
        outcome, origin = o.outcome, o.origin
        self.recent.append(
            HandshakeRecord(
                dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                o.role,
                o.peer,
                o.peer_address,
                o.suite,
                round(o.duration * 1000, 3),
                outcome,
                origin,
                o.error.detail if o.error is not None else "",
            )
        )
        key = (o.role, o.peer, o.suite)
        edge = self.edges.get(key)
        if edge is None:
            edge = self.edges[key] = Edge(o.role, o.local, o.peer, o.suite)
        if outcome == "success":
            edge.ok += 1
        else:
            edge.failed += 1
            edge.last_reason = f"{outcome} ({origin})"
        self.totals[outcome] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "handshakes": dict(self.totals),
            "edges": [asdict(e) for e in self.edges.values()],
            "recent_handshakes": [asdict(r) for r in reversed(self.recent)],
        }
