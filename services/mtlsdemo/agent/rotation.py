"""When each workload's SVID is renewed: at half its lifetime, a little early by a
random jitter (so a fleet issued together does not renew together), and after a
failed issuance again soon, while the SVID in hand keeps serving until it expires
("expiry is revocation": nothing else takes a workload's identity away)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from mtlsdemo.agent.svid import Svid

JITTER = 0.1  # of the lifetime: renew between 40 % and 50 % of it
HISTORY = 20  # rotations remembered per workload (the console's list)
RETRY_MIN = dt.timedelta(seconds=1)
RETRY_MAX = dt.timedelta(seconds=30)


@dataclass(frozen=True)
class Rotated:
    """One issuance, as the status and the console list it."""

    serial: str
    issued_at: float
    not_after: float


@dataclass
class Rotation:
    """One workload's SVID in hand and when the next is due."""

    svid: Svid
    renew_at: dt.datetime
    renewals: int = 0
    failures: int = 0
    last_error: str | None = None
    history: list[Rotated] = field(default_factory=list)

    @staticmethod
    def due(svid: Svid, jitter: Callable[[], float]) -> dt.datetime:
        """Half the lifetime, minus up to JITTER of it (``jitter()`` in [0, 1))."""
        life = svid.lifetime
        return svid.issued_at + life / 2 - life * (JITTER * jitter())

    @classmethod
    def first(cls, svid: Svid, jitter: Callable[[], float]) -> Rotation:
        r = cls(svid, cls.due(svid, jitter))
        r.history.append(_rotated(svid))
        return r

    def renewed(self, svid: Svid, jitter: Callable[[], float]) -> None:
        self.svid = svid
        self.renew_at = self.due(svid, jitter)
        self.renewals += 1
        self.last_error = None
        self.history = [*self.history, _rotated(svid)][-HISTORY:]

    def failed(self, error: str, now: dt.datetime) -> None:
        """Keep the SVID in hand; try again in a tenth of its lifetime (1 s .. 30 s)."""
        self.failures += 1
        self.last_error = error
        self.renew_at = now + min(max(self.svid.lifetime / 10, RETRY_MIN), RETRY_MAX)

    def remaining(self, now: dt.datetime) -> dt.timedelta:
        return self.svid.not_after - now


def _rotated(svid: Svid) -> Rotated:
    return Rotated(
        f"{svid.leaf.serial_number:x}", svid.issued_at.timestamp(), svid.not_after.timestamp()
    )
