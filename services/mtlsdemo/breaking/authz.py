"""The `break authz-*` scenarios: an authorization policy applied to the running mesh
for the scenario's length, through the policy file `make run` keeps beside its
`--allow-id` lists (mesh/scenario_policy.py; both must allow). Authentication (the
handshake: who is calling) passes in each; what authorization then does is the point:
a call refused by method while the same identity's other calls work (L7), every
connection refused at the handshake by an empty ALLOW policy (L4), and a policy with a
typo tried in dry-run first, refusing nothing while its would-deny count names it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from mtlsdemo.breaking.common import Report, through_the_mesh
from mtlsdemo.mesh import scenario_policy
from mtlsdemo.mesh.client import LocalMesh, through_route
from mtlsdemo.policyfile import load
from mtlsdemo.trust.authz import Request
from mtlsdemo.waiting import wait_until

AUTHZ = {"authz-deny-method", "authz-empty-allow", "authz-dry-run"}


def policy_file(mesh: LocalMesh) -> Path | None:
    """The policy file the ledger's sidecar decides with, when it is `run`'s own."""
    authz = mesh.status(mesh.config.ledger_admin).get("authz_policy") or {}
    path = Path(authz["file"]) if authz.get("file") else None
    return path if path is not None and scenario_policy.is_scenario_file(path) else None


def not_here(mesh: LocalMesh, name: str) -> str | None:
    authz = mesh.status(mesh.config.ledger_admin).get("authz_policy")
    if authz is None:
        return (
            "its enforcers follow no policy file (compose and Kubernetes mount none for "
            "scenarios; a local mesh started by an older `make run`: restart it)"
        )
    if policy_file(mesh) is None:
        return (
            f"the mesh decides with a policy file that is not `make run`'s own ({authz['file']}: "
            "yours, or the compose/Kubernetes one), which a scenario never rewrites; they run "
            "on a local `make run` without --authz-policy"
        )
    if name == "authz-deny-method" and mesh.caller_transport() != "tls":
        return (
            "the gateway sits behind its sidecar on this mesh (MTD/1), which decides per "
            "connection; per-call decisions there need `run --authz-policy FILE`"
        )
    return None


@contextmanager
def applied(mesh: LocalMesh, r: Report, name: str, body: str) -> Iterator[Path]:
    """The policy in force for the scenario's length; the empty file back after."""
    path = policy_file(mesh)
    assert path is not None  # not_here said so otherwise

    def holds(names: list[str]) -> bool:
        authz = mesh.status(mesh.config.ledger_admin)["authz_policy"]
        return bool(authz["policies"] == names and not authz["last_error"])

    scenario_policy.write(path, body)
    try:
        wait_until(
            lambda: holds([name]),
            timeout=mesh.config.timeout + 10,
            interval=0.1,
            what=f"the ledger's sidecar to load policy {name!r}",
        )
        r.add("setup", f"policy {name!r} written to {path} (the enforcers follow the file)")
        yield path
    finally:
        scenario_policy.reset(path)
        wait_until(
            lambda: holds([]),
            timeout=mesh.config.timeout + 10,
            interval=0.1,
            what="the ledger's sidecar to drop the scenario's policy",
        )
        r.add("restore", f"{path} empty again: the --allow-id lists decide alone")


def _decisions(mesh: LocalMesh, decision: str, rule: str) -> int:
    return sum(
        int(s.value)
        for s in mesh.samples(mesh.config.gateway_metrics, "mtls_authz_decisions_total")
        if s.labels.get("decision") == decision and s.labels.get("rule") == rule
    )


def _call_as_cli(mesh: LocalMesh, method: str) -> grpc.StatusCode | None:
    """One call through the gateway as the cli (None: it answered)."""
    from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
    from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
    from mtlsdemo.gateway.caller import caller_channel

    c = mesh.config
    host, port = c.gateway
    cli = c.certs_dir / "cli"
    with caller_channel(f"{host}:{port}", cli, "gateway", "tls") as channel:
        stub = pb_grpc.GatewayServiceStub(channel)
        try:
            if method == "Transfer":
                stub.Transfer(
                    pb.TransferRequest(
                        from_account_id="break-probe", to_account_id="break-probe", amount_cents=1
                    ),
                    timeout=c.timeout,
                )
            else:
                stub.GetBalance(pb.GetBalanceRequest(account_id="break-probe"), timeout=c.timeout)
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None  # the gateway took the call: an answer about the accounts
            raise
    return None


