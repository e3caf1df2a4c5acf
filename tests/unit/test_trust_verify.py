"""The one chain verifier (mtlsdemo.trust): real path building, per-role EKU on
leaves and intermediates, the depth limit, the SVID rules — and `certs inspect`
giving the sidecar's verdict on every chain of the corpus."""

from __future__ import annotations

import datetime as dt

import pytest
from mtlsdemo.handshake import PeerPolicy, ProtocolError
from mtlsdemo.handshake.peer import verify_peer
from mtlsdemo.pki.inspect import verdicts
from mtlsdemo.trust import Failure, TrustStore, VerificationFailed
from support.certkit import CLIENT, NOW, SERVER, intermediate, leaf, root

ID = "spiffe://mtls-demo.local/ns/default/sa/gateway"


def verify(chain, anchors, role="client", now=NOW, **kw):
    store = TrustStore([a.cert for a in anchors], **kw)
    return store.verify([c.der for c in chain], role, now)[0]


def refused(chain, anchors, role="client", now=NOW, **kw) -> VerificationFailed:
    with pytest.raises(VerificationFailed) as e:
        verify(chain, anchors, role, now, **kw)
    return e.value


# ---------------------------------------------------------------- path building
def test_an_extra_unrelated_certificate_in_the_chain_is_ignored() -> None:
    r = root()
    stranger = root("stranger")
    v = verify([leaf(r), stranger], [r])
    assert str(v.identity) == ID and v.path[-1] == r.cert


def test_intermediates_in_any_order_and_with_extras_build_a_path() -> None:
    r = root(pathlen=2)
    i1 = intermediate("i1", r, pathlen=1)
    i2 = intermediate("i2", i1, pathlen=0)
    lf = leaf(i2)
    unrelated = intermediate("other", root("elsewhere"))
    for chain in ([lf, i2, i1], [lf, i1, i2], [lf, unrelated, i1, i2]):
        v = verify(chain, [r])
        assert [c.subject for c in v.path] == [
            lf.cert.subject,
            i2.cert.subject,
            i1.cert.subject,
            r.cert.subject,
        ]


def test_an_alternate_valid_path_through_a_second_trusted_root() -> None:
    """CA rollover: the same intermediate cross-signed by the old and the new root."""
    old, new = root("old"), root("new")
    inter = intermediate("inter", new)
    cross = intermediate("inter", old)  # same name, different key: its own path
    lf = leaf(inter)
    assert verify([lf, cross, inter], [old, new]).path[-1] == new.cert
    assert verify([lf, inter], [new]).path[-1] == new.cert


def test_a_foreign_chain_is_unknown_ca_even_with_a_trusted_cert_alongside() -> None:
    ours, theirs = root("ours"), root("theirs")
    e = refused([leaf(theirs), intermediate("ours-i", ours)], [ours])
    assert e.failure is Failure.UNKNOWN_CA and "not in the trust store" in e.detail


# ---------------------------------------------------------------- EKU per role
def test_server_auth_only_intermediate_serves_servers_and_refuses_clients() -> None:
    r = root()
    inter = intermediate("servers", r, eku=[SERVER])
    lf = leaf(inter)
    assert verify([lf, inter], [r], role="server")
    e = refused([lf, inter], [r], role="client")
    assert e.failure is Failure.BAD_CERTIFICATE
    assert "CA CN=servers lacks the clientAuth extended key usage a client needs" in e.detail


def test_client_auth_only_intermediate_serves_clients_and_refuses_servers() -> None:
    r = root()
    inter = intermediate("clients", r, eku=[CLIENT])
    lf = leaf(inter)
    assert verify([lf, inter], [r], role="client")
    e = refused([lf, inter], [r], role="server")
    assert "lacks the serverAuth extended key usage a server needs" in e.detail


@pytest.mark.parametrize("role,eku", [("server", [CLIENT]), ("client", [SERVER]), ("client", [])])
def test_leaf_needs_the_eku_of_its_role(role: str, eku: list) -> None:
    r = root()
    e = refused([leaf(r, eku=eku or None) if eku else _no_eku_leaf(r)], [r], role=role)
    assert e.failure is Failure.BAD_CERTIFICATE and "extended key usage" in e.detail


def _no_eku_leaf(r):
    from support.certkit import make

    return make("leaf", r, ca=False, eku=None, uris=[ID])


def test_a_critical_eku_that_grants_the_role_is_accepted() -> None:
    """RFC 5280 4.2.1.12: EKU may be critical; then the key is for those purposes
    only. A critical EKU that grants the role passes, one that does not is refused."""
    r = root()
    both = leaf(r, eku=[SERVER, CLIENT], eku_critical=True)
    assert verify([both], [r], role="server") and verify([both], [r], role="client")
    client_only = leaf(r, eku=[CLIENT], eku_critical=True)
    e = refused([client_only], [r], role="server")
    assert e.failure is Failure.BAD_CERTIFICATE and "extended key usage" in e.detail


def test_an_unknown_critical_extension_is_refused() -> None:
    from cryptography import x509

    r = root()
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    lf = leaf(r, extra=[(unknown, True)])
    e = refused([lf], [r], role="client")
    assert e.failure is Failure.BAD_CERTIFICATE
    assert leaf(r, extra=[(unknown, False)])  # not critical: ignorable, as RFC 5280 says
    assert verify([leaf(r, extra=[(unknown, False)])], [r], role="client")


