"""`mtlsdemo break` against a real `mtlsdemo run`: every scenario happens as its
summary says (who refused whom, the reason, the counts on both sides) and the
mesh is healthy afterwards; `--restore` heals what an interrupted one left."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.processes import mtlsdemo, running_mesh

pytestmark = pytest.mark.integration

EXPECT = {
    "foreign-ca": [
        "the ledger's sidecar refused the impostor: unknown_ca",
        'reason="unknown_ca",origin="local"} +1',
        "native    a cli certificate from that CA: the gateway refused your certificate because it does not trust the CA that issued it (unknown_ca)",
    ],
    "expired": [
        "refused the old gateway: certificate_expired",
        "native    an expired cli certificate: the gateway refused your certificate because it has expired (certificate_expired)",
    ],
    "not-yet-valid": ["refused the early gateway: certificate_not_yet_valid"],
    "wrong-identity": [
        "refused the intruder: identity_mismatch",
        "native    the ledger's own certificate calling the gateway: PERMISSION_DENIED",
    ],
    "wrong-server-name": [
        "the gateway refused the ledger's sidecar: identity_mismatch",
        'reason="identity_mismatch",origin="remote_unverified"} +1',
        "you refused the gateway: identity_mismatch",
    ],
    "tamper": ["decrypt_error", 'mtls_record_failures_total{reason="decrypt_error"}'],
    "downgrade": [
        "the gateway refused the ledger's sidecar: bad_signature",
        'reason="bad_signature",origin="remote_unverified"} +1',
    ],
    "no-common-suite": [
        "the ledger refused the gateway: no_common_suite — none of the client's suites",
        "client: X25519MLKEM768-AES-256-GCM, X25519MLKEM768-CHACHA20-POLY1305; server: ECDHE",
        "in clear (remote_unverified), at the hello",
        "offer both while migrating",
    ],
    "clock-skew": ["the skewed gateway refused the ledger's sidecar: certificate_expired"],
    "slow-handshake": ["it sent alert 75 (handshake_timeout) and closed"],
    "revoked": [
        "the ledger's sidecar refused the gateway's: certificate_revoked",
        'gateway-sidecar: mtls_handshakes_total{role="client",reason="certificate_revoked",origin="remote_unverified"} +1',
        "native    a revoked cli certificate calling the gateway: PERMISSION_DENIED",
        "restore   gateway    issued",
    ],
    "stale-status": [
        "the ledger's sidecar refused the gateway's: status_stale",
        'reason="status_stale",origin="remote_unverified"} +1',
    ],
    "authz-deny-method": [
        "balance   GetBalance as the cli: answered",
        "result    Transfer as the cli: PERMISSION_DENIED — ",
        "denied by DENY policy 'no-transfers-for-cli' rule 1",
        'decision="deny",rule="no-transfers-for-cli#1"} +1',
        "empty again: the --allow-id lists decide alone",
    ],
    "authz-empty-allow": [
        "the ledger's sidecar refused the gateway's: identity_mismatch — ",
        "ALLOW policy 'nobody-yet' has no rules, so it allows nothing",
        'ledger-sidecar: mtls_handshakes_total{role="server",reason="identity_mismatch",origin="local"} +1',
    ],
    "authz-dry-run": [
        "result    3 of 3 answered: a dry-run policy enforces nothing",
        "from the gateway that 'ledger-callers-v2' would refuse",
        "no rule of the ALLOW policies 'ledger-callers-v2' matches",
    ],
}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    root = tmp_path_factory.mktemp("break")
    with running_mesh(root) as (ports, _env):
        yield root, mesh_flags(root, ports)


def mesh_flags(root: Path, ports: dict[str, int]) -> list[str]:
    """`break`'s flags for a `running_mesh` on these ports (its agent's too)."""
    return [
        "--certs-dir", str(root / "certs"),
        "--ledger-sidecar", f"127.0.0.1:{ports['ledger']}",
        "--gateway-addr", f"127.0.0.1:{ports['gateway']}",
        "--gateway-admin", f"127.0.0.1:{ports['gateway_admin']}",
        "--ledger-admin", f"127.0.0.1:{ports['ledger_admin']}",
        "--gateway-route", f"127.0.0.1:{ports['route']}",
        "--gateway-metrics", f"127.0.0.1:{ports['gateway_metrics']}",
        "--agent-admin", f"127.0.0.1:{ports['agent_admin']}",
    ]  # fmt: skip


def brk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(mtlsdemo("break", *args), capture_output=True, text=True, timeout=300)


def as_described(name: str, flags: list[str], needles: tuple[str, ...]) -> None:
    """`break NAME` ran, succeeded and said each of ``needles``."""
    r = brk(name, *flags)
    assert r.returncode == 0, r.stdout + r.stderr
    for needle in needles:
        assert needle in r.stdout, (needle, r.stdout)


def test_every_scenario_happens_as_described_and_heals(mesh) -> None:
    _root, flags = mesh
    r = brk("--all", *flags)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "Traceback" not in r.stderr and "WARNING" not in r.stderr, r.stderr
    for name, needles in EXPECT.items():
        section = out.split(f"== break {name}\n", 1)[1].split("== break ", 1)[0]
        assert f"== {name}: as described; the mesh is healthy again" in section, section
        assert "   healthy   a call through gateway -> ledger answered" in section
        for needle in needles:
            assert needle in section, (name, needle, section)
    # a scenario for another kind of mesh is said, not run, and fails nothing
    section = out.split("== break ca-down\n", 1)[1].split("== break ", 1)[0]
    assert "skipped   not on this mesh: it stops the Workload API agent's CA" in section
    assert "== ca-down: not on this mesh (said why)" in section
    assert "== alias: not on this mesh (said why)" in out


def test_restore_heals_what_an_interrupted_scenario_left(mesh) -> None:
    root, flags = mesh
    certs = root / "certs"
    r = subprocess.run(
        mtlsdemo("certs", "revoke", "gateway", "--out", str(certs)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    (policy,) = root.rglob("authz-policy.yaml")  # `run`'s, for the authz scenarios
    empty = policy.read_text()
    policy.write_text(empty.splitlines()[0] + "\npolicies:\n  - {name: left, action: DENY}\n")
    r = brk("--restore", *flags)
    assert r.returncode == 0 and "restored: gateway    issued" in r.stdout, r.stdout + r.stderr
    assert "the scenario's policy removed" in r.stdout and policy.read_text() == empty
    r = brk("foreign-ca", *flags)  # and the mesh works: the scenario ends "healthy"
    assert r.returncode == 0 and "foreign-ca: as described" in r.stdout, r.stdout + r.stderr


def test_break_without_a_mesh_or_with_an_unknown_scenario_is_one_line(tmp_path: Path) -> None:
    for args, said in (
        (
            ["tamper", "--ledger-admin", "127.0.0.1:1", "--gateway-admin", "127.0.0.1:1"],
            "no sidecar mesh at",
        ),
        (["nosuch"], "unknown scenario 'nosuch'"),
        ([], "name a scenario"),
    ):
        r = brk(*args)
        assert r.returncode == 2 and said in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


FAKE_DOCKER = """#!/bin/sh
# stands in for docker and docker-compose: no container of any project is running
[ "$1" = inspect ] && exit 1
exit 0
"""


def test_break_and_tour_on_compose_without_a_compose_mesh_are_one_line(tmp_path: Path) -> None:
    """`--compose PROJECT` runs the command in the project's breaker container; without
    docker, without the compose file or without the project running: one line each."""
    import os
    import sys

    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("docker", "docker-compose"):
        (tools / name).write_text(FAKE_DOCKER)
        (tools / name).chmod(0o755)
    compose_file = tmp_path / "docker-compose.yml"
    compose_file.write_text("services: {}\n")
    bare = str(Path(sys.executable).parent)  # python only: no docker on this PATH
    for command, path, file, said in (
        ("break", bare, compose_file, "break --compose: needs docker and docker-compose"),
        ("tour", f"{tools}:{bare}", tmp_path / "none.yml", "tour --compose: no compose file at"),
        ("break", f"{tools}:{bare}", compose_file, "no running compose mesh in project 'nosuch'"),
    ):
        args = ["foreign-ca"] if command == "break" else []
        r = subprocess.run(
            mtlsdemo(command, *args, "--compose", "nosuch", "--compose-file", str(file)),
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "PATH": path},
        )  # fmt: skip
        assert r.returncode == 2 and said in r.stderr, (command, r.stderr)
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_ca_down_on_a_workload_api_mesh_spends_the_svids_then_heals(tmp_path: Path) -> None:
    """`break ca-down` on `run --workload-api --svid-ttl 20s`: the agent cannot renew,
    calls keep working on the SVIDs in hand, the first new handshake after one
    expires is refused certificate_expired by name, and new SVIDs heal the mesh."""
    with running_mesh(tmp_path, "--workload-api", "--svid-ttl", "20s", "--console-port", "0") as (
        ports,
        _env,
    ):
        flags = mesh_flags(tmp_path, ports)
        as_described(
            "ca-down",
            flags,
            (
                "setup     the CA's key taken away",
                "SVID failed:",
                "the SVID in hand keeps serving",
                "meanwhile a call through the gateway answered",
                "refused its peer: certificate_expired — certificate CN=",
                'reason="certificate_expired",origin="local"} +1',
                "heal      the CA's key back",
                "== ca-down: as described; the mesh is healthy again",
            ),
        )
        assert (tmp_path / "certs" / "ca" / "ca.key").exists()
        # a scenario that edits identity files says why it does not apply here
        r = brk("revoked", *flags)
        assert r.returncode == 2 and "break revoked: not on this mesh" in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_alias_on_two_federated_domains_is_refused_where_an_alias_would_accept(
    tmp_path: Path,
) -> None:
    """`break alias` on `run --domains 2`: domain B's CA signs a certificate for domain
    A's gateway; B's ledger refuses it unknown_ca (A's names verify against A's bundle
    only), and the same certificate verifies against a merged (alias) bundle."""
    with running_mesh(tmp_path, "--domains", "2", "--console-port", "0") as (ports, _env):
        flags = mesh_flags(tmp_path, ports)
        as_described(
            "alias",
            flags,
            (
                "issues a certificate for spiffe://mtls-demo.local/ns/default/sa/gateway",
                "the ledger's sidecar refused the forged gateway: unknown_ca",
                "is not in trust domain mtls-demo.local's bundle",
                'ledger-sidecar: mtls_handshakes_total{role="server",reason="unknown_ca",origin="local"} +1',
                "alias     side by side: a ledger that merged mtls-demo.local's root",
                "verifies the same certificate as spiffe://mtls-demo.local/ns/default/sa/gateway",
                "== alias: as described; the mesh is healthy again",
            ),
        )
        r = brk("tamper", *flags)  # one-domain scenarios say where to go instead
        assert r.returncode == 2 and "here try `break alias`" in r.stderr, r.stderr
        # the bundle for B missing: unknown_ca naming B on the gateway, the alert at the
        # ledger; B's bundle from its endpoint heals it
        as_described(
            "bundle-missing",
            flags,
            (
                "the gateway refused the ledger's sidecar: unknown_ca — no trust bundle for trust "
                "domain b.mtls-demo.local (ours: mtls-demo.local; federated with: none)",
                'ledger-sidecar: mtls_handshakes_total{role="server",reason="unknown_ca",'
                'origin="remote_unverified"} +1',
                "heal      b.mtls-demo.local's bundle as its endpoint serves it (1 CA",
                "== bundle-missing: as described; the mesh is healthy again",
            ),
        )
        # B rolls its CA over under the running mesh: the refreshed gateway keeps every
        # tunnel, a stale copy refuses the new SVID; B ends finished (runnable again)
        as_described(
            "stale-bundle",
            flags,
            (
                "the mesh's gateway holds both (its agent re-fetched http://127.0.0.1:",
                "refreshed the mesh's gateway: 5 new tunnels after the switch, 5 answered",
                "the stale gateway refused the ledger's sidecar: unknown_ca — issuer",
                "is not in trust domain b.mtls-demo.local's bundle",
                "heal      the bundle re-fetched from http://127.0.0.1:",
                "b.mtls-demo.local finishes: the old CA retired",
                "== stale-bundle: as described; the mesh is healthy again",
            ),
        )
        assert not (tmp_path / "certs" / "domain-b" / "ca" / "rollover.json").exists()
