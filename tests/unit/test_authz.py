"""The one authorization evaluator (trust/authz.py): Istio's evaluation order case
by case, the deciding rule named, dry-run and audit, the L4 projection, and a
policy file refused with its line and reason."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mtlsdemo.policyfile import parse
from mtlsdemo.rpc.methods import all_methods
from mtlsdemo.trust.authz import AuthzPolicyError, PolicySet, Request

GW = "spiffe://mtls-demo.local/ns/default/sa/gateway"
CLI = "spiffe://mtls-demo.local/ns/default/sa/cli"
OTHER_NS = "spiffe://mtls-demo.local/ns/prod/sa/gateway"
FOREIGN = "spiffe://other.example/ns/default/sa/gateway"
TRANSFER = "/mtlsdemo.ledger.v1.LedgerService/Transfer"
BALANCE = "/mtlsdemo.ledger.v1.LedgerService/GetAccount"


def policy(text: str) -> PolicySet:
    return parse(text, "p.yaml", all_methods())


ALLOW_GW = """
policies:
  - name: ledger-callers
    applies_to: [ledger]
    action: ALLOW
    rules:
      - from: [{ids: ["spiffe://mtls-demo.local/ns/*/sa/gateway"]}]
"""

DENY_TRANSFER = """
  - name: no-transfers
    applies_to: [ledger]
    action: DENY
    rules:
      - from: [{ids: ["spiffe://mtls-demo.local/ns/default/sa/gateway"]}]
        to: [{methods: [Transfer]}]
