"""Authorization enforced as `authz explain` says, by real processes: a native gRPC
ledger decides every identity x method exactly as the offline evaluator does (the
simulator is the enforcer); a sidecar refuses a denied peer at the handshake
naming the rule, follows a new policy file, and keeps the old one when the new
one is bad; a dry-run policy changes nothing while its would-deny count rises."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import grpc
import pytest
from mtlsdemo.addresses import free_port
from mtlsdemo.policyfile import load
from mtlsdemo.rpc.credentials import secure_channel
from mtlsdemo.rpc.methods import all_methods, mesh_methods
from mtlsdemo.trust.authz import Request
from support.identities import CLI_ID, GATEWAY_ID, LEDGER_ID
from support.metrics import metric_value
from support.processes import Proc, mtlsdemo, wait_for, wait_healthy
from support.sidecars import Mesh, handshakes, http_get, roundtrip

pytestmark = pytest.mark.integration

POLICY = f"""
policies:
  - name: ledger-callers
    applies_to: [ledger]
    action: ALLOW
    rules:
      - from: [{{ids: ["{GATEWAY_ID}", "{CLI_ID}"]}}]
  - name: cli-reads-only
    applies_to: [ledger]
    action: DENY
    rules:
      - from: [{{ids: ["{CLI_ID}"]}}]
        to: [{{methods: [Transfer, Deposit, CreateAccount]}}]
  - name: gateway-never-lists
    applies_to: [ledger]
    action: DENY
    mode: dry-run
    rules:
      - from: [{{ids: ["{GATEWAY_ID}"]}}]
        to: [{{methods: [ListTransfers]}}]
