"""What an authorization policy decides, for people: one decision with its trace
(L4 at the sidecar, L7 at the service), the whole identity x method matrix, and
the calls a new policy changes. Every answer comes from the one evaluator the
enforcers use (trust/authz.py): the simulator is the enforcer."""

from __future__ import annotations

from pathlib import Path

from mtlsdemo.policyfile import load
from mtlsdemo.rpc.methods import all_methods, mesh_methods
from mtlsdemo.trust.authz import (
    AuthzPolicyError,
    Decision,
    Policy,
    PolicySet,
    Request,
    Rule,
    Source,
)
from mtlsdemo.trust.policy import IdPattern
from mtlsdemo.trust.spiffe import DEFAULT_TRUST_DOMAIN, svid_identity, workload_id

CALLERS = ("cli", "gateway", "ledger")  # the mesh's identities when no certs dir says more


def mesh_identities(certs_dir: Path) -> dict[str, str]:
    """name -> SPIFFE ID of every identity in the certs directory (its tls.crt);
    the default trust domain's when there is none."""
    from mtlsdemo.pki.files import load_cert

    found = {}
    if certs_dir.is_dir():
        for d in sorted(certs_dir.iterdir()):
            if (d / "tls.crt").is_file():
                try:
                    found[d.name] = str(svid_identity(load_cert(d / "tls.crt")))
                except Exception:  # not an SVID (a CA, a stray file): not a caller
                    continue
    return found or {s: workload_id(DEFAULT_TRUST_DOMAIN, "default", s) for s in CALLERS}


def mesh_policy(ids: dict[str, str]) -> PolicySet:
    """The policy `mtlsdemo run` applies through --allow-id: the ledger admits the
    gateway, the gateway admits the cli."""

    def allow(workload: str, caller: str) -> Policy:
        rule = Rule((Source(ids=(IdPattern.parse(ids[caller]),)),))
        return Policy(f"--allow-id ({workload})", "ALLOW", (rule,), (workload,))

    return PolicySet(
        (allow("ledger", "gateway"), allow("gateway", "cli")),
        "the mesh's --allow-id lists",
    )


def policy_of(path: Path | None, ids: dict[str, str]) -> PolicySet:
    if path is None:
        return mesh_policy(ids)
    return load(path, all_methods())


def resolve(target: str) -> tuple[str, str | None]:
    """``ledger`` -> (ledger, None); ``ledger/Transfer`` and the full method -> the
    full method name of that workload."""
    workload, _, rest = target.partition("/")
    methods = mesh_methods()
    if workload not in methods:
        raise AuthzPolicyError(
            f"--to {target!r}: no workload {workload!r} (the mesh's: {', '.join(methods)})"
        )
    if not rest:
        return workload, None
    full = "/" + rest.lstrip("/")
    if full in methods[workload]:
        return workload, full
    named = [m for m in methods[workload] if m.rsplit("/", 1)[-1] == rest]
    if not named:
        short = ", ".join(m.rsplit("/", 1)[-1] for m in methods[workload])
        raise AuthzPolicyError(f"--to {target!r}: {workload} has no method {rest!r} ({short})")
    return workload, named[0]


def _verdict(d: Decision) -> str:
    if not d.allowed:
        return "DENIED"
    return "ALLOWED (a dry-run policy would deny)" if d.would_deny else "ALLOWED"


def explain(certs_dir: Path, path: Path | None, principal: str, target: str) -> tuple[str, bool]:
    ids = mesh_identities(certs_dir)
    who = ids.get(principal, principal)  # a name of the mesh, or a SPIFFE ID
    policies = policy_of(path, ids)
    workload, method = resolve(target)
    l4 = policies.evaluate(Request(who, workload))
    lines = [
        f"policy: {policies.source}",
        f"L4  the connection, decided by {workload}'s sidecar at the handshake: {_verdict(l4)}",
        f"    {l4.reason}",
    ]
    decisions = [l4]
    if method is not None:
        l7 = policies.evaluate(Request(who, workload, method))
        decisions.append(l7)
        lines += [
            f"L7  the call {method}, decided by the {workload} service per call: {_verdict(l7)}",
            f"    {l7.reason}",
        ]
        if l4.allowed and not l7.allowed:
            lines.append("    (the handshake succeeds; the call is refused PERMISSION_DENIED)")
    lines.append("trace:")
    for d, layer in zip(decisions, ("L4", "L7"), strict=False):
        lines += [f"  {layer} {t}" for t in d.trace] or [f"  {layer} (no policy applies)"]
    allowed = all(d.allowed for d in decisions)
    return "\n".join(lines), allowed


def _targets() -> list[tuple[str, str | None]]:
    return [(w, m) for w, ms in mesh_methods().items() for m in (None, *ms)]


def matrix(certs_dir: Path, path: Path | None) -> str:
    ids = mesh_identities(certs_dir)
    policies = policy_of(path, ids)
    names = list(ids)
    width = max(len(m.rsplit("/", 1)[-1]) for ms in mesh_methods().values() for m in ms) + 4
    lines = [f"policy: {policies.source}", ""]
    notes: dict[str, str] = {}
    for workload, ms in mesh_methods().items():
        lines.append(f"{workload:<{width}}" + "".join(f"{n:<10}" for n in names))
        for m in (None, *ms):
            cells = []
            for n in names:
                d = policies.evaluate(Request(ids[n], workload, m))
                cell = "allow" if d.allowed else "DENY"
                if d.would_deny:
                    cell = "allow*"
                    notes["*"] = "* a dry-run policy would deny it"
                cells.append(f"{cell:<10}")
            label = "(connect)" if m is None else m.rsplit("/", 1)[-1]
            lines.append(f"  {label:<{width - 2}}" + "".join(cells))
        lines.append("")
    lines.append(
        "(connect): the connection, decided at the handshake by the workload's sidecar "
        "(L4; a service on native TLS decides it with each call); a method: the call, "
        "decided by the service (L7)"
    )
    lines += list(notes.values())
    lines += [f"{n}: {ids[n]}" for n in names]
    return "\n".join(lines)


def diff(certs_dir: Path, old: str, new: str) -> tuple[str, int]:
    ids = mesh_identities(certs_dir)
    before = policy_of(None if old == "mesh" else Path(old), ids)
    after = policy_of(None if new == "mesh" else Path(new), ids)
    changed = []
    for workload, m in _targets():
        for n, who in ids.items():
            a = before.evaluate(Request(who, workload, m))
            b = after.evaluate(Request(who, workload, m))
            if (a.allowed, a.would_deny) != (b.allowed, b.would_deny):
                what = workload + ("" if m is None else "/" + m.rsplit("/", 1)[-1])
                changed.append(f"{n} -> {what}: {_verdict(a)} -> {_verdict(b)}: {b.reason}")
    head = f"{before.source} -> {after.source}: {len(changed)} decision(s) change"
    return "\n".join([head, *changed]), len(changed)
