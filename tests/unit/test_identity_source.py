"""The one identity loader: reads the files once per change, validates exactly
those bytes, hands on exactly those bytes; refuses and counts bad renewals;
never mixes a key from one version with a certificate from another."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
import threading
from pathlib import Path

import pytest
from cryptography import x509
from mtlsdemo.pki import files as files_mod
from mtlsdemo.pki import material as material_mod
from mtlsdemo.pki import stores
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.files import LOCK_FILE, load_cert, write_atomic, writing
from mtlsdemo.pki.keys import public_key_der
from mtlsdemo.pki.material import IdentitySource
from support.identities import ca_of, make_identity_dir


def consistent(m) -> bool:
    return (
        public_key_der(m.key.public_key()) == public_key_der(m.leaf.public_key())
        and x509.load_pem_x509_certificate(m.cert_chain_pem) == m.leaf
    )


def version(tmp: Path, pki_dir: Path, name: str, **kw) -> Path:
    """A fresh identity directory (new key, new serial) from the session's CA."""
    d = tmp / name
    d.mkdir()
    return make_identity_dir(d, ca_of(pki_dir), "gateway", **kw)


def copy_into(src: Path, dst: Path) -> None:
    for f in ("tls.crt", "tls.key", "ca.crt", "tls.ocsp"):
        shutil.copy(src / f, dst / f)  # with its mode: keys stay 0600


def test_a_swap_in_the_middle_of_a_read_is_read_again(
    tmp_path: Path, pki_dir: Path, monkeypatch
) -> None:
    v1, v2 = version(tmp_path, pki_dir, "v1"), version(tmp_path, pki_dir, "v2")
    live = tmp_path / "live"
    live.mkdir()
    copy_into(v1, live)
    source = IdentitySource(live)
    real = Path.read_bytes
    swapped = []

    def read_bytes(self: Path) -> bytes:
        data = real(self)
        if (
            self == live / "tls.crt" and not swapped
        ):  # the renewal lands right after tls.crt was read
            swapped.append(1)
            copy_into(v2, live)
        return data

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    (live / "tls.crt").write_bytes(real(v1 / "tls.crt") + b"\n")  # a change to pick up
    fresh = source.check()
    assert swapped and fresh is not None and consistent(fresh)
    assert fresh.leaf == x509.load_pem_x509_certificate((v2 / "tls.crt").read_bytes())


def test_kubernetes_data_symlink_is_resolved_once(
    tmp_path: Path, pki_dir: Path, monkeypatch
) -> None:
    v1, v2 = version(tmp_path, pki_dir, "v1"), version(tmp_path, pki_dir, "v2")
    vol = tmp_path / "vol"
    vol.mkdir()
    shutil.copytree(v1, vol / "..2026_1")
    shutil.copytree(v2, vol / "..2026_2")
    (vol / "..data").symlink_to("..2026_1")
    for f in ("tls.crt", "tls.key", "ca.crt"):
        (vol / f).symlink_to(f"..data/{f}")
    real = Path.read_bytes
    flipped = []

    def read_bytes(self: Path) -> bytes:
        data = real(self)
        if self.name == "tls.crt" and not flipped:  # the kubelet swaps ..data mid-read
            flipped.append(1)
            (vol / "..tmp").symlink_to("..2026_2")
            (vol / "..tmp").replace(vol / "..data")
        return data

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    m = IdentitySource(vol).current
    assert flipped and consistent(m)


def test_bad_renewals_are_refused_counted_and_the_old_identity_kept(
    tmp_path: Path, pki_dir: Path, other_pki_dir: Path
) -> None:
    live = version(tmp_path, pki_dir, "live")
    source = IdentitySource(live)
    first = source.current
    # a key that is not the certificate's
    other = version(tmp_path, pki_dir, "other")
    (live / "tls.key").write_bytes((other / "tls.key").read_bytes())
    assert source.check() is None and source.failures == 1 and "does not match" in source.last_error
    assert source.current is first
    assert source.check() is None and source.failures == 1  # the same bad files: not retried
    # an expired certificate
    make_identity_dir(
        live, ca_of(pki_dir), "gateway", at=dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    )
    assert (
        source.check() is None
        and source.failures == 2
        and "certificate_expired" in source.last_error
    )
    # a certificate from a CA the bundle does not hold
    make_identity_dir(live, ca_of(other_pki_dir), "gateway")
    (live / "ca.crt").write_bytes((pki_dir / "ca" / "ca.crt").read_bytes())
    assert source.check() is None and source.failures == 3 and "unknown_ca" in source.last_error
    # then a good one
    copy_into(other, live)
    fresh = source.check()
    assert (
        fresh is not None
        and consistent(fresh)
        and source.reloads == 1
        and source.last_error is None
    )
    assert source.generation == 1


