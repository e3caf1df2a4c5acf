"""The one identity policy and the SPIFFE ID rules it stands on, against an
independent reference model (hypothesis)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mtlsdemo.handshake import PeerPolicy
from mtlsdemo.trust import IdentityPolicy, PolicyError, SpiffeId, SpiffeIdError

GW = "spiffe://mtls-demo.local/ns/default/sa/gateway"


# ---------------------------------------------------------------- SPIFFE IDs
@pytest.mark.parametrize(
    "text",
    [
        GW,
        "spiffe://td",
        "spiffe://a.b-c_d/x",
        "spiffe://td/Upper/Case.ok_-",
    ],
)
def test_valid_ids_round_trip(text: str) -> None:
    assert str(SpiffeId.parse(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "SPIFFE://td/x",
        "https://td/x",
        "spiffe://",
        "spiffe:///x",
        "spiffe://TD/x",
        "spiffe://td:8443/x",
        "spiffe://user@td/x",
        "spiffe://td/x/",
        "spiffe://td//x",
        "spiffe://td/./x",
        "spiffe://td/../x",
        "spiffe://td/x?y",
        "spiffe://td/x#y",
        "spiffe://td/%41",
        "spiffe://td/a b",
    ],
)
def test_invalid_ids_are_refused(text: str) -> None:
    with pytest.raises(SpiffeIdError):
        SpiffeId.parse(text)


# ---------------------------------------------------------------- patterns
def test_star_matches_exactly_one_whole_nonempty_segment() -> None:
    p = IdentityPolicy.parse(["spiffe://mtls-demo.local/ns/*/sa/gateway"])
    assert p.allows(GW)
    assert p.allows("spiffe://mtls-demo.local/ns/shop/sa/gateway")
    for no in (
        "spiffe://mtls-demo.local/ns//sa/gateway",
        "spiffe://mtls-demo.local/ns/../sa/gateway",
        "spiffe://mtls-demo.local/ns/./sa/gateway",
        "spiffe://mtls-demo.local/ns/a/b/sa/gateway",
        "spiffe://mtls-demo.local/ns/default/sa/gateway-admin",
        "spiffe://other.local/ns/default/sa/gateway",
    ):
        assert not p.allows(no), no


@pytest.mark.parametrize(
    "pattern,why",
    [
        ("spiffe://mtls-demo.local/ns/default/sa/gate*", "whole path segment"),
        ("spiffe://mtls-demo.local/ns/default/sa/gate?ay", "no query"),
        ("spiffe://mtls-demo.local/ns/default/sa/[gw]ateway", "may hold only"),
        ("spiffe://*.local/ns/default/sa/gateway", "no wildcard in the trust domain"),
        ("spiffe://mtls-demo.local/ns/**/sa/gateway", "whole path segment"),
        ("gateway", "starts with 'spiffe://'"),
        ("spiffe://mtls-demo.local/ns//sa/gateway", "empty path segment"),
    ],
)
def test_invalid_patterns_are_refused_at_startup(pattern: str, why: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(why)):
        IdentityPolicy.parse([pattern])
    with pytest.raises(PolicyError):
        PeerPolicy(allowed_ids=(pattern,))


def test_gate_star_never_matches_gateway_admin() -> None:
    """The old glob let `sa/gate*` match `gateway-admin`; now the pattern itself is refused."""
    with pytest.raises(PolicyError):
        IdentityPolicy.parse(["spiffe://mtls-demo.local/ns/default/sa/gate*"])


def test_empty_policy_allows_any_well_formed_id_only() -> None:
    assert IdentityPolicy().allows(GW)
    assert IdentityPolicy.parse([GW]).allows(GW)
    assert not IdentityPolicy.parse([GW]).allows("not an id")


# ---------------------------------------------------------------- reference model
SEG_CHARS = "abAB09._-%?/*[ "
segments = st.text(alphabet=SEG_CHARS, min_size=0, max_size=4)
REF_SEG = re.compile(r"^[A-Za-z0-9._-]+$")


def ref_valid(text: str) -> bool:
    if not text.startswith("spiffe://"):
        return False
    domain, _, path = text[9:].partition("/")
    if not re.fullmatch(r"[a-z0-9._-]+", domain):
        return False
    if "/" not in text[9:]:
        return True
    return all(REF_SEG.match(s) and s not in (".", "..") for s in path.split("/"))


def ref_pattern_ok(pattern: str) -> bool:
    """A valid pattern: "*" only as a whole path segment (never in the trust domain),
    and a SPIFFE ID once each "*" stands for a legal segment. Judged on the string
    (a generated segment may itself contain "/")."""
    domain, slash, path = pattern[9:].partition("/")
    segs = path.split("/") if slash else []
    if "*" in domain or any("*" in s and s != "*" for s in segs):
        return False
    return ref_valid("spiffe://" + domain + "".join("/" + ("x" if s == "*" else s) for s in segs))


def ref_matches(pattern: str, text: str) -> bool:
    if not ref_valid(text):
        return False
    p_dom, _, p_path = pattern[9:].partition("/")
    t_dom, _, t_path = text[9:].partition("/")
    ps, ts = p_path.split("/") if p_path else [], t_path.split("/") if t_path else []
    return (
        p_dom == t_dom
        and len(ps) == len(ts)
        and all(p in ("*", t) for p, t in zip(ps, ts, strict=True))
    )


@settings(
    max_examples=int(__import__("os").environ.get("MTLSDEMO_FUZZ_EXAMPLES", "400")), deadline=None
)
@given(
    domain=st.sampled_from(["td", "mtls-demo.local", "TD"]),
    pat=st.lists(segments, min_size=0, max_size=4),
    ident=st.lists(segments, min_size=0, max_size=4),
)
def test_policy_agrees_with_the_reference_model(
    domain: str, pat: list[str], ident: list[str]
) -> None:
    pattern = f"spiffe://{domain}" + "".join("/" + s for s in pat)
    text = f"spiffe://{domain}" + "".join("/" + s for s in ident)
    pattern_ok = ref_pattern_ok(pattern)
    try:
        policy = IdentityPolicy.parse([pattern])
    except PolicyError:
        assert not pattern_ok, pattern
        return
    assert pattern_ok, pattern
    assert policy.allows(text) == ref_matches(pattern, text), (pattern, text)


@settings(max_examples=200, deadline=None)
@given(
    ident=st.lists(st.text(alphabet="ab9-", min_size=1, max_size=3), min_size=1, max_size=4),
    star=st.integers(min_value=0, max_value=3),
)
def test_a_star_in_any_segment_matches_every_legal_value_there(ident: list[str], star: int) -> None:
    star %= len(ident)
    pattern = "spiffe://td" + "".join("/" + ("*" if i == star else s) for i, s in enumerate(ident))
    policy = IdentityPolicy.parse([pattern])
    assert policy.allows("spiffe://td" + "".join("/" + s for s in ident))
    swapped = [*ident]
    swapped[star] = "zz"
    assert policy.allows("spiffe://td" + "".join("/" + s for s in swapped))
    swapped[star] = ""
    assert not policy.allows("spiffe://td" + "".join("/" + s for s in swapped))


DOMAINS = [
    "mtls-demo.local",
    "a_b",  # bootstrap used to refuse this while the verifier accepted it
    "-lead",
    "trail.",
    "x" * 255,
    "x" * 256,
    "",
    "UPPER.case",
    "port:1",
    "user@host",
    "sp ace",
    "é.local",
]


@pytest.mark.parametrize("domain", DOMAINS)
def test_issuance_and_the_verifier_accept_exactly_the_same_trust_domains(domain: str) -> None:
    """One trust-domain rule: `certs bootstrap --trust-domain` (pki) refuses exactly
    what the verifier (trust.spiffe) would refuse in a peer's SPIFFE ID."""
    from mtlsdemo.pki.errors import PkiError
    from mtlsdemo.pki.identity import ServiceIdentity

    try:
        SpiffeId.parse(f"spiffe://{domain}/ns/default/sa/ledger")
        verifier = True
    except SpiffeIdError:
        verifier = False
    try:
        ServiceIdentity.checked("ledger", "default", domain)
        issuance = True
    except PkiError:
        issuance = False
    assert issuance == verifier, (domain, issuance, verifier)


@given(st.text(alphabet="abcXYZ019._-:@/ é", max_size=12))
@settings(max_examples=300)
def test_the_trust_domain_rule_is_one_rule(domain: str) -> None:
    from mtlsdemo.pki.errors import PkiError
    from mtlsdemo.pki.identity import check_trust_domain

    try:
        SpiffeId.parse(f"spiffe://{domain}/x")
        verifier = "/" not in domain
    except SpiffeIdError:
        verifier = False
    try:
        check_trust_domain(domain)
        issuance = True
    except PkiError:
        issuance = False
    assert issuance == verifier or "/" in domain
