"""The stapled status and the CRL, checked locally: every way a status can be
wrong, under each policy, and the replay window that is the revocation latency."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from mtlsdemo.handshake import Reason
from mtlsdemo.pki.keys import signing_hash
from mtlsdemo.pki.revocation import Revocation, build_crl, build_status, key_id
from mtlsdemo.trust import Failure, VerificationFailed
from mtlsdemo.trust.status import DEFAULT_SKEW, RevocationLists, check_status
from support.hskit import NOW, ca, config, creds, handshake, leaf, status

HOUR = dt.timedelta(hours=1)


def revoked_entry(cert, at=NOW, reason="key_compromise") -> Revocation:
    return Revocation(
        f"{cert.serial_number:x}", key_id(ca().cert), at.isoformat(), reason, "ledger"
    )


def failure(der: bytes, cert, issuer, now=NOW) -> Failure:
    with pytest.raises(VerificationFailed) as e:
        check_status(der, cert, issuer, now)
    return e.value.failure


def test_good_status_round_trip_names_signer_and_window() -> None:
    cert, _ = leaf("ledger")
    verdict = check_status(build_status(ca(), cert, [], NOW), cert, ca().cert, NOW)
    assert verdict.serial == cert.serial_number
    assert (verdict.this_update, verdict.next_update) == (
        NOW.replace(microsecond=0),
        (NOW + HOUR).replace(microsecond=0),
    )
    assert "signed by CN=mtlsdemo root CA (main.test)" in verdict.describe()


def test_revoked_status_names_serial_time_and_reason() -> None:
    cert, _ = leaf("ledger")
    der = build_status(ca(), cert, [revoked_entry(cert)], NOW)
    with pytest.raises(VerificationFailed) as e:
        check_status(der, cert, ca().cert, NOW)
    assert e.value.failure is Failure.CERTIFICATE_REVOKED
    assert f"serial {cert.serial_number:x} was revoked at" in e.value.detail
    assert "key_compromise" in e.value.detail


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (HOUR + DEFAULT_SKEW + dt.timedelta(seconds=1), Failure.STATUS_STALE),
        (-(DEFAULT_SKEW + dt.timedelta(seconds=1)), Failure.STATUS_INVALID),  # from the future
    ],
)
def test_status_outside_its_window(offset, expected) -> None:
    cert, _ = leaf("ledger")
    der = build_status(ca(), cert, [], NOW)
    assert failure(der, cert, ca().cert, NOW + offset) is expected
    # inside the skew it is still accepted on both edges
    check_status(der, cert, ca().cert, NOW + HOUR + DEFAULT_SKEW)
    check_status(der, cert, ca().cert, NOW - DEFAULT_SKEW)


def test_status_signed_by_another_ca_is_invalid() -> None:
    cert, _ = leaf("ledger")
    forged = build_status(ca("other"), cert, [], NOW)  # same serial, someone else's key
    assert failure(forged, cert, ca().cert) is Failure.STATUS_INVALID


def test_status_for_another_serial_is_invalid() -> None:
    cert, _ = leaf("ledger")
    other, _ = leaf("gateway")
    assert failure(build_status(ca(), other, [], NOW), cert, ca().cert) is Failure.STATUS_INVALID


def test_status_with_another_issuer_name_is_invalid() -> None:
    cert, _ = leaf("ledger")
    # a response whose CertID names another issuer, signed by the right key
    resp = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert,
            issuer=ca("other").cert,
            algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW,
            next_update=NOW + HOUR,
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca().cert)
        .sign(ca().key, signing_hash(ca().key))
    )
    der = resp.public_bytes(serialization.Encoding.DER)
    with pytest.raises(VerificationFailed) as e:
        check_status(der, cert, ca().cert, NOW)
    assert e.value.failure is Failure.STATUS_INVALID and "of another issuer" in e.value.detail


@pytest.mark.parametrize("der", [b"", b"\x30\x03\x0a\x01\x00", b"not der at all"])
def test_missing_or_garbage_status(der: bytes) -> None:
    cert, _ = leaf("ledger")
    expected = Failure.STATUS_MISSING if not der else Failure.STATUS_INVALID
    assert failure(der, cert, ca().cert) is expected


def test_replayed_good_status_is_accepted_only_inside_its_window() -> None:
    """The revocation latency of the stapled path: a holder that keeps its last
    "good" after being revoked is believed until that response's nextUpdate."""
    cert, _ = leaf("ledger")
    good = build_status(ca(), cert, [], NOW)
    revoked_at = NOW + dt.timedelta(minutes=10)
    _ = build_status(ca(), cert, [revoked_entry(cert, revoked_at)], revoked_at)  # the CA's truth
    check_status(good, cert, ca().cert, revoked_at + dt.timedelta(minutes=30))  # still believed
    assert (
        failure(good, cert, ca().cert, NOW + HOUR + DEFAULT_SKEW + dt.timedelta(seconds=1))
        is Failure.STATUS_STALE
    )