def deny_method(mesh: LocalMesh, r: Report, work: Path) -> None:
    cli = mesh.config.id("cli")
    rule = "no-transfers-for-cli#1"
    body = (
        "policies:\n  - name: no-transfers-for-cli\n    applies_to: [gateway]\n"
        f"    action: DENY\n    rules:\n      - from: [{{ids: ['{cli}']}}]\n"
        "        to: [{methods: [Transfer]}]\n"
    )
    with applied(mesh, r, "no-transfers-for-cli", body):
        before = _decisions(mesh, "deny", rule)
        try:
            _call_as_cli(mesh, "GetBalance")
        except grpc.RpcError as e:
            r.fail(f"GetBalance as the cli: {e.code().name}: {e.details()} (expected an answer)")
            return
        r.add(
            "balance",
            "GetBalance as the cli: answered — its certificate passed the handshake (L4) "
            "and this method is allowed (L7)",
        )
        try:
            _call_as_cli(mesh, "Transfer")
            r.fail("Transfer as the cli: the gateway took it (expected PERMISSION_DENIED)")
            return
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.PERMISSION_DENIED:
                r.fail(f"Transfer as the cli: {e.code().name}: {e.details()}")
                return
            r.add("result", f"Transfer as the cli: PERMISSION_DENIED — {e.details()}")
        r.add(
            "why",
            "the handshake authenticated the cli (who is calling); authorization then "
            "decided per call (what it may do): the same identity, allowed GetBalance, is "
            "refused Transfer by the rule named above",
        )
        wait_until(
            lambda: _decisions(mesh, "deny", rule) > before,
            timeout=mesh.config.timeout,
            interval=0.2,
            what="the gateway to count the denial",
        )
        r.add(
            "metrics",
            f'gateway: mtls_authz_decisions_total{{enforcer="grpc",decision="deny",rule="{rule}"}} '
            f"+{_decisions(mesh, 'deny', rule) - before}",
        )


def empty_allow(mesh: LocalMesh, r: Report, work: Path) -> None:
    body = "policies:\n  - name: nobody-yet\n    applies_to: [ledger]\n    action: ALLOW\n    rules: []\n"
    with applied(mesh, r, "nobody-yet", body):
        r.add(
            "",
            "an ALLOW policy with no rules matches nobody: once it applies to the ledger, "
            "no caller is allowed (Istio's order: DENY first, then an ALLOW must match)",
        )
        through_the_mesh(mesh, r, "identity_mismatch")
        r.add(
            "note",
            "tunnels already open stay up: the sidecar decides at the handshake (L4), as it "
            "checks a certificate; a new tunnel meets the policy",
        )


def dry_run(mesh: LocalMesh, r: Report, work: Path) -> None:
    c = mesh.config
    gateway = c.id("gateway")
    typo = gateway.rsplit("/", 1)[0] + "/gatway"
    name = "ledger-callers-v2"
    body = (
        f"policies:\n  - name: {name}\n    applies_to: [ledger]\n    action: ALLOW\n"
        f"    mode: dry-run\n    rules:\n      - from: [{{ids: ['{typo}']}}]\n"
    )

    def would_deny() -> int:
        authz = mesh.status(c.ledger_admin)["authz_policy"]
        return sum(w["count"] for w in authz.get("would_deny", []) if w["peer"] == gateway)

    with applied(mesh, r, name, body) as path:
        before = would_deny()
        answered = [through_route(c.route, c.timeout) for _ in range(3)]
        r.add(
            "trigger",
            f"3 new connections into the gateway sidecar's route {c.route[0]}:{c.route[1]} "
            "(3 handshakes with the ledger's)",
        )
        ok = sum(a == "the ledger answered" for a in answered)
        r.add("result", f"{ok} of 3 answered: a dry-run policy enforces nothing")
        if ok != 3:
            r.fail(f"a dry-run policy refused a call: {answered}")
        counted = wait_until(
            lambda: (n := would_deny() - before) >= 3 and n,
            timeout=c.timeout + 5,
            interval=0.2,
            what="the ledger's sidecar to count what the dry-run would deny",
        )
        r.add(
            "counted",
            f"the ledger's sidecar counted {counted} connection(s) from the gateway that "
            f"{name!r} would refuse (its /status; the console shows it on the edge)",
        )
        d = load(path).evaluate(Request(gateway, "ledger"))
        r.add("why", d.trace[-1] if d.trace else d.reason)
        r.add(
            "fix",
            f"the rule names {typo.rsplit('/', 1)[1]!r}: enforced, the ledger's sidecar would "
            "refuse the gateway at the handshake (identity_mismatch); `mtlsdemo authz "
            "explain --from gateway --to ledger --authz-policy FILE` says so before you apply it",
        )