def test_a_status_for_another_certificate_is_refused_until_its_own_arrives(
    tmp_path: Path, pki_dir: Path
) -> None:
    """The order a rollover writes in (key, certificate, then status): the new
    certificate with the old status is not taken; the status completing it is."""
    live = version(tmp_path, pki_dir, "live")
    source = IdentitySource(live)
    nxt = version(tmp_path, pki_dir, "next")
    for f in ("tls.key", "tls.crt"):
        shutil.copyfile(nxt / f, live / f)
    assert source.check() is None and "not this certificate" in source.last_error
    assert source.current.leaf.serial_number != load_cert(nxt / "tls.crt").serial_number
    shutil.copyfile(nxt / "tls.ocsp", live / "tls.ocsp")
    fresh = source.check()
    assert (
        fresh is not None and fresh.leaf.serial_number == load_cert(nxt / "tls.crt").serial_number
    )
    assert fresh.status == (nxt / "tls.ocsp").read_bytes() and fresh.status_next_update


def test_unreadable_start_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="cannot read identity files"):
        IdentitySource(tmp_path)


def test_files_that_never_settle_are_refused(tmp_path: Path, pki_dir: Path, monkeypatch) -> None:
    live = version(tmp_path, pki_dir, "live")
    stamps = iter(range(1000))
    monkeypatch.setattr(material_mod, "files_stamp", lambda d: next(stamps))
    with pytest.raises(PkiError, match="kept changing"):
        IdentitySource(live)


def test_good_files_that_land_right_after_a_refused_read_are_taken(
    tmp_path: Path, pki_dir: Path
) -> None:
    """The audit's F7: after a refused mixed read, the stamp recorded could already be
    the final good files', which were then never loaded (a plain `cp` renewal). The
    content decides after a refusal, not only the stamps."""
    v1, v2 = version(tmp_path, pki_dir, "v1"), version(tmp_path, pki_dir, "v2")
    live = tmp_path / "live"
    live.mkdir()
    copy_into(v1, live)
    source = IdentitySource(live)
    shutil.copy(v2 / "tls.crt", live / "tls.crt")  # half a renewal: v2's cert, v1's key
    assert source.check() is None and source.last_error is not None
    shutil.copy(v2 / "tls.key", live / "tls.key")
    shutil.copy(v2 / "tls.ocsp", live / "tls.ocsp")
    source._stamp = material_mod.files_stamp(live)  # the stamps say "seen", as the race left them
    fresh = source.check()
    assert fresh is not None and fresh.leaf.serial_number == load_cert(v2 / "tls.crt").serial_number
    assert consistent(fresh) and source.last_error is None


def test_an_identity_with_problems_warns_once_in_one_line(
    tmp_path: Path, pki_dir: Path, other_pki_dir: Path, caplog
) -> None:
    """The README's foreign-CA recipe: a certificate from another CA with our bundle
    (two problems: its chain and its staple), loaded twice by one command (the
    client, then its diagnosis) printed four WARNING lines; now one."""
    d = tmp_path / "evil"
    shutil.copytree(other_pki_dir / "cli", d)
    shutil.copy(pki_dir / "ca" / "ca.crt", d / "ca.crt")
    with caplog.at_level("WARNING", logger="mtlsdemo.pki.material"):
        IdentitySource(d)
        IdentitySource(d)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert "identity loaded with 2 problems: (1) unknown_ca" in warnings[0], warnings


def test_a_reader_waits_until_the_writer_has_replaced_every_file(
    tmp_path: Path, pki_dir: Path, monkeypatch
) -> None:
    """The CI failure it fixes: a caller loaded its identity between two of a
    rotation's writes (the new key and certificate, the old staple), sent the old
    staple and was refused status_invalid. Under the directory's lock it waits."""
    v1, v2 = version(tmp_path, pki_dir, "v1"), version(tmp_path, pki_dir, "v2")
    live = tmp_path / "live"
    live.mkdir()
    copy_into(v1, live)
    got: list[object] = []
    waited = threading.Event()
    real_pause = files_mod._pause

    def pause() -> None:
        waited.set()
        real_pause()

    monkeypatch.setattr(files_mod, "_pause", pause)
    with writing([live]):
        for f in ("tls.key", "tls.crt"):  # torn: v2's key and certificate, v1's staple
            write_atomic(live / f, (v2 / f).read_bytes(), 0o600)
        reader = threading.Thread(target=lambda: got.append(IdentitySource(live).current))
        reader.start()
        assert waited.wait(10), "the reader never waited on the lock"
        for f in ("ca.crt", "tls.ocsp"):
            write_atomic(live / f, (v2 / f).read_bytes())
    reader.join(timeout=10)
    (m,) = got
    assert consistent(m) and m.problems == (), m.problems
    assert m.leaf == load_cert(v2 / "tls.crt")


