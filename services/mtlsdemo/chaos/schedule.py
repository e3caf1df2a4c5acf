"""A chaos run's fault schedule from a seed: reproducible, bounded in count and
time, every kind in turn (shuffled by the seed), the last stretch left quiet so
recovery can be measured."""

from __future__ import annotations

import random
from dataclasses import dataclass

# kind -> (what it does, (min, max) seconds held: down time, pause, fault on)
KINDS: dict[str, tuple[str, tuple[float, float]]] = {
    "kill:ledger": ("SIGKILL the ledger, restart it", (0.5, 1.5)),
    "kill:ledger-sidecar": ("SIGKILL the ledger's sidecar, restart it", (0.5, 1.5)),
    "kill:gateway-sidecar": ("SIGKILL the gateway's sidecar, restart it", (0.5, 1.5)),
    "kill:gateway": ("SIGKILL the gateway, restart it", (0.5, 1.5)),
    "pause:ledger-sidecar": (
        "SIGSTOP the ledger's sidecar past the handshake deadline",
        (3.0, 4.0),
    ),
    "pause:gateway-sidecar": (
        "SIGSTOP the gateway's sidecar past the handshake deadline",
        (3.0, 4.0),
    ),
    "net:latency": ("add 100-300 ms per chunk between the sidecars", (2.0, 4.0)),
    "net:reset": ("reset every sidecar-to-sidecar connection mid-record", (0.0, 0.0)),
    "net:partial": ("split every write between the sidecars into 1-7 bytes", (2.0, 3.0)),
    "net:stall": ("stop forwarding between the sidecars", (2.0, 4.0)),
    "net:corrupt": ("flip a byte in the next 3 chunks between the sidecars", (0.0, 0.0)),
    "certs:renew": ("re-issue both sidecars' certificates (hot reload)", (0.0, 0.0)),
    "certs:revoke": ("revoke the ledger's certificate, re-issue it at once", (0.0, 0.0)),
    "certs:rotate-ca": (
        "roll the CA over: prepare, switch, finish, each once all reloaded",
        (0.0, 0.0),
    ),
}
MIN_SPACING = 3.0  # seconds between two faults' starts
QUIET_TAIL = 0.2  # of the duration, at the end: no new fault


@dataclass(frozen=True)
class Fault:
    at: float  # seconds from the start of the load
    kind: str
    hold: float  # seconds down / paused / on
    latency: float = 0.0  # net:latency only

    @property
    def what(self) -> str:
        return KINDS[self.kind][0]


def plan(seed: int, duration: float, kinds: tuple[str, ...] = tuple(KINDS)) -> list[Fault]:
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r}; one of {', '.join(KINDS)}")
    rng = random.Random(seed)
    window = duration * (1 - QUIET_TAIL)
    slots = max(1, int(window // MIN_SPACING)) if kinds else 0
    # every process killed in turn first (the faults a short run must not miss), the
    # rest after; each group in the seed's order
    kills = [k for k in kinds if k.startswith("kill:")]
    others = [k for k in kinds if not k.startswith("kill:")]
    rng.shuffle(kills)
    rng.shuffle(others)
    order = kills + others
    faults = []
    slot = window / slots if slots else 0
    for i in range(slots if kinds else 0):
        kind = order[i % len(order)]
        lo, hi = KINDS[kind][1]
        hold = round(rng.uniform(lo, hi), 2)
        hold = min(hold, slot * 0.8)  # never overlapping the next one
        at = round(i * slot + rng.uniform(0.2, 0.5), 2)
        latency = round(rng.uniform(0.1, 0.3), 3) if kind == "net:latency" else 0.0
        faults.append(Fault(at, kind, hold, latency))
    return faults
