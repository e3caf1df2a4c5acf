"""The CRL file a service or sidecar checks its peers against, re-read when it
changes (``certs revoke`` rewrites it; in Kubernetes the ``mtlsdemo-crl`` Secret
volume swaps it through ``..data``), verified against the current bundle.

What it never forgets: the CRLs in force (kept in ``state``, so a restart on a
rolled-back file refuses it as the running process did, revocations intact), and an
issuer's revocations when a new file no longer carries that issuer's CRL (a CA
rollover's file with only the new CA's list). What it never trusts blindly: a CRL
past its nextUpdate by more than ``CRL_GRACE`` refuses that issuer's peers
(``status_stale``), and with ``required`` an issuer without a CRL in force does too
(``status_missing``): a missing file then fails closed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlsdemo import telemetry
from mtlsdemo.trust.failures import Failure, VerificationFailed
from mtlsdemo.trust.status import RevocationLists, Revoked

log = logging.getLogger(__name__)

# how long after its nextUpdate a CRL still answers: the publisher (refresh-status
# every 15 min, window 1 h) may be late once without taking the mesh down
CRL_GRACE = dt.timedelta(hours=1)
CRL_STATE_FILE = ".crl-seen"  # the high-water mark's default name, beside the identity
REFRESH = "refresh it: mtlsdemo certs refresh-status"


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)  # follows the ..data symlink of a Secret volume
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _z(t: dt.datetime) -> str:
    return f"{t:%Y-%m-%dT%H:%M:%SZ}"


class CrlState:
    """The CRLs in force, kept in a file beside the identity (``.crl-seen``): a
    restart starts from them, so a rolled-back ``crl.pem`` is refused as the
    running process refused it, and the revocations stay in force meanwhile.
    Each CRL is signed: it is verified again against the bundle when read back."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.problem: str | None = None
        self._saved = b""

    def load(self, anchors: Sequence[x509.Certificate]) -> RevocationLists:
        if self.path is None:
            return RevocationLists(())
        try:
            data = self.path.read_bytes()
            lists = RevocationLists.parse(data, anchors, str(self.path))
        except FileNotFoundError:
            return RevocationLists(())
        except (OSError, ValueError) as e:
            # unreadable: start from the CRL file alone, and say so
            self.problem = f"{self.path}: the CRLs kept last time cannot be read ({e})"
            log.warning("%s", self.problem)
            return RevocationLists(())
        self._saved = data
        return lists

    def save(self, lists: RevocationLists) -> None:
        from mtlsdemo.pki.files import write_atomic  # files imports trust: no cycle at load

        data = b"".join(crl.public_bytes(serialization.Encoding.PEM) for crl in lists.crls)
        if self.path is None or not data or data == self._saved:
            return
        try:
            write_atomic(self.path, data, 0o644)
            self._saved, self.problem = data, None
        except OSError as e:
            self.problem = (
                f"{self.path}: cannot keep the CRLs in force ({e.strerror}): "
                "a restart could accept an older CRL"
            )
            log.warning("%s", self.problem)


class CrlFile:
    """``lookup(cert)``/``revoked(issuer, serial)`` against the newest good CRLs.
    An unreadable, badly signed or rolled-back file is refused, counted, logged,
    and the lists in force stay (fail closed on what was known). Either lookup
    raises ``VerificationFailed`` when the CRL cannot answer for that issuer
    (stale past the grace; missing while ``required``)."""

    def __init__(
        self,
        path: Path,
        anchors: Callable[[], Sequence[x509.Certificate]],
        required: bool = False,
        state: Path | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.path = path
        self.anchors = anchors  # the current bundle (it may reload too)
        self.required = required
        self.state = CrlState(state)
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self.lists = self.state.load(anchors())
        self.last_error: str | None = None
        self.missing = False
        self._first = True
        self.check()

    def check(self) -> None:
        stamp = _stamp(self.path)
        if stamp == self._stamp and not self._first:
            return
        with self._lock:
            if stamp == self._stamp and not self._first:
                return
            self._first, self._stamp = False, stamp
            self.missing = stamp is None
            if stamp is None:
                log.warning(
                    "CRL %s: missing; %s",
                    self.path,
                    "peers are refused (status_missing): --crl-required"
                    if self.required
                    else "only the revocations already loaded apply",
                )
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
            lists, kept = lists.keeping(self.lists, self.anchors())
            for name in kept:
                log.warning(
                    "CRL %s no longer carries %s's CRL: keeping the one in force", self.path, name
                )
            self.lists, self.last_error = lists, None
            self.state.save(lists)
            telemetry.CRL_RELOADS.labels("success").inc()
            nxt = lists.earliest_next_update if lists.crls else None
            telemetry.crl_loaded(
                lists.oldest_this_update.timestamp() if lists.crls else None,
                nxt.timestamp() if nxt is not None else None,
                lists.revoked_count,
            )
            log.info("CRL loaded from %s: %d revoked serial(s)", self.path, lists.revoked_count)

    def _answer(self, issuer_der: bytes, serial: int) -> Revoked | None:
        self.check()  # one stat per call: a revocation applies to the very next call
        found = self.lists.lookup_serial(issuer_der, serial)
        if found is not None:
            return found  # a revocation holds however old its list
        crl = self.lists.crl_of(issuer_der)
        if crl is None:
            if self.required:
                issuer = next(
                    (
                        ca.subject.rfc4514_string()
                        for ca in self.anchors()
                        if ca.subject.public_bytes() == issuer_der
                    ),
                    "the peer's issuer",
                )
                why = "the file is missing" if self.missing else "the file has none for it"
                raise VerificationFailed(
                    Failure.STATUS_MISSING,
                    f"no CRL of {issuer} in {self.path} ({why}) and --crl-required "
                    "is set: revocation cannot be checked; publish it "
                    "(mtlsdemo certs refresh-status)",
                )
            return None
        nxt = crl.next_update_utc
        now = self.clock()
        if nxt is not None and now > nxt + CRL_GRACE:
            raise VerificationFailed(
                Failure.STATUS_STALE,
                f"the CRL of {crl.issuer.rfc4514_string()} ({self.path}) passed its "
                f"nextUpdate {_z(nxt)} {_ago(now - nxt)} ago (grace {_ago(CRL_GRACE)}): "
                f"revocation cannot be checked; {REFRESH}",
            )
        return None

    def lookup(self, cert: x509.Certificate) -> Revoked | None:
        return self._answer(cert.issuer.public_bytes(), cert.serial_number)

    def revoked(self, issuer_der: bytes, serial: int) -> str | None:
        """The handshake core's question (PeerPolicy.revoked): why it is revoked, or None."""
        found = self._answer(issuer_der, serial)
        return None if found is None else found.describe()

    def status(self) -> dict[str, object]:
        """For /status: what is in force and what is wrong with it."""
        return {
            "file": str(self.path),
            "required": self.required,
            "missing": self.missing,
            "revoked_serials": self.lists.revoked_count,
            "last_error": self.last_error,
            "kept_in": str(self.state.path) if self.state.path else None,
            "kept_problem": self.state.problem,
        }


def _ago(d: dt.timedelta) -> str:
    s = int(d.total_seconds())
    if s >= 86400:
        return f"{s // 86400}d{(s % 86400) // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s"
