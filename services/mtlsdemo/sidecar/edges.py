"""What the sidecar reports on /status: the mesh edges
(the `linkerd viz edges` view: who talked to whom, with which suite, how often)."""

from __future__ import annotations

import collections
from dataclasses import asdict, dataclass
from typing import Any

from mtlsdemo.sidecar.journal import HandshakeJournal
from mtlsdemo.sidecar.outcome import HandshakeOutcome


@dataclass
class Edge:
    role: str
    local: str
    peer: str
    suite: str
    ok: int = 0
    failed: int = 0
    last_reason: str = ""
    resumed: int = 0  # of the ok ones: from a session ticket
    # the peer's signature scheme in its last full handshake (e.g. MLDSA65): whether its
    # identity is quantum-safe, read by the console
    peer_signature: str = ""


class Status:
    """Edges and totals; the recent handshakes are the journal's (one ring, not two)."""

    def __init__(self, journal: HandshakeJournal | None = None, keep: int = 50) -> None:
        self.journal = journal if journal is not None else HandshakeJournal("sidecar")
        self.keep = keep
        self.edges: dict[tuple[str, str, str], Edge] = {}
        self.totals: collections.Counter[str] = collections.Counter()

    def record(self, o: HandshakeOutcome) -> None:
        outcome, origin = o.outcome, o.origin
        key = (o.role, o.peer, o.suite)
        edge = self.edges.get(key)
        if edge is None:
            edge = self.edges[key] = Edge(o.role, o.local, o.peer, o.suite)
        if outcome == "success":
            edge.ok += 1
            edge.resumed += o.resumed
            if o.peer_signature:  # a full handshake (a resumed one has no signature)
                edge.peer_signature = o.peer_signature
        else:
            edge.failed += 1
            edge.last_reason = f"{outcome} ({origin})"
        self.totals[outcome] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "handshakes": dict(self.totals),
            "edges": [asdict(e) for e in self.edges.values()],
            "recent_handshakes": self.journal.summaries(self.keep),
        }
