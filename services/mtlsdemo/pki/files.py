"""Reading PEM files and writing outputs atomically."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlsdemo.pki.errors import PkiError
from mtlsdemo.trust.certinfo import fingerprint
from mtlsdemo.trust.verify import key_identifier

__all__ = ["fingerprint"]  # the one format lives in trust.certinfo; pki re-exports it


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write via a temp file in the same directory and rename, so a reader
    (a server hot-reloading certificates) never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)  # before any byte is written: keys are never world-readable
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


LOCK_FILE = ".lock"  # an identity directory's writers hold it exclusively, its readers shared
LOCK_WAIT = 5.0  # seconds a held lock is retried before giving up with one line
LOCK_POLL = 0.02


def _pause() -> None:
    time.sleep(LOCK_POLL)


def _open_lock(directory: Path, create: bool) -> int | None:
    """The lock file's descriptor, or None when there is none to take (no file, or
    one this user may not open: it is then read as it is). Created 0600: flock
    needs only a readable descriptor, so a lock anyone can open is a lock anyone
    can hold — and a held lock stalled every reload and rotation of the mesh."""
    path = directory / LOCK_FILE
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        return None
    except PermissionError:
        if create:
            raise PkiError(f"{path}: cannot open the lock: permission denied") from None
        return None
    except OSError as e:
        if create:
            raise PkiError(f"{path}: cannot open the lock: {e.strerror}") from None
        return None
    st, owner = os.fstat(fd), os.stat(directory).st_uid
    if st.st_uid not in (owner, os.geteuid()):
        os.close(fd)
        raise PkiError(
            f"{path}: owned by uid {st.st_uid}, not by the directory's owner (uid {owner}): "
            "whoever holds it stalls every reload; remove it"
        )
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.fchmod(fd, 0o600)  # a lock written by an earlier version (0644)
    return fd


def _take(fd: int, op: int, path: Path, wait: float | None) -> None:
    """flock without blocking, retried for ``wait`` seconds (LOCK_WAIT): a holder
    that never lets go costs a bounded wait and one named error, never a hang."""
    wait = LOCK_WAIT if wait is None else wait
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise PkiError(
                    f"{path}: held by another process for {wait:g} s; the identity was "
                    "not read or written (a rotation in progress, or a stuck process: "
                    "`fuser` names it)"
                ) from None
            _pause()
        except OSError:
            # a filesystem without flock (ENOLCK: some network mounts) is used
            # unlocked, as before: each file is still replaced atomically
            return


@contextlib.contextmanager
def writing(directories: Iterable[Path], wait: float | None = None) -> Iterator[None]:
    """Hold each directory's lock exclusively while its files are replaced one by
    one: a reader taking the shared lock (``reading``) sees all old files or all
    new ones, never a new key with an old staple (a caller that loaded one between
    two writes sent a staple of the old certificate and was refused). Sorted, so
    two writers never wait on each other crosswise."""
    with contextlib.ExitStack() as stack:
        for d in sorted(set(directories)):
            d.mkdir(parents=True, exist_ok=True)
            fd = _open_lock(d, create=True)
            assert fd is not None
            stack.callback(os.close, fd)  # released by the close, or by the kernel on exit
            _take(fd, fcntl.LOCK_EX, d / LOCK_FILE, wait)
        yield


@contextlib.contextmanager
def reading(directory: Path, wait: float | None = None) -> Iterator[None]:
    """The shared side of ``writing``. A directory without the lock file (a
    Kubernetes Secret volume, which swaps ``..data`` atomically instead, or files
    written by hand) is read as it is."""
    fd = _open_lock(directory, create=False)
    if fd is None:
        yield
        return
    try:
        _take(fd, fcntl.LOCK_SH, directory / LOCK_FILE, wait)
        yield
    finally:
        os.close(fd)


def key_ids(cert: x509.Certificate) -> tuple[str | None, str | None]:
    """(subject key id, authority key id) in the same format, or None when absent."""
    ski = key_identifier(cert, x509.SubjectKeyIdentifier)
    aki = key_identifier(cert, x509.AuthorityKeyIdentifier)
    return (
        ski.hex(":").upper() if ski else None,
        aki.hex(":").upper() if aki else None,
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_certs(path: Path) -> list[x509.Certificate]:
    """All certificates in a PEM file (a chain or a bundle); at least one."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PkiError(f"{path}: cannot read certificate: {e.strerror}") from None
    return parse_certs(data, str(path))


def parse_certs(data: bytes, source: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise PkiError(f"{source}: not a valid PEM certificate ({e})") from None
    if not certs:
        raise PkiError(f"{source}: no certificate found")
    return certs


def load_cert(path: Path) -> x509.Certificate:
    return load_certs(path)[0]


def load_csr(path: Path) -> x509.CertificateSigningRequest:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PkiError(f"{path}: cannot read CSR: {e.strerror}") from None
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError as e:
        raise PkiError(f"{path}: not a valid certificate signing request ({e})") from None