"""


@pytest.mark.parametrize(
    ("text", "req", "allowed", "decided_by"),
    [
        # no policy applies to the workload: allowed (Istio step 3)
        ("policies: []", Request(CLI, "ledger", TRANSFER), True, "default"),
        (ALLOW_GW, Request(CLI, "gateway", None), True, "default"),  # applies_to: ledger
        # an ALLOW policy applies: it must match
        (ALLOW_GW, Request(GW, "ledger", TRANSFER), True, "ledger-callers#1"),
        (ALLOW_GW, Request(OTHER_NS, "ledger", TRANSFER), True, "ledger-callers#1"),
        (ALLOW_GW, Request(CLI, "ledger", TRANSFER), False, "ledger-callers"),
        (ALLOW_GW, Request(FOREIGN, "ledger", None), False, "ledger-callers"),
        (ALLOW_GW, Request("", "ledger", None), False, "ledger-callers"),
        # DENY first, even when an ALLOW matches
        (ALLOW_GW + DENY_TRANSFER, Request(GW, "ledger", TRANSFER), False, "no-transfers#1"),
        (ALLOW_GW + DENY_TRANSFER, Request(GW, "ledger", BALANCE), True, "ledger-callers#1"),
        # L4: a DENY with methods is left to the call; the connection proceeds
        (ALLOW_GW + DENY_TRANSFER, Request(GW, "ledger", None), True, "ledger-callers#1"),
        # an ALLOW policy without rules allows nothing; a rule {} allows everything
        ("policies: [{name: shut, action: ALLOW}]", Request(GW, "ledger", None), False, "shut"),
        ("policies: [{name: open, rules: [{}]}]", Request(CLI, "ledger", TRANSFER), True, "open#1"),
    ],
)
def test_istio_evaluation_order(text, req, allowed, decided_by) -> None:
    d = policy(text).evaluate(req)
    assert d.allowed is allowed, d.reason
    assert d.rule_label == decided_by, d


def test_a_denial_names_the_rule_the_line_and_what_to_change() -> None:
    d = policy(ALLOW_GW + DENY_TRANSFER).evaluate(Request(GW, "ledger", TRANSFER))
    assert "denied by DENY policy 'no-transfers' rule 1" in d.reason
    assert "p.yaml:" in d.reason
    d = policy(ALLOW_GW).evaluate(Request(CLI, "ledger", None))
    assert "no rule of the ALLOW policies 'ledger-callers' matches" in d.reason
    assert "add a rule that does, in p.yaml" in d.reason
    assert any("from — no match" in t for t in d.trace)
    d = policy("policies: [{name: shut}]").evaluate(Request(GW, "ledger", None))
    assert "ALLOW policy 'shut' has no rules, so it allows nothing" in d.reason


def test_sources_match_by_trust_domain_and_namespace() -> None:
    p = policy(
        "policies: [{name: a, rules: [{from: [{trust_domains: [other.example]},"
        " {namespaces: [prod]}]}]}]"
    )
    assert p.evaluate(Request(FOREIGN, "ledger")).allowed
    assert p.evaluate(Request(OTHER_NS, "ledger")).allowed
    assert not p.evaluate(Request(GW, "ledger")).allowed


def test_a_dry_run_policy_changes_no_decision_but_says_it_would_deny() -> None:
    dry = ALLOW_GW + DENY_TRANSFER.replace("action: DENY", "action: DENY\n    mode: dry-run")
    d = policy(dry).evaluate(Request(GW, "ledger", TRANSFER))
    assert d.allowed and d.would_deny == "no-transfers#1"
    assert "dry-run: would deny" in d.trace[-1]
    assert policy(dry).evaluate(Request(GW, "ledger", BALANCE)).would_deny is None


def test_audit_decides_nothing_and_is_recorded() -> None:
    p = policy("policies: [{name: watch, action: AUDIT, rules: [{to: [{methods: [Transfer]}]}]}]")
    d = p.evaluate(Request(CLI, "ledger", TRANSFER))
    assert d.allowed and d.audited == ("watch#1",) and d.rule_label == "default"


def test_allow_id_is_the_shorthand_for_one_allow_rule() -> None:
    p = PolicySet.allow_ids([GW], "ledger")
    assert p.evaluate(Request(GW, "ledger", TRANSFER)).allowed
    assert not p.evaluate(Request(CLI, "ledger", TRANSFER)).allowed


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "policies:\n  - name: a\n    acton: ALLOW\n",
            "p.yaml:3: unknown field 'acton' in a policy",
        ),
        (
            "policies:\n  - name: a\n    action: PERMIT\n",
            "p.yaml:3: action 'PERMIT': one of ALLOW, DENY, AUDIT",
        ),
        ("policies:\n  - name: a\n    mode: maybe\n", "p.yaml:3: mode 'maybe'"),
        (
            "policies:\n  - name: a\n    rules:\n      - from: [{ids: ['spiffe://td/ns/x*/sa/y']}]\n",
            "p.yaml:4: id 'spiffe://td/ns/x*/sa/y': '*' must be a whole path segment",
        ),
        (
            "policies:\n  - name: a\n    rules:\n      - to: [{methods: [Transferr]}]\n",
            "p.yaml:4: method 'Transferr' names no method of the mesh",
        ),
        ("policies: [\n", "p.yaml:2: not valid YAML"),
        ("policies:\n  - name: a\n  - name: a\n", "p.yaml:3: policy name 'a' used twice"),
        ("policies:\n  - action: ALLOW\n", "p.yaml:2: a policy needs a name"),
    ],
)
def test_a_bad_policy_file_is_refused_with_its_line(text: str, said: str) -> None:
    with pytest.raises(AuthzPolicyError) as e:
        policy(text)
    assert str(e.value).startswith(said), str(e.value)


names = st.sampled_from([GW, CLI, OTHER_NS, FOREIGN, ""])
methods = st.sampled_from([None, TRANSFER, BALANCE])
actions = st.sampled_from(["ALLOW", "DENY"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(actions, st.booleans(), st.booleans()), max_size=4), names, methods)
def test_the_l4_answer_never_denies_what_some_call_would_allow(spec, who, method) -> None:
    """The L4 projection is sound: a connection is refused only when every call on
    it would be refused (no method rule can allow what the connection forbade)."""

    def rule(f: bool, to: bool) -> str:
        parts = (["from: [{namespaces: [default]}]"] if f else []) + (
            ["to: [{methods: [Transfer]}]"] if to else []
        )
        return "{" + ", ".join(parts) + "}"

    items = [
        f"{{name: p{i}, action: {a}, rules: [{rule(f, to)}]}}" for i, (a, f, to) in enumerate(spec)
    ]
    text = "policies: [" + ", ".join(items) + "]"
    p = policy(text)
    if not p.evaluate(Request(who, "ledger", None)).allowed:
        for m in (TRANSFER, BALANCE):
            assert not p.evaluate(Request(who, "ledger", m)).allowed
