"""Revocation that forgets nothing: the audit's four ways around the CRL, each
refused by name — a restart on a rolled-back file, a CRL long past its
nextUpdate, a rollover's file that omits the old CA, a CRL that is missing while
required — and the handshake names the reason on both sides."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path

import pytest
from mtlsdemo.handshake import Reason
from mtlsdemo.handshake.peer import PeerPolicy
from mtlsdemo.pki.crlfile import CRL_GRACE, CrlFile
from mtlsdemo.pki.revocation import Revocation, build_crl, key_id
from mtlsdemo.trust import Failure, VerificationFailed
from support.hskit import NOW, assert_rejected, ca, config, handshake, leaf

HOUR = dt.timedelta(hours=1)


def revoked_entry(cert, issuer: str = "main") -> Revocation:
    return Revocation(
        f"{cert.serial_number:x}", key_id(ca(issuer).cert), NOW.isoformat(), "key_compromise", "x"
    )


def test_a_restart_on_a_rolled_back_crl_keeps_the_revocation(tmp_path: Path) -> None:
    """Audited: a sidecar restarted on a put-back crl.pem accepted the revoked key.
    The CRLs in force are kept beside the identity; the restart starts from them."""
    cert, _ = leaf("cli")
    old = build_crl(ca(), [], NOW)
    new = build_crl(ca(), [revoked_entry(cert)], NOW + dt.timedelta(minutes=1), previous=old)
    path, kept = tmp_path / "crl.pem", tmp_path / "gateway" / ".crl-seen"
    path.write_bytes(new)
    running = CrlFile(path, lambda: [ca().cert], state=kept)
    assert running.lookup(cert) is not None
    assert kept.exists()
    path.unlink()
    path.write_bytes(old)  # rolled back while the process was down
    restarted = CrlFile(path, lambda: [ca().cert], state=kept)
    found = restarted.lookup(cert)
    assert found is not None and found.serial == cert.serial_number
    assert restarted.last_error is not None and "rollback refused" in restarted.last_error


def test_without_the_kept_crls_a_restart_would_forget(tmp_path: Path) -> None:
    """The control: the same restart with nothing kept accepts the rolled-back file."""
    cert, _ = leaf("cli")
    old = build_crl(ca(), [], NOW)
    path = tmp_path / "crl.pem"
    path.write_bytes(old)
    assert CrlFile(path, lambda: [ca().cert]).lookup(cert) is None


def test_a_crl_long_past_its_next_update_is_refused_by_name(tmp_path: Path) -> None:
    """Audited: a CRL whose nextUpdate passed 30 days ago was accepted at start."""
    cert, _ = leaf("ledger")
    gone, _ = leaf("cli")
    month_ago = NOW - dt.timedelta(days=30)
    path = tmp_path / "crl.pem"
    path.write_bytes(build_crl(ca(), [revoked_entry(gone)], month_ago))
    crls = CrlFile(path, lambda: [ca().cert])
    with pytest.raises(VerificationFailed) as e:
        crls.lookup(cert)
    assert e.value.failure is Failure.STATUS_STALE
    assert "passed its nextUpdate" in e.value.detail and "refresh-status" in e.value.detail
    assert crls.lookup(gone) is not None  # a revocation stays true however old its list
    # inside the grace it still answers
    fresh = CrlFile(path, lambda: [ca().cert], clock=lambda: month_ago + HOUR + CRL_GRACE / 2)
    assert fresh.lookup(cert) is None


def test_a_rollover_file_without_the_old_cas_crl_keeps_its_revocations(
    tmp_path: Path, caplog
) -> None:
    """Audited: a new file carrying only CA B's CRL dropped CA A's revocations."""
    cert, _ = leaf("cli", issuer="main")
    anchors = [ca("main").cert, ca("next").cert]
    path = tmp_path / "crl.pem"
    path.write_bytes(
        build_crl(ca("main"), [revoked_entry(cert)], NOW) + build_crl(ca("next"), [], NOW)
    )
    crls = CrlFile(path, lambda: anchors)
    assert crls.lookup(cert) is not None
    path.unlink()
    path.write_bytes(build_crl(ca("next"), [], NOW + dt.timedelta(minutes=1)))
    with caplog.at_level(logging.WARNING, logger="mtlsdemo.pki.crlfile"):
        assert crls.lookup(cert) is not None
    assert any("no longer carries" in r.getMessage() for r in caplog.records)


def test_a_missing_crl_fails_closed_when_required(tmp_path: Path) -> None:
    """Audited: a missing CRL file at start meant nothing was revoked (Kubernetes
    mounts it optional). With --crl-required the peer is refused status_missing."""
    cert, _ = leaf("ledger")
    path = tmp_path / "crl.pem"
    assert CrlFile(path, lambda: [ca().cert]).lookup(cert) is None  # not required: as before
    required = CrlFile(path, lambda: [ca().cert], required=True)
    with pytest.raises(VerificationFailed) as e:
        required.lookup(cert)
    assert e.value.failure is Failure.STATUS_MISSING
    assert "--crl-required" in e.value.detail and "the file is missing" in e.value.detail
    path.write_bytes(build_crl(ca(), [], NOW))  # published: answers again
    assert required.lookup(cert) is None


def test_the_handshake_names_a_crl_that_cannot_answer_on_both_sides(tmp_path: Path) -> None:
    month_ago = NOW - dt.timedelta(days=30)
    path = tmp_path / "crl.pem"
    path.write_bytes(build_crl(ca(), [], month_ago))
    crls = CrlFile(path, lambda: [ca().cert])
    ccfg, scfg = config("gateway"), config("ledger")
    scfg = dataclasses.replace(scfg, peer=PeerPolicy(revoked=crls.revoked))
    _c, _s, out = handshake(ccfg, scfg)
    assert_rejected(out, "server", Reason.STATUS_STALE)
    assert "(the CRL)" in out.server_error.detail
