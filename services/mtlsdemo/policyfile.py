"""An authorization policy file followed as it changes (hot reload like the
identity files): ``decide`` asks the one evaluator (trust/authz.py) about the
newest good version, counts every decision, and logs denials and would-denials.
A bad new file is refused with one line naming the file, the line and why, and
the previous policy keeps working."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from mtlsdemo import telemetry
from mtlsdemo.trust.authz import (
    ACTIONS,
    MODES,
    AuthzPolicyError,
    Decision,
    Policy,
    PolicySet,
    Request,
    Rule,
    Source,
    method_matches,
)
from mtlsdemo.trust.policy import IdPattern, PolicyError

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- the file
# (parsed here, not in trust/: the verifier and the evaluator depend on cryptography
# alone and are compiled; YAML is the kubernetes client's kept library)
def parse(
    text: str, source: str = "policy", known_methods: Iterable[str] | None = None
) -> PolicySet:
    """A policy file (YAML), checked field by field; every error names the line."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise AuthzPolicyError(
            f"{source}{where}: not valid YAML ({getattr(e, 'problem', e)})"
        ) from None
    known = frozenset(known_methods) if known_methods is not None else None
    checker = _Checker(source, known)
    if root is None:
        raise AuthzPolicyError(f"{source}: empty file: write `policies:` and a list")
    top = checker.mapping(root, "the file", {"policies"})
    items = checker.seq(top["policies"], "policies") if "policies" in top else []
    policies = tuple(checker.policy(n) for n in items)
    seen: set[str] = set()
    for p in policies:
        if p.name in seen:
            raise AuthzPolicyError(f"{source}:{p.line}: policy name {p.name!r} used twice")
        seen.add(p.name)
    return PolicySet(policies, source)


def load(path: Any, known_methods: Iterable[str] | None = None) -> PolicySet:
    try:
        text = path.read_text()
    except OSError as e:
        raise AuthzPolicyError(f"{path}: cannot read the policy file: {e.strerror}") from None
    return parse(text, str(path), known_methods)


