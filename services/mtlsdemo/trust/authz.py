"""The one authorization evaluator: who may call what, and which rule decided.

A policy file holds policies in the shape of Istio's AuthorizationPolicy, kept
small: each applies to some workloads (``applies_to``; none: every workload),
has an ``action`` (ALLOW, DENY or AUDIT), a ``mode`` (``enforce`` or
``dry-run``) and rules. A rule matches when one of its ``from`` sources matches
the caller (every field a source names must match: ``ids`` patterns as
``--allow-id``, ``trust_domains``, ``namespaces``) and one of its ``to``
operations matches the call (``methods``: a full gRPC method
``/pkg.Service/Method``, a service's every method ``/pkg.Service/*``, or a bare
method name); a missing ``from`` or ``to`` matches anything.

Istio's order, exactly: a matching DENY rule denies; else, when no ALLOW policy
applies to the workload, the call is allowed; else it must match an ALLOW rule.
An ALLOW policy with no rules therefore denies everything; a rule ``{}`` allows
everything. AUDIT rules decide nothing: a match is recorded. A ``dry-run``
policy decides nothing either: the evaluator says what it *would* have done.

Two enforcers ask: a sidecar at the handshake (L4: the caller and the workload,
no method yet) and a service's gRPC interceptor per call (L7: the method too).
At L4 a rule's ``to`` cannot be judged: an ALLOW rule with methods lets the
connection through (its methods are decided per call), a DENY rule with methods
is left to the call (L4 allowed, L7 denied — the learner sees both).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from mtlsdemo.trust.policy import IdPattern, PolicyError
from mtlsdemo.trust.spiffe import SpiffeId, SpiffeIdError

ACTIONS = ("ALLOW", "DENY", "AUDIT")
MODES = ("enforce", "dry-run")


class AuthzPolicyError(ValueError):
    """A policy file that cannot be used: the message names the file, the line
    and what to change."""


@dataclass(frozen=True)
class Source:
    """Who: every field given must match (values within a field: any)."""

    ids: tuple[IdPattern, ...] = ()
    trust_domains: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()

    def mismatch(self, who: SpiffeId | None) -> str | None:
        """None when ``who`` matches, else the clause that did not."""
        if who is None:
            return "no SPIFFE ID"
        if self.ids and not any(p.matches(who) for p in self.ids):
            return f"ids {[p.text for p in self.ids]}"
        if self.trust_domains and who.trust_domain not in self.trust_domains:
            return f"trust_domains {list(self.trust_domains)}"
        ns = who.path[1] if len(who.path) >= 2 and who.path[0] == "ns" else None
        if self.namespaces and ns not in self.namespaces:
            return f"namespaces {list(self.namespaces)}"
        return None

    def describe(self) -> str:
        parts = [f"ids {[p.text for p in self.ids]}"] if self.ids else []
        parts += [f"trust_domains {list(self.trust_domains)}"] if self.trust_domains else []
        parts += [f"namespaces {list(self.namespaces)}"] if self.namespaces else []
        return " and ".join(parts) or "anyone"


def method_matches(pattern: str, method: str) -> bool:
    if pattern.startswith("/"):
        if pattern.endswith("/*"):
            return method.startswith(pattern[:-1])
        return method == pattern
    return method.rsplit("/", 1)[-1] == pattern


@dataclass(frozen=True)
class Rule:
    sources: tuple[Source, ...] = ()  # empty: any caller
    methods: tuple[str, ...] = ()  # empty: any method
    line: int = 0

    def describe(self) -> str:
        who = " or ".join(s.describe() for s in self.sources) or "anyone"
        what = ", ".join(self.methods) or "any method"
        return f"from {who} to {what}"


@dataclass(frozen=True)
class Policy:
    name: str
    action: str
    rules: tuple[Rule, ...]
    applies_to: tuple[str, ...] = ()  # workload names; empty: every workload
    mode: str = "enforce"
    line: int = 0

    def applies(self, workload: str) -> bool:
        return not self.applies_to or workload in self.applies_to


@dataclass(frozen=True)
class Request:
    """One question: may ``principal`` (a SPIFFE ID, "" for none) call ``workload``,
    at L4 (``method`` None: the connection) or L7 (the full gRPC method)."""

    principal: str
    workload: str
    method: str | None = None

    @property
    def target(self) -> str:
        return self.workload + (self.method or "")


@dataclass(frozen=True)
class Decision:
    """The answer and what decided it: ``policy``/``rule`` (1-based) name the
    deciding rule (None: the default — no ALLOW policy applies, or none matched)."""

    allowed: bool
    reason: str  # one line: why, naming the rule and what to change
    policy: str | None = None
    rule: int | None = None
    trace: tuple[str, ...] = ()
    would_deny: str | None = None  # a dry-run policy's rule that would deny
    audited: tuple[str, ...] = ()

    @property
    def rule_label(self) -> str:
        """For metrics: bounded by the policy file."""
        if self.policy is None:
            return "default"
        return f"{self.policy}#{self.rule}" if self.rule else self.policy


@dataclass(frozen=True)
class PolicySet:
    """Every policy of one file (or the ``--allow-id`` shorthand)."""

    policies: tuple[Policy, ...] = ()
    source: str = "(none)"

    @classmethod
    def allow_ids(cls, ids: Sequence[str], workload: str | None = None) -> PolicySet:
        """``--allow-id`` as the ALLOW rule it stands for."""
        if not ids:
            return cls((), "--allow-id")
        try:
            patterns = tuple(IdPattern.parse(i) for i in ids)
        except PolicyError as e:
            raise AuthzPolicyError(str(e)) from None
        rule = Rule((Source(ids=patterns),))
        return cls(
            (Policy("--allow-id", "ALLOW", (rule,), (workload,) if workload else ()),),
            "--allow-id",
        )

    def evaluate(self, request: Request) -> Decision:
        enforced = _evaluate(
            [p for p in self.policies if p.mode == "enforce"], request, self.source
        )
        dry = [p for p in self.policies if p.mode == "dry-run" and p.applies(request.workload)]
        if not dry or not enforced.allowed:
            return enforced
        as_if = _evaluate(list(self.policies), request, self.source)
        if as_if.allowed:
            return enforced
        # denied by default (no ALLOW matched): the dry-run ALLOW policies that did not
        # take it are what would deny, not "default"
        label = as_if.rule_label if as_if.policy else ",".join(p.name for p in dry)
        return dataclasses.replace(
            enforced,
            would_deny=label,
            trace=(*enforced.trace, f"dry-run: would deny — {as_if.reason}"),
        )


def _evaluate(policies: list[Policy], req: Request, source: str) -> Decision:
    try:
        who: SpiffeId | None = SpiffeId.parse(req.principal) if req.principal else None
    except SpiffeIdError:
        who = None
    shown = req.principal or "(no SPIFFE ID)"
    mine = [p for p in policies if p.applies(req.workload)]
    trace: list[str] = []
    audited: list[str] = []

    def matches(p: Policy, i: int, r: Rule) -> bool:
        misses = [m for s in r.sources if (m := s.mismatch(who)) is not None]
        if r.sources and len(misses) == len(r.sources):
            trace.append(f"{p.action} {p.name} rule {i}: from — no match ({'; '.join(misses)})")
            return False
        if r.methods:
            if req.method is None:
                # L4: the method is not known yet; the call decides it
                fits = p.action != "DENY"
                trace.append(
                    f"{p.action} {p.name} rule {i}: to {list(r.methods)} — decided per call "
                    + (
                        "(the connection may proceed)"
                        if fits
                        else "(not applied to the connection)"
                    )
                )
                return fits
            if not any(method_matches(m, req.method) for m in r.methods):
                trace.append(
                    f"{p.action} {p.name} rule {i}: to — {req.method} not in {list(r.methods)}"
                )
                return False
        trace.append(f"{p.action} {p.name} rule {i}: matches ({r.describe()})")
        return True

    for p in mine:
        if p.action == "AUDIT":
            audited += [f"{p.name}#{i}" for i, r in enumerate(p.rules, 1) if matches(p, i, r)]
    for p in mine:
        if p.action != "DENY":
            continue
        for i, r in enumerate(p.rules, 1):
            if matches(p, i, r):
                return Decision(
                    False,
                    f"{shown} → {req.target}: denied by DENY policy {p.name!r} rule {i} "
                    f"({r.describe()}; {source}:{r.line or p.line})",
                    p.name,
                    i,
                    tuple(trace),
                    audited=tuple(audited),
                )
    allows = [p for p in mine if p.action == "ALLOW"]
    if not allows:
        trace.append(f"no ALLOW policy applies to {req.workload}: allowed")
        return Decision(
            True,
            f"{shown} → {req.target}: allowed (no ALLOW policy applies to {req.workload})",
            trace=tuple(trace),
            audited=tuple(audited),
        )
    for p in allows:
        for i, r in enumerate(p.rules, 1):
            if matches(p, i, r):
                return Decision(
                    True,
                    f"{shown} → {req.target}: allowed by ALLOW policy {p.name!r} rule {i}",
                    p.name,
                    i,
                    tuple(trace),
                    audited=tuple(audited),
                )
    names = ", ".join(repr(p.name) for p in allows)
    empty = [p.name for p in allows if not p.rules]
    why = (
        f"ALLOW policy {empty[0]!r} has no rules, so it allows nothing"
        if empty
        else f"no rule of the ALLOW policies {names} matches"
    )
    return Decision(
        False,
        f"{shown} → {req.target}: denied: {why} (add a rule that does, in {source})",
        allows[0].name if len(allows) == 1 else None,
        None,
        tuple(trace),
        audited=tuple(audited),
    )
