"""A whole mesh on post-quantum identities (issue 26): `mtlsdemo run --key-type
ml-dsa-65` puts the gateway behind its sidecar (grpcio's TLS has no ML-DSA), the
README's client calls go through an MTD/1 sidecar inside the client, and a mesh
started on ECDSA migrates to an ML-DSA CA under steady traffic with no failed call."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import urllib.request
from pathlib import Path

import pytest
from support.docblocks import SAYS, blocks, commands
from support.processes import mtlsdemo, running_mesh, wait_for
from support.traffic import Traffic

pytestmark = pytest.mark.integration

HYBRID = "X25519MLKEM768-AES-256-GCM"
SECTION = "Post-quantum, step 3 and the certificates"


def documented(
    block: int, certs: Path, scratch: str
) -> tuple[list[str], list[tuple[list[str], str]]]:
    """docs/how-to.md's block: the `run` line's flags (without its directories: the
    test's own, on free ports) and every other line as argv with what it says, the
    doc's directory ``scratch`` replaced by ``certs``."""
    lines = commands(blocks(section=SECTION)[block])
    run_line, rest = shlex.split(lines[0][0]), lines[1:]
    assert run_line[:2] == ["mtlsdemo", "run"], run_line
    flags, args = [], iter(run_line[2:])
    for a in args:
        if a in ("--certs-dir", "--data-dir"):
            next(args)
        else:
            flags.append(a)
    steps = []
    for cmd, comment in rest:
        said = SAYS.search(comment)
        assert said, f"{cmd}: no says-comment to check"
        argv = [a.replace(scratch, str(certs)) for a in shlex.split(cmd)]
        steps.append((argv, said.group(1)))
    return flags, steps


def mtlsdemo_cli(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert argv[0] == "mtlsdemo", argv
    return subprocess.run(
        mtlsdemo(*argv[1:]), capture_output=True, text=True, timeout=60, env=env, check=False
    )


def client(env: dict[str, str], certs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mtlsdemo("client", "--identity-dir", str(certs / "cli"), *args),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def status(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
        return json.loads(r.read())


def test_an_ml_dsa_mesh_on_the_hybrid_suite_serves_the_documented_calls(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    flags, steps = documented(1, certs, "pq-certs")
    assert flags == ["--key-type", "ml-dsa-65", "--suites", HYBRID]
    with running_mesh(tmp_path, *flags) as (ports, env):
        log = (tmp_path / "run.log").read_text()
        assert f"MTD/1 (gateway-sidecar) -> 127.0.0.1:{ports['gateway_app']} (gateway)" in log
        assert "MTLSDEMO_TRANSPORT=mtd" in log  # what `run` tells break, tour and client
        # the calls as documented, with no --transport: an ML-DSA identity picks MTD/1
        env = {k: v for k, v in env.items() if k != "MTLSDEMO_TRANSPORT"}
        for argv, said in steps:
            r = mtlsdemo_cli(argv, env)
            assert r.returncode == 0 and said in r.stdout, (argv, r.stdout, r.stderr)
        for args, said in [
            (("open", "bob", "--id", "bob"), "opened bob"),
            (("transfer", "carol", "bob", "12.50"), "carol 27.50 -> bob 12.50"),
            (("balance", "bob"), "bob (bob): 12.50"),
        ]:
            r = client(env, certs, *args)
            assert r.returncode == 0 and said in r.stdout, (args, r.stdout, r.stderr)
        gw = status(ports["gateway_admin"])
        assert gw["certificate"]["key_type"] == "ml-dsa-65"
        edges = {(e["peer"].rsplit("/", 1)[-1], e["role"]): e for e in gw["edges"]}
        cli_edge = edges[("cli", "server")]  # the caller's edge, now MTD/1 too
        assert cli_edge["suite"] == HYBRID and cli_edge["ok"] >= 5 and cli_edge["failed"] == 0
        assert edges[("ledger", "client")]["suite"] == HYBRID
        # a caller the gateway's CA never issued: refused, and told why and by whom
        subprocess.run(
            mtlsdemo(
                "certs", "bootstrap", "--out", str(tmp_path / "evil"), "--key-type", "ml-dsa-65"
            ),
            check=True,
            capture_output=True,
        )
        evil = dict(env)
        r = client(evil, tmp_path / "evil", "balance", "bob")
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert "you refused the gateway: unknown_ca" in r.stderr, r.stderr
        # the ledger's own identity is from the CA, but not allowed to call the gateway
        r = subprocess.run(
            mtlsdemo("client", "--identity-dir", str(certs / "ledger"), "balance", "bob"),
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert r.returncode == 1, r.stderr
        assert "the gateway refused your certificate because your identity is not one it lets" in (
            r.stderr
        )
        assert "(identity_mismatch)" in r.stderr and "Traceback" not in r.stderr
        # break, on this mesh: the foreign CA refused at the ledger, and at the gateway
        r = subprocess.run(
            mtlsdemo("break", "foreign-ca"),
            capture_output=True,
            text=True,
            timeout=300,
            env={**env, "MTLSDEMO_CERTS_DIR": str(certs)},
            check=False,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "== foreign-ca: as described; the mesh is healthy again" in r.stdout
        assert re.search(
            r"gateway +a cli certificate from that CA: the gateway refused your certificate "
            r"because it does not trust the CA that issued it \(unknown_ca\)",
            r.stdout,
        ), r.stdout


def test_run_refuses_ml_dsa_over_native_tls_in_one_line(tmp_path: Path) -> None:
    from support.processes import run_command

    argv, _ = run_command(tmp_path, "--key-type", "ml-dsa-65", "--gateway-transport", "tls")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "native gRPC TLS has no ML-DSA" in r.stderr
    assert not (tmp_path / "certs").exists()  # refused before anything was written


def test_a_whole_mesh_migrates_from_ecdsa_to_ml_dsa_under_traffic(tmp_path: Path) -> None:
    """The migration users will do: start on ECDSA with the gateway behind its sidecar,
    then rotate-ca to an ML-DSA CA while callers keep calling, each call a new MTD/1
    handshake from a new in-process sidecar (a live connection would keep its old
    handshake, as in TLS); every call answers."""
    import grpc
    from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
    from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
    from mtlsdemo.gateway.caller import caller_channel

    certs = tmp_path / "certs"
    flags, stages = documented(2, certs, "mig-certs")
    assert flags == ["--gateway-transport", "mtd"]
    with running_mesh(tmp_path, *flags) as (ports, env):
        gateway = f"127.0.0.1:{ports['gateway']}"

        def call() -> None:
            # a caller reads its own files at connect time, like any client would; the
            # bootstrap's directory lock means it never loads half a rotation's files
            channel = caller_channel(gateway, certs / "cli", "gateway", "mtd")
            with channel:
                try:
                    pb_grpc.GatewayServiceStub(channel).GetBalance(
                        pb.GetBalanceRequest(account_id="nobody"), timeout=10
                    )
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.NOT_FOUND:  # NOT_FOUND: both answered
                        raise AssertionError(f"{e.code().name}: {channel.diagnosis()}") from e

        def reloaded(key_type: str, cas: int) -> bool:
            for port in (ports["gateway_admin"], ports["ledger_admin"]):
                s = status(port)
                if s["certificate"]["key_type"] != key_type:
                    return False
                if len(s["ca_fingerprints_sha256"]) != cas:
                    return False
            return True

        def rotate(stage: int) -> None:
            argv, said = stages[stage]
            assert argv[:3] == ["mtlsdemo", "certs", "rotate-ca"], argv
            r = mtlsdemo_cli(argv, env)
            assert r.returncode == 0 and said in r.stdout, r.stdout + r.stderr

        # a caller that forgot the transport is told which one the port speaks
        plain = {k: v for k, v in env.items() if k != "MTLSDEMO_TRANSPORT"}
        r = client(plain, certs, "balance", "nobody")
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert "answers in MTD/1, not TLS" in r.stderr and "--transport mtd" in r.stderr

        traffic = Traffic(call)
        try:
            wait_for(lambda: traffic.ok >= 5, what="calls through the gateway's MTD/1 edge")
            rotate(0)  # prepare --key-type ml-dsa-65
            wait_for(lambda: reloaded("ecdsa-p256", 2), what="every sidecar trusting both CAs")
            rotate(1)  # switch: the leaves follow the new CA's family
            wait_for(lambda: reloaded("ml-dsa-65", 2), what="every sidecar on ML-DSA leaves")
            n = traffic.ok
            wait_for(lambda: traffic.ok >= n + 5, what="calls on the ML-DSA leaves")
            rotate(2)  # finish
            wait_for(lambda: reloaded("ml-dsa-65", 1), what="every sidecar trusting ML-DSA only")
            n = traffic.ok
            wait_for(lambda: traffic.ok >= n + 5, what="calls after finish")
        finally:
            traffic.stop()
        assert traffic.failures == [], traffic.failures[:5]
        print(f"whole mesh ECDSA -> ML-DSA: {traffic.ok} calls (each a new handshake), 0 failed")
        # a later call needs no flag: the new ML-DSA identity picks MTD/1 by itself
        r = client(plain, certs, "--gateway-addr", gateway, "balance", "nobody")
        assert "NOT_FOUND" in r.stderr, r.stderr


def test_mtd_against_a_native_tls_gateway_says_to_use_tls(tmp_path: Path) -> None:
    with running_mesh(tmp_path) as (_ports, env):
        r = client({**env, "MTLSDEMO_TRANSPORT": "mtd"}, tmp_path / "certs", "balance", "x")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "answers in TLS, not MTD/1" in r.stderr and "--transport tls" in r.stderr