"""


def call(channel: grpc.Channel, method: str) -> grpc.StatusCode:
    """One call with an empty request: PERMISSION_DENIED, or whatever the service
    answers once allowed (OK, INVALID_ARGUMENT, NOT_FOUND; a stream: its deadline)."""
    streaming = method.endswith(("/WatchTransfers", "/ListTransfers"))
    try:
        if streaming:
            for _ in channel.unary_stream(method)(b"", timeout=1.5):
                break
        else:
            channel.unary_unary(method)(b"", timeout=5)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def test_a_native_ledger_decides_every_call_as_authz_explain_does(tmp_path, certs) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    port, metrics = free_port(), free_port()
    ledger = Proc(
        "ledger",
        mtlsdemo(
            "serve", "ledger",
            "--listen", f"127.0.0.1:{port}",
            "--identity-dir", str(certs / "ledger"),
            "--allow-id", "spiffe://mtls-demo.local/ns/default/sa/*",
            "--authz-policy", str(policy),
            "--db", str(tmp_path / "ledger.db"),
            "--metrics-listen", f"127.0.0.1:{metrics}",
        ),
        tmp_path / "ledger.log",
    ).start()  # fmt: skip
    try:
        wait_healthy(f"127.0.0.1:{port}", certs / "cli", "ledger", ledger)
        offline = load(policy, all_methods())
        seen = {}
        for name, who in (("gateway", GATEWAY_ID), ("cli", CLI_ID)):
            with secure_channel(f"127.0.0.1:{port}", _material(certs / name), "ledger") as ch:
                for method in mesh_methods()["ledger"]:
                    code = call(ch, method)
                    expected = offline.evaluate(Request(who, "ledger", method))
                    assert (code != grpc.StatusCode.PERMISSION_DENIED) == expected.allowed, (
                        name,
                        method,
                        code,
                        expected.reason,
                    )
                    seen[(name, method.rsplit("/", 1)[-1])] = code
        assert seen[("cli", "Transfer")] == grpc.StatusCode.PERMISSION_DENIED
        assert seen[("cli", "GetAccount")] != grpc.StatusCode.PERMISSION_DENIED
        # the dry-run policy changed nothing, and counted what it would have denied
        assert seen[("gateway", "ListTransfers")] != grpc.StatusCode.PERMISSION_DENIED
        text = http_get(metrics, "/metrics")[1].decode()
        assert (
            metric_value(
                text,
                "mtls_authz_decisions_total",
                enforcer="grpc",
                decision="would_deny",
                rule="gateway-never-lists#1",
            )
            >= 1
        )
        # the CLI's word for the same call, and the caller's one line naming the rule
        r = subprocess.run(
            mtlsdemo(
                "authz", "explain", "--from", "cli", "--to", "ledger/Transfer",
                "--authz-policy", str(policy), "--certs-dir", str(certs),
            ),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 1, r.stdout + r.stderr
        assert "L4  the connection" in r.stdout and "ALLOWED" in r.stdout
        assert "denied by DENY policy 'cli-reads-only' rule 1" in r.stdout
        assert "(the handshake succeeds; the call is refused PERMISSION_DENIED)" in r.stdout
    finally:
        ledger.stop()


def _material(d: Path):
    from mtlsdemo.pki.material import IdentitySource

    return IdentitySource(d).current


def _last_failure(mesh: Mesh) -> dict:
    docs = json.loads(http_get(mesh.server.admin, "/handshakes")[1])
    return next(d for d in docs["handshakes"] if d["outcome"] != "success")


def test_a_sidecar_refuses_at_the_handshake_naming_the_rule_and_follows_the_file(
    tmp_path, certs, echo
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "policies:\n  - name: only-cli\n    applies_to: [ledger]\n    rules:\n"
        f"      - from: [{{ids: ['{CLI_ID}']}}]\n"
    )
    mesh = Mesh(
        tmp_path,
        certs,
        echo.port,
        allow="spiffe://mtls-demo.local/ns/default/sa/*",
        server_args=("--authz-policy", str(policy)),
    )
    try:
        with pytest.raises(OSError):
            if roundtrip(mesh.route, b"hello") != b"hello":
                raise OSError("refused")
        wait_for(
            lambda: handshakes(mesh.server, reason="identity_mismatch", origin="local") >= 1,
            what="the ledger's sidecar refusing the gateway",
        )
        failed = _last_failure(mesh)
        assert "no rule of the ALLOW policies 'only-cli' matches" in failed["detail"]
        # a bad new file is refused by line, the old policy keeps deciding
        policy.write_text("policies:\n  - name: x\n    acton: ALLOW\n")
        wait_for(
            lambda: (mesh.server.status()["authz_policy"] or {}).get("last_error"),
            what="the bad policy refused",
        )
        assert (
            "policy.yaml:3: unknown field 'acton'"
            in mesh.server.status()["authz_policy"]["last_error"]
        )
        # a good new file applies to the next handshake, without a restart
        policy.write_text(
            "policies:\n  - name: gateway-too\n    applies_to: [ledger]\n    rules:\n"
            f"      - from: [{{ids: ['{GATEWAY_ID}']}}]\n"
        )
        wait_for(lambda: roundtrip(mesh.route, b"hello") == b"hello", what="the new policy")
        # a dry-run DENY changes nothing: the tunnel still works, and the sidecar's
        # /status counts what it would have refused, by peer and rule (the console's edge)
        policy.write_text(
            "policies:\n  - name: gateway-too\n    applies_to: [ledger]\n    rules:\n"
            f"      - from: [{{ids: ['{GATEWAY_ID}']}}]\n"
            "  - name: lock-out-try\n    applies_to: [ledger]\n    action: DENY\n"
            f"    mode: dry-run\n    rules:\n      - from: [{{ids: ['{GATEWAY_ID}']}}]\n"
        )

        def counted() -> list:
            assert roundtrip(mesh.route, b"hello") == b"hello"  # never refused
            return mesh.server.status()["authz_policy"]["would_deny"]

        (seen,) = wait_for(counted, what="the dry-run's would-deny count")
        assert (seen["peer"], seen["rule"]) == (GATEWAY_ID, "lock-out-try#1")
        assert seen["count"] >= 1
    finally:
        mesh.stop()


def test_the_how_to_block_runs_as_written() -> None:
    """docs/how-to.md "Try an authorization policy before applying it", line by line
    from the clone's root, each printing what its comment says."""
    import os
    import sys

    from support.docblocks import ROOT, SAYS, blocks, commands

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    (block,) = blocks(section="Try an authorization policy before applying it")
    ran = 0
    for cmd, comment in commands(block):
        r = subprocess.run(
            ["bash", "-c", cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert r.returncode in (0, 1) and not r.stderr, f"{cmd}: {r.stdout}{r.stderr}"
        said = SAYS.search(comment)
        assert said and said.group(1) in r.stdout, f"{cmd}: {comment}: {r.stdout}"
        ran += 1
    assert ran == 3


def test_run_with_a_policy_enforces_the_matrix_authz_prints(tmp_path) -> None:
    """`mtlsdemo run --authz-policy` (sidecar mode): every identity x every method of
    the ledger (through its sidecar, MTD/1) and of the gateway (native TLS) ends as
    the offline evaluator says — refused at the handshake where L4 denies, with
    PERMISSION_DENIED where only the call is denied, served otherwise. Behind the
    ledger's sidecar the plaintext ledger learns who calls from the sidecar."""
    from mtlsdemo.gateway.caller import mtd_channel
    from mtlsdemo.policyfile import load as load_policy
    from support.processes import running_mesh

    example = Path(__file__).resolve().parents[2] / "deploy/authz/example-policy.yaml"
    policy = tmp_path / "policy.yaml"
    policy.write_text(example.read_text())
    with running_mesh(tmp_path, "--authz-policy", str(policy), "--console-port", "0") as (
        ports,
        _env,
    ):
        certs = tmp_path / "certs"
        offline = load_policy(policy, all_methods())
        checked = 0
        for name in ("cli", "gateway", "ledger"):
            who = str(_material(certs / name).identity)
            targets = [
                ("ledger", mtd_channel(f"127.0.0.1:{ports['ledger']}", certs / name, "ledger")),
                (
                    "gateway",
                    secure_channel(
                        f"127.0.0.1:{ports['gateway']}", _material(certs / name), "gateway"
                    ),
                ),
            ]
            for workload, ch in targets:
                try:
                    l4 = offline.evaluate(Request(who, workload))
                    for method in mesh_methods()[workload]:
                        l7 = offline.evaluate(Request(who, workload, method))
                        code = call(ch, method)
                        if workload == "ledger" and not l4.allowed:
                            assert code == grpc.StatusCode.UNAVAILABLE, (name, method, code)
                        elif not l7.allowed:
                            assert code == grpc.StatusCode.PERMISSION_DENIED, (name, method, code)
                        else:
                            assert code not in (
                                grpc.StatusCode.PERMISSION_DENIED,
                                grpc.StatusCode.UNAVAILABLE,
                            ), (name, method, code, l7.reason)
                        checked += 1
                finally:
                    ch.close()
        assert checked == 3 * sum(len(m) for m in mesh_methods().values())


def random_policy(rng, ids: dict[str, str], methods: list[str]) -> str:
    """A policy file of 1-4 policies, each ALLOW/DENY/dry-run over random principals
    (ours or not) and random methods, for the ledger or the whole mesh."""
    lines = ["policies:"]
    for i in range(rng.randint(1, 4)):
        who = rng.sample(sorted(ids.values()), rng.randint(0, 2))
        to = rng.sample(methods, rng.randint(0, 2))
        rule = ([f"from: [{{ids: {who}}}]"] if who else []) + (
            [f"to: [{{methods: {to}}}]"] if to else []
        )
        lines += [
            f"  - name: p{i}",
            f"    action: {rng.choice(['ALLOW', 'DENY'])}",
            *(["    applies_to: [ledger]"] if rng.random() < 0.7 else []),
            *(["    mode: dry-run"] if rng.random() < 0.2 else []),
            f"    rules: [{{{', '.join(rule)}}}]" if rng.random() < 0.9 else "    rules: []",
        ]
    return "\n".join(lines).replace("'", '"') + "\n"


def test_random_policies_are_enforced_live_exactly_as_evaluated_offline(
    tmp_path, certs, echo
) -> None:
    """The simulator is the enforcer: 12 random policies (a fixed seed), each written
    over the file a live native ledger (per call, L7) and a live sidecar (per
    connection, L4) follow; every identity x unary method, and every identity's
    handshake, ends as the offline evaluator says."""
    import random

    from mtlsdemo.endpoint.dial import handshake
    from mtlsdemo.endpoint.identity import identity_config

    policy = tmp_path / "policy.yaml"
    policy.write_text("policies: []\n")
    port = free_port()
    ledger = Proc(
        "ledger",
        mtlsdemo(
            "serve", "ledger", "--listen", f"127.0.0.1:{port}",
            "--identity-dir", str(certs / "ledger"),
            "--allow-id", "spiffe://mtls-demo.local/ns/default/sa/*",  # the policy decides
            "--authz-policy", str(policy), "--db", str(tmp_path / "ledger.db"),
        ),
        tmp_path / "ledger.log",
    ).start()  # fmt: skip
    mesh = Mesh(
        tmp_path / "mesh", certs, echo.port,
        allow="spiffe://mtls-demo.local/ns/default/sa/*",
        server_args=("--authz-policy", str(policy)),
    )  # fmt: skip
    ids = {"gateway": GATEWAY_ID, "cli": CLI_ID, "ledger": LEDGER_ID}
    unary = [
        m for m in mesh_methods()["ledger"] if not m.endswith(("/WatchTransfers", "/ListTransfers"))
    ]
    short = sorted({m.rsplit("/", 1)[-1] for m in unary})
    rng = random.Random(20261208)
    seen: set[tuple[str, bool]] = set()
    try:
        wait_healthy(f"127.0.0.1:{port}", certs / "cli", "ledger", ledger)
        channels = {
            n: secure_channel(f"127.0.0.1:{port}", _material(certs / n), "ledger")
            for n in ("gateway", "cli")
        }
        for k in range(12):
            text = random_policy(rng, ids, short)
            fresh = policy.with_name(".policy.yaml.new")
            fresh.write_text(text)
            fresh.rename(policy)  # a new file each time, as an editor saves
            offline = load(policy, all_methods())
            names = [p.name for p in offline.policies]
            wait_for(
                lambda names=names: (
                    (mesh.server.status()["authz_policy"] or {}).get("policies") == names
                ),
                what=f"the sidecar to follow policy {k}",
            )
            for n, ch in channels.items():
                for method in unary:
                    code = call(ch, method)
                    want = offline.evaluate(Request(ids[n], "ledger", method)).allowed
                    assert (code != grpc.StatusCode.PERMISSION_DENIED) == want, (
                        k,
                        text,
                        n,
                        method,
                        code,
                    )
                    seen.add(("L7", want))
                cfg = identity_config(certs / n, peer_ids=(LEDGER_ID,))
                attempt = handshake("127.0.0.1", mesh.inbound, cfg)
                attempt.close()
                want = offline.evaluate(Request(ids[n], "ledger")).allowed
                assert (attempt.error is None) == want, (k, text, n, attempt.error)
                seen.add(("L4", want))
        # the policies drawn allowed and denied at both layers: the test compared both
        assert seen == {("L7", True), ("L7", False), ("L4", True), ("L4", False)}, seen
        for ch in channels.values():
            ch.close()
    finally:
        mesh.stop()
        ledger.stop()