def test_the_bootstrap_writes_each_directory_under_its_lock(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "certs"
    bootstrap(BootstrapRequest(out=out, services=("gateway",)))
    real = stores.write_atomic
    seen: list[str] = []

    def write(path: Path, data: bytes, mode: int = 0o644) -> None:
        fd = os.open(path.parent / LOCK_FILE, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):  # a reader would wait
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        seen.append(f"{path.parent.name}/{path.name}")
        real(path, data, mode)

    monkeypatch.setattr(stores, "write_atomic", write)
    bootstrap(BootstrapRequest(out=out, services=("gateway",), namespace="prod"))  # re-issues
    assert {"gateway/tls.key", "gateway/tls.crt", "gateway/tls.ocsp"} <= set(seen), seen


def test_a_filesystem_without_flock_still_reads_and_writes(
    tmp_path: Path, pki_dir: Path, monkeypatch
) -> None:
    """Some network mounts answer flock with ENOLCK: files are then written and read
    unlocked (each still replaced atomically), never an error."""

    def no_locks(fd: int, op: int) -> None:
        raise OSError(37, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    v1 = version(tmp_path, pki_dir, "v1")
    live = tmp_path / "live"
    with writing([live]):
        copy_into(v1, live)
    assert consistent(IdentitySource(live).current)


# --- the lock is the owner's alone, and never waited on for ever ---


def test_the_lock_is_created_for_its_owner_only_and_an_old_open_one_is_closed(
    tmp_path: Path,
) -> None:
    """flock needs only a readable descriptor: a 0644 lock let any local user hold
    it and stall every reload and rotation of the mesh."""
    d = tmp_path / "id"
    with writing([d]):
        pass
    assert (d / LOCK_FILE).stat().st_mode & 0o777 == 0o600
    (d / LOCK_FILE).chmod(0o644)  # written by an earlier version
    with writing([d]):
        pass
    assert (d / LOCK_FILE).stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as another uid needs root")
def test_another_user_cannot_open_the_lock_to_hold_it(tmp_path: Path) -> None:
    d = tmp_path / "id"
    with writing([d]):
        pass
    d.chmod(0o755)
    tmp_path.chmod(0o755)
    nobody = 65534
    pid = os.fork()
    if pid == 0:  # the stranger: uid nobody, the audit's attacker
        try:
            os.setgid(nobody)
            os.setuid(nobody)
            fd = os.open(d / LOCK_FILE, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_SH)
            os._exit(0)  # held: the finding is back
        except PermissionError:
            os._exit(13)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 13


def test_a_lock_owned_by_another_user_is_refused_by_name(tmp_path: Path) -> None:
    d = tmp_path / "id"
    d.mkdir()
    (d / LOCK_FILE).touch()
    if os.geteuid() == 0:
        os.chown(d / LOCK_FILE, 65534, 65534)
    else:
        pytest.skip("giving a file to another uid needs root")
    with (
        pytest.raises(PkiError, match=r"owned by uid 65534, not by the directory's owner"),
        writing([d]),
    ):
        pass


def test_a_lock_held_for_ever_costs_a_bounded_wait_and_keeps_the_old_identity(
    tmp_path: Path, pki_dir: Path, monkeypatch
) -> None:
    """The audit held the lock exclusively: readers blocked for ever (a sidecar's
    loop froze inside its reload). Now a reader gives up after LOCK_WAIT with one
    named error, the source keeps what it has, and takes the new files once the
    lock is free."""
    monkeypatch.setattr(files_mod, "LOCK_WAIT", 0.2)
    v1, v2 = version(tmp_path, pki_dir, "v1"), version(tmp_path, pki_dir, "v2")
    live = tmp_path / "live"
    with writing([live]):
        copy_into(v1, live)
    source = IdentitySource(live)
    copy_into(v2, live)  # a renewal lands ...
    fd = os.open(live / LOCK_FILE, os.O_RDONLY)  # ... while something holds the lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert source.check() is None
        assert source.current.leaf == load_cert(v1 / "tls.crt")
        assert source.last_error is not None and "held by another process" in source.last_error
        assert str(live / LOCK_FILE) in source.last_error
    finally:
        os.close(fd)
    fresh = source.check()
    assert fresh is not None and fresh.leaf == load_cert(v2 / "tls.crt")
    assert source.last_error is None


def test_a_writer_facing_a_held_lock_fails_with_one_line(tmp_path: Path) -> None:
    d = tmp_path / "id"
    with writing([d]):
        pass
    fd = os.open(d / LOCK_FILE, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        with (
            pytest.raises(PkiError, match="held by another process for 0.1 s"),
            writing([d], wait=0.1),
        ):
            pass
    finally:
        os.close(fd)
