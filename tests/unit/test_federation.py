"""Federation in the one verifier: the anchors are chosen by the trust domain the
peer's SPIFFE ID names. A peer of domain B is verified against B's bundle only,
never against ours; B's CA cannot speak for our names; a domain with no bundle is
refused unknown_ca, naming it. And what an "alias" (B's root added to our own
bundle) would have let through instead."""

from __future__ import annotations

import datetime as dt

import pytest
from mtlsdemo.pki.ca import create_root_ca
from mtlsdemo.pki.identity import ServiceIdentity
from mtlsdemo.pki.issue import issue_leaf
from mtlsdemo.pki.keys import generate_key
from mtlsdemo.trust import Failure, TrustStore, VerificationFailed

NOW = dt.datetime.now(dt.UTC)
A, B, C = "a.mtls-demo.local", "b.mtls-demo.local", "c.mtls-demo.local"


def _ca(td: str):
    return create_root_ca("ecdsa-p256", 30, td, NOW)


CA_A, CA_B, CA_C = _ca(A), _ca(B), _ca(C)


def leaf(ca, td: str, service: str = "ledger"):
    key = generate_key("ecdsa-p256")
    return issue_leaf(ca, key.public_key(), ServiceIdentity(service, "default", td), NOW, 1)


def federated_store(**kw) -> TrustStore:
    return TrustStore([CA_A.cert], trust_domain=A, federated={B: (CA_B.cert,)}, **kw)


def test_a_peer_of_the_federated_domain_verifies_against_its_own_bundle() -> None:
    v = federated_store().verify_certificates([leaf(CA_B, B)], "server", NOW)
    assert v.identity.trust_domain == B
    assert v.path[-1] == CA_B.cert
    assert any("verified against its own bundle" in c for c in v.checks)
    # our own peers still against ours
    assert federated_store().verify_certificates([leaf(CA_A, A)], "client", NOW).path[-1] == (
        CA_A.cert
    )


@pytest.mark.parametrize(
    ("issuer", "claims", "where"),
    [
        (CA_B, A, "is not in the trust store"),  # B's CA minting one of our names
        (CA_A, B, f"is not in trust domain {B}'s bundle"),  # our CA minting one of B's
    ],
)
def test_no_domain_speaks_for_another(issuer, claims: str, where: str) -> None:
    with pytest.raises(VerificationFailed) as e:
        federated_store().verify_certificates([leaf(issuer, claims)], "server", NOW)
    assert e.value.failure is Failure.UNKNOWN_CA and where in e.value.detail


def test_a_domain_without_a_bundle_is_unknown_ca_naming_it() -> None:
    with pytest.raises(VerificationFailed) as e:
        federated_store().verify_certificates([leaf(CA_C, C)], "server", NOW)
    assert e.value.failure is Failure.UNKNOWN_CA
    assert f"no trust bundle for trust domain {C}" in e.value.detail
    assert f"federated with: {B}" in e.value.detail


def test_without_federation_a_foreign_domain_stays_outside() -> None:
    with pytest.raises(VerificationFailed) as e:
        TrustStore([CA_A.cert, CA_B.cert], trust_domain=A).verify_certificates(
            [leaf(CA_B, B)], "server", NOW
        )
    assert e.value.failure is Failure.BAD_CERTIFICATE and "outside trust domain" in e.value.detail


def test_an_alias_lets_the_other_ca_speak_for_our_names_federation_does_not() -> None:
    """The side by side: B's root added to our own bundle (an alias) accepts a
    certificate B's CA issued for one of OUR names; federation refuses it."""
    forged = leaf(CA_B, A, "gateway")  # domain B's CA, claiming spiffe://A/.../gateway
    alias = TrustStore([CA_A.cert, CA_B.cert], trust_domain=A)
    assert str(alias.verify_certificates([forged], "client", NOW).identity).startswith(
        f"spiffe://{A}/"
    )
    with pytest.raises(VerificationFailed) as e:
        federated_store().verify_certificates([forged], "client", NOW)
    assert e.value.failure is Failure.UNKNOWN_CA


def test_a_change_of_a_federated_bundle_changes_the_fingerprint() -> None:
    plain = TrustStore([CA_A.cert], trust_domain=A)
    fed = federated_store()
    other = TrustStore([CA_A.cert], trust_domain=A, federated={B: (CA_C.cert,)})
    assert len({plain.fingerprint, fed.fingerprint, other.fingerprint}) == 3
    # our own domain in the map, or an empty bundle, adds nothing
    same = TrustStore([CA_A.cert], trust_domain=A, federated={A: (CA_B.cert,), C: ()})
    assert same.fingerprint == plain.fingerprint and same.federated == {}