class _Checker:
    def __init__(self, source: str, known: frozenset[str] | None) -> None:
        self.source, self.known = source, known

    def fail(self, node: Any, what: str) -> AuthzPolicyError:
        return AuthzPolicyError(f"{self.source}:{node.start_mark.line + 1}: {what}")

    def mapping(self, node: Any, what: str, keys: set[str]) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, Any] = {}
        for k, v in node.value:
            if k.value not in keys:
                raise self.fail(
                    k, f"unknown field {k.value!r} in {what} (known: {', '.join(sorted(keys))})"
                )
            out[k.value] = v
        return out

    def seq(self, node: Any, what: str) -> list[Any]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        return list(node.value)

    def text(self, node: Any, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            raise self.fail(node, f"{what} must be a non-empty string")
        return str(node.value).strip()

    def texts(self, node: Any, what: str) -> tuple[str, ...]:
        return tuple(self.text(n, what) for n in self.seq(node, what))

    def policy(self, node: Any) -> Policy:
        f = self.mapping(node, "a policy", {"name", "action", "mode", "applies_to", "rules"})
        line = node.start_mark.line + 1
        if "name" not in f:
            raise self.fail(node, "a policy needs a name")
        name = self.text(f["name"], "name")
        action = self.text(f["action"], "action").upper() if "action" in f else "ALLOW"
        if action not in ACTIONS:
            raise self.fail(f["action"], f"action {action!r}: one of {', '.join(ACTIONS)}")
        mode = self.text(f["mode"], "mode") if "mode" in f else "enforce"
        if mode not in MODES:
            raise self.fail(f["mode"], f"mode {mode!r}: one of {', '.join(MODES)}")
        applies = self.texts(f["applies_to"], "applies_to") if "applies_to" in f else ()
        rules = tuple(self.rule(n) for n in self.seq(f["rules"], "rules")) if "rules" in f else ()
        return Policy(name, action, rules, applies, mode, line)

    def rule(self, node: Any) -> Rule:
        f = self.mapping(node, "a rule", {"from", "to"})
        sources = tuple(self.source_(n) for n in self.seq(f["from"], "from")) if "from" in f else ()
        methods: tuple[str, ...] = ()
        for op in self.seq(f["to"], "to") if "to" in f else []:
            g = self.mapping(op, "an operation", {"methods"})
            for m in self.seq(g["methods"], "methods") if "methods" in g else []:
                methods += (self.method(m),)
        return Rule(sources, methods, node.start_mark.line + 1)

    def source_(self, node: Any) -> Source:
        f = self.mapping(node, "a source", {"ids", "trust_domains", "namespaces"})
        ids = []
        for n in self.seq(f["ids"], "ids") if "ids" in f else []:
            try:
                ids.append(IdPattern.parse(self.text(n, "an id")))
            except PolicyError as e:
                raise self.fail(n, str(e).replace("--allow-id ", "id ")) from None
        return Source(
            tuple(ids),
            self.texts(f["trust_domains"], "trust_domains") if "trust_domains" in f else (),
            self.texts(f["namespaces"], "namespaces") if "namespaces" in f else (),
        )

    def method(self, node: Any) -> str:
        m = self.text(node, "a method")
        if self.known is None:
            return m
        if any(method_matches(m, k) for k in self.known):
            return m
        short = sorted({k.rsplit("/", 1)[-1] for k in self.known})
        raise self.fail(
            node,
            f"method {m!r} names no method of the mesh (a full /pkg.Service/Method, "
            f"/pkg.Service/*, or one of {', '.join(short)})",
        )


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)  # follows a ConfigMap volume's ..data symlink
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class PolicyFile:
    """The policy in ``path`` (raises AuthzPolicyError at start when it is bad: a
    service must not start on a policy it cannot read), re-read when it changes."""

    def __init__(
        self, path: Path, enforcer: str, known_methods: Iterable[str] | None = None
    ) -> None:
        self.path, self.enforcer = path, enforcer
        self.known = frozenset(known_methods) if known_methods is not None else None
        self._lock = threading.Lock()
        self._stamp = _stamp(path)
        self.policies = load(path, self.known)
        self.last_error: str | None = None
        self.reloads = 0
        self._warn_unenforced()

    def _warn_unenforced(self) -> None:
        if self.enforcer != "sidecar":
            return
        for p in self.policies.policies:
            for i, r in enumerate(p.rules, 1):
                if r.methods and p.action == "DENY":
                    log.warning(
                        "authz policy %s: DENY %r rule %d names methods: a sidecar decides "
                        "connections, not calls; only a service that checks its callers "
                        "(serve --authz-policy, over TLS or --caller-from-sidecar) enforces it",
                        self.path,
                        p.name,
                        i,
                    )

    def check(self) -> None:
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                fresh = load(self.path, self.known)
            except AuthzPolicyError as e:
                self.last_error = str(e)
                telemetry.AUTHZ_RELOADS.labels("failure").inc()
                log.error("authz policy reload refused, keeping the previous one: %s", e)
                return
            self.policies, self.last_error = fresh, None
            self.reloads += 1
            telemetry.AUTHZ_RELOADS.labels("success").inc()
            log.info("authz policy reloaded from %s: %d policies", self.path, len(fresh.policies))
            self._warn_unenforced()

    def decide(self, request: Request) -> Decision:
        self.check()  # one stat per decision: a new policy applies to the very next one
        return record(self.policies.evaluate(request), self.enforcer)


def record(d: Decision, enforcer: str) -> Decision:
    """Count and log one decision (the labels are bounded by the policy file)."""
    telemetry.AUTHZ_DECISIONS.labels(enforcer, "allow" if d.allowed else "deny", d.rule_label).inc()
    if d.would_deny:
        telemetry.AUTHZ_DECISIONS.labels(enforcer, "would_deny", d.would_deny).inc()
        log.warning("authz dry-run (%s): %s", enforcer, d.trace[-1])
    for audit in d.audited:
        telemetry.AUTHZ_DECISIONS.labels(enforcer, "audit", audit).inc()
    if not d.allowed:
        log.warning("authz (%s): %s", enforcer, d.reason)
    return d


__all__ = ["PolicyFile", "PolicySet", "load", "parse", "record"]
