"""Human durations for flags: "30d", "12h", "90m", "45s", or a bare number of days."""

from __future__ import annotations

import datetime as dt
import re

from mtlsdemo.pki.errors import PkiError

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhms]?)\s*$")


def parse_duration(text: str, flag: str) -> dt.timedelta:
    m = _PATTERN.match(str(text))
    if not m:
        raise PkiError(f"{flag}: {text!r} is not a duration (examples: 30d, 12h, 90m, 45s)")
    value, unit = float(m.group(1)), m.group(2) or "d"
    return dt.timedelta(seconds=value * _UNITS[unit])


def human(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds >= 86400:
        return f"{sign}{seconds // 86400}d{(seconds % 86400) // 3600}h"
    if seconds >= 3600:
        return f"{sign}{seconds // 3600}h{(seconds % 3600) // 60}m"
    return f"{sign}{seconds // 60}m{seconds % 60}s"
