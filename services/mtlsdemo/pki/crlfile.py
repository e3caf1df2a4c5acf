"""The CRL file a native gRPC service checks its callers against, re-read when it
changes (``certs revoke`` rewrites it; in Kubernetes the ``mtlsdemo-crl`` Secret
volume swaps it through ``..data``), verified against the service's own bundle.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509

from mtlsdemo import telemetry
from mtlsdemo.trust.status import RevocationLists, Revoked

log = logging.getLogger(__name__)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)  # follows the ..data symlink of a Secret volume
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class CrlFile:
    """``lookup(cert)`` against the newest good CRL. A missing file means nothing
    revoked yet; an unreadable or badly signed one is refused, counted, logged,
    and the previous lists stay in force (fail closed on what was known)."""

    def __init__(self, path: Path, anchors: Callable[[], Sequence[x509.Certificate]]) -> None:
        self.path = path
        self.anchors = anchors  # the service's current bundle (it may reload too)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self.lists = RevocationLists(())
        self.last_error: str | None = None
        self.check()

    def check(self) -> None:
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            self._stamp = stamp
            if stamp is None:
                log.warning("CRL %s: missing; no serial is known as revoked", self.path)
                return
            try:
                lists = RevocationLists.parse(
                    self.path.read_bytes(), self.anchors(), str(self.path)
                )
                rollback = lists.rollback_from(self.lists)
                if rollback is not None:
                    raise ValueError(f"{self.path}: rollback refused: {rollback}")
            except (OSError, ValueError) as e:
                self.last_error = str(e)
                telemetry.CRL_RELOADS.labels("failure").inc()
                log.error("CRL reload rejected, keeping the previous one: %s", e)
                return
            self.lists, self.last_error = lists, None
            telemetry.CRL_RELOADS.labels("success").inc()
            nxt = lists.earliest_next_update if lists.crls else None
            telemetry.crl_loaded(
                lists.oldest_this_update.timestamp() if lists.crls else None,
                nxt.timestamp() if nxt is not None else None,
                lists.revoked_count,
            )
            log.info("CRL loaded from %s: %d revoked serial(s)", self.path, lists.revoked_count)

    def lookup(self, cert: x509.Certificate) -> Revoked | None:
        self.check()  # one stat per call: a revocation applies to the very next call
        return self.lists.lookup(cert)

    def revoked(self, issuer_der: bytes, serial: int) -> str | None:
        """The handshake core's question (PeerPolicy.revoked): why it is revoked, or None."""
        self.check()
        found = self.lists.lookup_serial(issuer_der, serial)
        return None if found is None else found.describe()