# ------------------------------------------------------------------ in the handshake
@pytest.mark.parametrize(
    ("staple", "policy", "reason"),
    [
        ("missing", "hard", Reason.STATUS_MISSING),
        ("revoked", "hard", Reason.CERTIFICATE_REVOKED),
        ("stale", "hard", Reason.STATUS_STALE),
        ("forged", "hard", Reason.STATUS_INVALID),
        ("missing", "soft", None),
        ("revoked", "soft", None),
        ("revoked", "off", None),
    ],
)
def test_server_status_under_each_policy(staple: str, policy: str, reason) -> None:
    cert, key = leaf("ledger")
    der = {
        "missing": b"",
        "revoked": build_status(ca(), cert, [revoked_entry(cert)], NOW),
        "stale": build_status(ca(), cert, [], NOW - 2 * HOUR),
        "forged": build_status(ca("other"), cert, [], NOW),
    }[staple]
    scfg = config("ledger", credentials=creds(cert, key, staple=der))
    ccfg = config("gateway", require_status=policy)
    c, _s, out = handshake(ccfg, scfg)
    if reason is None:
        assert out.client_error is None and out.server_error is None
        expected = (
            None
            if policy == "off"
            else {"missing": "status_missing", "revoked": "certificate_revoked"}[staple]
        )
        assert c.result.status_problem == expected
        assert any("stapled status" in line for line in c.result.checks)
    else:
        assert out.client_error.reason is reason and out.client_error.origin == "local"
        assert out.server_error.reason is reason and out.server_error.origin == "remote_unverified"


def test_client_status_is_checked_by_the_server_too() -> None:
    cert, key = leaf("gateway")
    der = build_status(ca(), cert, [revoked_entry(cert)], NOW)
    _c, _s, out = handshake(
        config("gateway", credentials=creds(cert, key, staple=der)), config("ledger")
    )
    assert out.server_error.reason is Reason.CERTIFICATE_REVOKED
    assert out.server_error.origin == "local" and out.client_error.origin == "remote_unverified"


def test_hskit_staples_by_default() -> None:
    cert, _ = leaf("ledger")
    assert check_status(status(cert), cert, ca().cert, NOW).serial == cert.serial_number


# ------------------------------------------------------------------ CRL
def test_crl_round_trip_lookup_and_counts() -> None:
    cert, _ = leaf("ledger")
    fine, _ = leaf("gateway")
    pem = build_crl(ca(), [revoked_entry(cert, reason="superseded")], NOW)
    lists = RevocationLists.parse(pem, [ca().cert])
    gone = lists.lookup(cert)
    assert gone is not None and gone.reason == "superseded" and gone.serial == cert.serial_number
    assert lists.lookup(fine) is None
    assert lists.revoked_count == 1
    assert lists.earliest_next_update == (NOW + HOUR).replace(microsecond=0)


def test_crl_from_a_trusted_name_with_a_wrong_key_is_refused() -> None:
    from mtlsdemo.pki.ca import create_root_ca

    impostor = create_root_ca("ecdsa-p256", 30, "main.test", NOW)  # same name, other key
    pem = build_crl(impostor, [], NOW)
    with pytest.raises(ValueError, match="does not verify"):
        RevocationLists.parse(pem, [ca().cert])


