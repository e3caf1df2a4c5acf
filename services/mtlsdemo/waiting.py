"""The one polling helper: wait for a condition with a deadline, never a fixed sleep.

Used by the local runner, the benches and every test tier, so "ready" means the
same thing everywhere and a timeout always says what it was waiting for and what
it saw last.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """The condition did not hold before the deadline."""


def wait_until(
    probe: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    ignore: tuple[type[BaseException], ...] = (),
    check: Callable[[], None] | None = None,
    describe: Callable[[], object] | None = None,
) -> T:
    """Call ``probe`` until it returns something truthy and return that.

    ``ignore``: exceptions that mean "not yet" (a port not listening yet).
    ``check``: called before every probe; it raises to end the wait early (a
    child process that died will never become ready).
    ``describe``: called on timeout; what it returns goes into the message
    (what is still missing), in place of the probe's last value.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        if check is not None:
            check()
        try:
            value = probe()
        except ignore as e:
            last = e
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            seen = describe() if describe is not None else last
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what} (last: {seen!r})")
        time.sleep(interval)
