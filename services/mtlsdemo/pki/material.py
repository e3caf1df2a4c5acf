"""The one identity loader: an identity directory (tls.crt, tls.key, ca.crt: a
mounted kubernetes.io/tls Secret or the bootstrap's output) read once per change,
validated, and handed on as exactly the bytes that were validated.

Every reloader uses ``IdentitySource``: the sidecar, the native gRPC servers and
the gateway's channel to the ledger.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.x509 import ocsp

from mtlsdemo import telemetry
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.files import fingerprint, parse_certs, reading
from mtlsdemo.pki.keys import check_key_mode, parse_private_key, public_key_der
from mtlsdemo.trust import Failure, TrustStore, VerificationFailed
from mtlsdemo.trust.spiffe import display_identity
from mtlsdemo.trust.status import check_status
from mtlsdemo.trust.verify import issued_by

FILES = ("tls.crt", "tls.key", "ca.crt")
STATUS_FILE = "tls.ocsp"  # the CA-signed status to staple; optional (older bootstraps)
SNAPSHOT_ATTEMPTS = 5  # re-reads when the files change while being read
log = logging.getLogger(__name__)


def files_stamp(directory: Path) -> tuple[Any, ...]:
    """(inode, mtime, size) of each identity file, following symlinks, so the
    ``..data`` symlink swap of a Kubernetes Secret volume shows up as a change."""
    out: list[Any] = []
    for f in (*FILES, STATUS_FILE):
        try:
            st = os.stat(directory / f)
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


@dataclass(frozen=True)
class IdentityMaterial:
    """One consistent snapshot of an identity directory, parsed and checked."""

    cert_chain_pem: bytes
    key_pem: bytes
    ca_pem: bytes
    chain: tuple[x509.Certificate, ...]
    key: Any
    cas: tuple[x509.Certificate, ...]
    problems: tuple[str, ...] = field(default=())  # chain or time checks that failed
    status: bytes = b""  # tls.ocsp: staple it as it is (revoked and stale included)
    status_next_update: float | None = None
    # other trust domains' bundles (SPIFFE federation), by trust domain: a Workload API
    # delivers them beside the SVID; an identity directory has none
    federated: tuple[tuple[str, tuple[x509.Certificate, ...]], ...] = ()

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def identity(self) -> str:
        return display_identity(self.leaf)

    @property
    def ca_fingerprints(self) -> list[str]:
        return [fingerprint(c) for c in self.cas]

    @classmethod
    def from_bytes(
        cls,
        crt: bytes,
        key: bytes,
        ca: bytes,
        where: Path,
        now: dt.datetime,
        status: bytes = b"",
        federated: tuple[tuple[str, tuple[x509.Certificate, ...]], ...] = (),
    ) -> IdentityMaterial:
        """Parse and check exactly these bytes. Unparsable files or a key that is
        not the certificate's raise PkiError; a chain that does not verify against
        the bundle at ``now``, or a status that is not this certificate's, is
        recorded in ``problems`` (the caller decides)."""
        chain = tuple(parse_certs(crt, str(where / "tls.crt")))
        cas = tuple(parse_certs(ca, str(where / "ca.crt")))
        priv = parse_private_key(key, str(where / "tls.key"))
        if public_key_der(priv.public_key()) != public_key_der(chain[0].public_key()):
            raise PkiError(f"{where / 'tls.key'}: does not match {where / 'tls.crt'}")
        problems: list[str] = []
        store = TrustStore(cas, cache_size=0)
        for role in ("server", "client"):  # our leaf serves both; one role is enough
            try:
                store.verify_certificates(chain, role, now)
                problems = []
                break
            except VerificationFailed as e:
                problems = [f"{e.failure.value}: {e.detail}"]
        next_update = None
        if status:
            issuer = next((c for c in cas if issued_by(chain[0], c)), cas[0])
            try:
                verdict = check_status(status, chain[0], issuer, now)
                next_update = verdict.next_update.timestamp()
            except VerificationFailed as e:
                # revoked or stale is the truth to staple; another certificate's is not
                if e.failure is Failure.STATUS_INVALID:
                    problems.append(f"{where / STATUS_FILE}: {e.detail}")
                else:
                    next_update = _next_update(status)
        return cls(crt, key, ca, chain, priv, cas, tuple(problems), status, next_update, federated)


def _next_update(status: bytes) -> float | None:
    try:
        nxt = ocsp.load_der_ocsp_response(status).next_update_utc
    except Exception:  # only a gauge: an unreadable status has none
        return None
    return nxt.timestamp() if nxt else None


def read_snapshot(directory: Path) -> tuple[bytes, bytes, bytes, bytes, Path]:
    """The three files as one snapshot. In a Kubernetes Secret volume they are
    symlinks through ``..data`` to a timestamped directory that the kubelet swaps
    atomically: resolve ``..data`` once and read all three from that directory,
    so the key and the certificate always come from the same version. A local
    directory is read under its lock, which the bootstrap holds while writing."""
    base = directory
    data = directory / "..data"
    if data.is_symlink():
        base = data.resolve()
    with reading(base):  # a local directory: its writer holds the lock (files.writing)
        check_key_mode(base / "tls.key")
        try:
            crt, key, ca = ((base / f).read_bytes() for f in FILES)
        except OSError as e:
            raise PkiError(
                f"{directory}: cannot read identity files: {e.strerror} ({e.filename})"
            ) from None
        try:
            status = (base / STATUS_FILE).read_bytes()
        except FileNotFoundError:
            status = b""
        except OSError as e:
            raise PkiError(f"{base / STATUS_FILE}: cannot read: {e.strerror}") from None
    return crt, key, ca, status, base


_warned: set[tuple[str, tuple[str, ...]]] = set()


def _warn_once(directory: Path, problems: Sequence[str]) -> None:
    """One line for all of an identity's problems, once per process: a command
    that loads the same directory twice (the client, then its diagnosis) and an
    identity with two problems used to print four WARNING lines before the one
    error that explains them."""
    key = (str(directory), tuple(problems))
    if not problems or key in _warned:
        return
    _warned.add(key)
    what = (
        problems[0]
        if len(problems) == 1
        else "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
    )
    log.warning(
        "%s: identity loaded with %s: %s",
        directory,
        "a problem" if len(problems) == 1 else f"{len(problems)} problems",
        what,
    )


class IdentityFeed(Protocol):
    """What follows an identity over time, whatever delivers it: an identity
    directory (``IdentitySource``) or a Workload API stream
    (``agent.client.WorkloadApiSource``). ``current`` is always a checked identity."""

    directory: Path  # where it comes from, as messages name it
    current: IdentityMaterial
    generation: int
    loaded_at: dt.datetime
    last_error: str | None

    def check(self) -> IdentityMaterial | None: ...


class IdentitySource:
    """An identity directory that follows its files: ``current`` is always a
    checked snapshot; ``check()`` takes a changed one or refuses it (counted in
    ``mtls_certificate_reloads_total`` and kept in ``last_error``)."""

    def __init__(self, directory: Path, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.directory = directory
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lock = threading.Lock()
        self._stamp, self.current = self._snapshot()
        _warn_once(directory, self.current.problems)  # start anyway: /readyz and peers say so
        self.generation = 0
        self.reloads = 0
        self.failures = 0
        self.last_error: str | None = None
        self._refused = b""  # the content of the files last refused
        self.loaded_at = self.clock()
        telemetry.export_certificate_expiry(self.current)

    def _snapshot(self) -> tuple[tuple[Any, ...], IdentityMaterial]:
        for _ in range(SNAPSHOT_ATTEMPTS):
            before = files_stamp(self.directory)
            crt, key, ca, status, base = read_snapshot(self.directory)
            if files_stamp(self.directory) == before:
                return before, IdentityMaterial.from_bytes(crt, key, ca, base, self.clock(), status)
        raise PkiError(f"{self.directory}: the identity files kept changing while being read")

    def _content(self) -> bytes:
        """What the files hold now (or why they cannot be read): after a refusal the
        content decides, not only the stamps."""
        try:
            crt, key, ca, status, _base = read_snapshot(self.directory)
        except PkiError as e:
            return str(e).encode()
        return hashlib.sha256(b"\0".join((crt, key, ca, status))).digest()

    def _unchanged(self, stamp: tuple[Any, ...]) -> bool:
        if stamp != self._stamp:
            return False
        # refused files are re-read each tick (three small files, only while refused):
        # a renewal that lands with the stamps of the refused read is still taken
        return self.last_error is None or self._content() == self._refused

    def check(self) -> IdentityMaterial | None:
        """Take new files if they changed and are good; the new material, else None."""
        if self._unchanged(files_stamp(self.directory)):
            return None
        with self._lock:
            seen = files_stamp(self.directory)  # before reading: what the read may see
            if self._unchanged(seen):
                return None
            old = self.current
            try:
                stamp, fresh = self._snapshot()
                if fresh.problems:
                    raise PkiError(f"{self.directory}: {fresh.problems[0]}")
            except PkiError as e:
                # remember these files as seen: refused once, not again every tick. The
                # stamp taken before the read: one taken after could already be the
                # good files that landed meanwhile, never loaded then (the audit's F7)
                self._stamp, self._refused = seen, self._content()
                self.failures += 1
                self.last_error = str(e)
                telemetry.CERT_RELOADS.labels("failure").inc()
                log.error(
                    "certificate reload rejected, keeping %s (serial %x): %s",
                    old.identity,
                    old.leaf.serial_number,
                    e,
                )
                return None
            self._stamp, self.current = stamp, fresh
            self.generation += 1
            self.reloads += 1
            self.last_error = None
            self.loaded_at = self.clock()
            telemetry.CERT_RELOADS.labels("success").inc()
            telemetry.export_certificate_expiry(fresh)
            log.info(
                "certificate reloaded: %s serial %x, expires %s",
                fresh.identity,
                fresh.leaf.serial_number,
                fresh.leaf.not_valid_after_utc,
            )
            return fresh