# ---------------------------------------------------------------- limits and windows
def test_chain_depth_is_limited() -> None:
    r = root(pathlen=None)
    chain, issuer = [], r
    for n in range(5):
        issuer = intermediate(f"i{n}", issuer, pathlen=None)
        chain.insert(0, issuer)
    lf = leaf(issuer)
    e = refused([lf, *chain], [r], max_depth=4)
    assert e.failure is Failure.BAD_CERTIFICATE and "limit of 4" in e.detail
    assert verify([lf, *chain], [r], max_depth=8)


def test_expired_and_not_yet_valid_name_the_certificate() -> None:
    r = root()
    assert (
        refused([leaf(r)], [r], now=NOW + dt.timedelta(days=40)).failure
        is Failure.CERTIFICATE_EXPIRED
    )
    assert (
        refused([leaf(r)], [r], now=NOW - dt.timedelta(days=2)).failure
        is Failure.CERTIFICATE_NOT_YET_VALID
    )
    old_root = root("old", start=NOW - dt.timedelta(days=60), days=59.5)
    lf = leaf(old_root, start=NOW - dt.timedelta(days=1), days=30)
    e = refused([lf], [old_root])
    assert e.failure is Failure.CERTIFICATE_EXPIRED and "CA CN=old" in e.detail


def test_no_certificate_and_garbage() -> None:
    store = TrustStore([root().cert])
    with pytest.raises(VerificationFailed) as e:
        store.verify([], "client", NOW)
    assert e.value.failure is Failure.CERTIFICATE_REQUIRED
    with pytest.raises(VerificationFailed) as e:
        store.verify([b"\x30\x03\x02\x01\x01"], "client", NOW)
    assert e.value.failure is Failure.BAD_CERTIFICATE and "malformed" in e.value.detail


# ---------------------------------------------------------------- SVID rules
@pytest.mark.parametrize(
    "uris,why",
    [
        ([ID, "https://example.com/x"], "exactly one URI SAN"),
        ([ID, ID.replace("gateway", "ledger")], "exactly one URI SAN"),
        (["SPIFFE://mtls-demo.local/ns/default/sa/gateway"], "starts with 'spiffe://'"),
        (["spiffe://MTLS-demo.local/ns/default/sa/gateway"], "trust domain"),
        (["spiffe://mtls-demo.local/ns//sa/gateway"], "empty path segment"),
        (["spiffe://mtls-demo.local/ns/../sa/gateway"], "'..' is not allowed"),
        (["spiffe://mtls-demo.local/ns/default/sa/gateway?x=1"], "no query"),
        (["spiffe://mtls-demo.local/ns/default/sa/gate%41way"], "percent-escape"),
        ([], "has no subjectAltName extension (an SVID carries exactly one URI SAN"),
    ],
)
def test_svid_rules(uris: list[str], why: str) -> None:
    r = root()
    e = refused([leaf(r, uris=uris)], [r])
    assert e.failure is Failure.BAD_CERTIFICATE and why in e.detail


def test_trust_domain_must_be_the_configured_one() -> None:
    r = root()
    lf = leaf(r, uri="spiffe://elsewhere.test/ns/default/sa/gateway")
    assert verify([lf], [r])  # no domain configured: any well-formed one
    e = refused([lf], [r], trust_domain="mtls-demo.local")
    assert "outside trust domain mtls-demo.local" in e.detail


# ---------------------------------------------------------------- one verdict everywhere
def corpus():
    r = root()
    other = root("other")
    srv_i, cli_i = (
        intermediate("servers", r, eku=[SERVER]),
        intermediate("clients", r, eku=[CLIENT]),
    )
    return r, {
        "plain": [leaf(r)],
        "extra": [leaf(r), other],
        "foreign": [leaf(other)],
        "via servers-only": [leaf(srv_i), srv_i],
        "via clients-only": [leaf(cli_i), cli_i],
        "two uris": [leaf(r, uris=[ID, "https://x"])],
        "server eku only": [leaf(r, eku=[SERVER])],
        "expired": [leaf(r, start=NOW - dt.timedelta(days=40))],
        "ca as leaf": [intermediate("ca-leaf", r)],
    }


@pytest.mark.parametrize("role", ["client", "server"])
def test_certs_inspect_and_the_handshake_agree_on_every_chain(role: str) -> None:
    r, chains = corpus()
    seen = set()
    for name, chain in chains.items():
        said = verdicts([c.cert for c in chain], [r.cert], NOW)[role]
        try:
            peer = verify_peer(
                [c.der for c in chain],
                TrustStore([r.cert]),
                role,
                PeerPolicy(),
                NOW,
                require_status="off",  # chain verdicts only: inspect has no staple to check
            )
            sidecar = f"OK ({peer.identity})"
        except ProtocolError as e:
            sidecar = f"FAILED: {e.reason.value}: {e.detail}"
        assert said == sidecar, name
        seen.add(said.split(":")[0].split(" ")[0])
    assert seen == {"OK", "FAILED"}
