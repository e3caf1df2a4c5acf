"""Steady traffic for the rollover tests: a call in a loop, every failure kept."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Traffic:
    """New connections (each a new handshake) in a loop until stopped; every
    failure is kept with its reason."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.call = call
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.call()
                self.ok += 1
            except Exception as e:  # every kind of failure counts as a failed call
                self.failures.append(f"{type(e).__name__}: {e}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
