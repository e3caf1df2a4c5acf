"""A structured record of every message a connection sent or received."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TraceEntry:
    role: str  # the side that recorded it
    direction: str  # "send" or "recv"
    kind: str  # "handshake", "alert", "record"
    name: str  # message or record name
    size: int  # bytes on the wire for this message (without record header)
    step: str  # hello, certificate_verify, key_exchange, finished, data
    fields: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0  # the injected clock at the time, seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "direction": self.direction,
            "kind": self.kind,
            "name": self.name,
            "size": self.size,
            "step": self.step,
            "fields": self.fields,
            "at": self.at,
        }