def test_crl_from_an_untrusted_ca_is_ignored() -> None:
    cert, _ = leaf("ledger")
    pem = build_crl(ca("other"), [revoked_entry(cert)], NOW)
    assert RevocationLists.parse(pem, [ca().cert]).lookup(cert) is None


def test_status_cache_reuses_good_verdicts_inside_their_window_only() -> None:
    from mtlsdemo.trust.status import StatusCache

    cert, _ = leaf("ledger")
    cache = StatusCache(8)
    good = build_status(ca(), cert, [], NOW)
    assert cache.check(good, cert, ca().cert, NOW)[1] is False
    assert cache.check(good, cert, ca().cert, NOW + dt.timedelta(minutes=30))[1] is True
    with pytest.raises(VerificationFailed) as e:  # past the window: re-judged, stale
        cache.check(good, cert, ca().cert, NOW + 2 * HOUR)
    assert e.value.failure is Failure.STATUS_STALE
    other, _ = leaf("gateway")  # the same response for another certificate: not a hit
    with pytest.raises(VerificationFailed):
        cache.check(good, other, ca().cert, NOW)
    revoked = build_status(ca(), cert, [revoked_entry(cert)], NOW)
    for _ in range(2):  # failures are never cached
        with pytest.raises(VerificationFailed):
            cache.check(revoked, cert, ca().cert, NOW)
    assert cache.hits == 1
    off = StatusCache(0)
    off.check(good, cert, ca().cert, NOW)
    assert off.check(good, cert, ca().cert, NOW)[1] is False


def test_crls_carry_an_increasing_number_and_an_authority_key_id() -> None:
    from cryptography import x509
    from mtlsdemo.trust.status import crl_number

    first = build_crl(ca(), [], NOW)
    again = build_crl(ca(), [], NOW, previous=first)  # same second: still higher
    n1 = crl_number(x509.load_pem_x509_crl(first))
    n2 = crl_number(x509.load_pem_x509_crl(again))
    assert n1 == int(NOW.timestamp()) and n2 == n1 + 1
    crl = x509.load_pem_x509_crl(again)
    assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)


def test_a_crl_put_back_is_refused_and_the_revocation_stays(tmp_path) -> None:
    """The audit's F5: `cp crl.pem old.pem; certs revoke cli; cp old.pem crl.pem`
    un-revoked cli on the native path. An older CRL (by number, then thisUpdate) than
    the one in force is refused, counted, and the newer one stays."""
    from mtlsdemo.pki.crlfile import CrlFile

    cert, _ = leaf("cli")
    old = build_crl(ca(), [], NOW)
    new = build_crl(ca(), [revoked_entry(cert)], NOW + dt.timedelta(minutes=1), previous=old)
    path = tmp_path / "crl.pem"
    path.write_bytes(new)
    crls = CrlFile(path, lambda: [ca().cert])
    assert crls.lookup(cert) is not None
    path.unlink()
    path.write_bytes(old)  # a new inode: the file is re-read
    assert crls.lookup(cert) is not None  # still revoked
    assert crls.last_error is not None and "rollback refused" in crls.last_error


def test_a_status_valid_for_years_is_refused_by_name() -> None:
    cert, _ = leaf("ledger")
    ten_years = build_status(ca(), cert, [], NOW, window=dt.timedelta(days=3650))
    with pytest.raises(VerificationFailed) as e:
        check_status(ten_years, cert, ca().cert, NOW)
    assert e.value.failure is Failure.STATUS_INVALID and "longer than the 7 days" in e.value.detail
    week = build_status(ca(), cert, [], NOW, window=dt.timedelta(days=7))
    assert check_status(week, cert, ca().cert, NOW).serial == cert.serial_number


def test_a_status_with_a_sha1_cert_id_is_refused_by_name() -> None:

    cert, _ = leaf("ledger")
    authority = ca()
    resp = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert,
            issuer=authority.cert,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW,
            next_update=NOW + HOUR,
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, authority.cert)
        .sign(authority.key, hashes.SHA256())
    )
    with pytest.raises(VerificationFailed) as e:
        check_status(resp.public_bytes(serialization.Encoding.DER), cert, authority.cert, NOW)
    assert e.value.failure is Failure.STATUS_INVALID and "SHA-1 in its CertID" in e.value.detail
