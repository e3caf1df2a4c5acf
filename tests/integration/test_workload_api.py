"""The SPIFFE Workload API served by `mtlsdemo agent`: a real client nobody here
wrote (py-spiffe) fetches and follows SVIDs from it, and two sidecars take their
identities from it through several rotations without a failed call or a restart."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mtlsdemo._generated.spiffe import workload_pb2 as pb
from mtlsdemo._generated.spiffe import workload_pb2_grpc as pb_grpc
from mtlsdemo.addresses import free_port
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.rpc.credentials import secure_channel
from support.agents import AgentProc
from support.apps import EchoServer
from support.identities import GATEWAY_ID, LEDGER_ID
from support.processes import mtlsdemo, run_command, running_mesh, wait_for
from support.sidecars import Mesh, http_get, roundtrip

pytestmark = pytest.mark.integration

# py-spiffe runs in its own process: its generated workload.proto and ours define
# the same package-less messages, and one protobuf pool takes each name once
PY_SPIFFE = textwrap.dedent(
    """
    import json, sys, threading
    from cryptography.hazmat.primitives import hashes, serialization
    from spiffe import TrustDomain, WorkloadApiClient

    client = WorkloadApiClient(socket_path=sys.argv[1])
    ctx = client.fetch_x509_context(timeout=10)
    svid = ctx.default_svid
    pub = lambda k: k.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    out = {
        "spiffe_id": str(svid.spiffe_id),
        "serial": format(svid.leaf.serial_number, "x"),
        "not_after": svid.leaf.not_valid_after_utc.timestamp(),
        "key_is_the_leafs": pub(svid.private_key.public_key()) == pub(svid.leaf.public_key()),
    }
    bundles = client.fetch_x509_bundles(timeout=10)
    bundle = bundles.get_bundle_for_trust_domain(TrustDomain("mtls-demo.local"))
    out["bundle"] = sorted(c.fingerprint(hashes.SHA256()).hex() for c in bundle.x509_authorities)
    seen, done = [], threading.Event()
    def on_success(c):
        seen.append(format(c.default_svid.leaf.serial_number, "x"))
        if len(set(seen)) >= 3:
            done.set()
    errors = []
    cancel = client.stream_x509_contexts(on_success, lambda e: errors.append(str(e)))
    out["rotated"] = done.wait(60)
    cancel.cancel()
    out["stream"], out["errors"] = seen, errors
    client.close()
    print(json.dumps(out))
    """
)


def test_py_spiffe_fetches_svid_and_bundle_and_follows_rotations(tmp_path, certs) -> None:
    agent = AgentProc(tmp_path, certs, "10s")
    try:
        run = subprocess.run(
            [sys.executable, "-c", PY_SPIFFE, agent.address("gateway")],
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert run.returncode == 0, run.stderr
        got = json.loads(run.stdout)
        assert got["spiffe_id"] == GATEWAY_ID
        assert got["key_is_the_leafs"]
        ca = x509.load_pem_x509_certificate((certs / "ca" / "ca.crt").read_bytes())
        assert got["bundle"] == [ca.fingerprint(hashes.SHA256()).hex()]
        # the stream's first message is the SVID in hand, then each renewal is pushed
        assert got["rotated"], got
        assert len(set(got["stream"])) >= 3 and got["errors"] == []
        status = agent.status()["workloads"]["gateway"]
        assert status["renewals"] >= 2 and status["failures"] == 0
        assert set(got["stream"]) <= {h["serial"] for h in status["history"]}
        # the lifetime asked for, renewed at half of it (minus jitter) before expiry
        first = status["history"][0]
        assert 9 <= first["not_after"] - first["issued_at"] <= 10.5
    finally:
        agent.stop()


def test_a_call_without_the_security_header_is_refused_and_jwt_is_unimplemented(
    tmp_path, certs
) -> None:
    agent = AgentProc(tmp_path, certs, "1h", "ledger")
    try:
        with grpc.insecure_channel(f"unix:{agent.socket('ledger')}") as ch:
            stub = pb_grpc.SpiffeWorkloadAPIStub(ch)
            with pytest.raises(grpc.RpcError) as e:
                next(iter(stub.FetchX509SVID(pb.X509SVIDRequest(), timeout=10)))
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "workload.spiffe.io" in e.value.details()
            md = [("workload.spiffe.io", "true")]
            with pytest.raises(grpc.RpcError) as e:
                stub.FetchJWTSVID(pb.JWTSVIDRequest(audience=["x"]), metadata=md, timeout=10)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
            first = next(iter(stub.FetchX509SVID(pb.X509SVIDRequest(), metadata=md, timeout=10)))
            assert [s.spiffe_id for s in first.svids] == [LEDGER_ID]
            # the CA's CRL travels with the SVID (the Workload API's crl field)
            crl = x509.load_pem_x509_crl((certs / "ca" / "crl.pem").read_bytes())
            assert [x509.load_der_x509_crl(c).issuer for c in first.crl] == [crl.issuer]
        # the socket's directory is the workload's alone
        assert agent.socket("ledger").parent.stat().st_mode & 0o777 == 0o700
    finally:
        agent.stop()


def test_a_second_agent_on_the_same_sockets_is_refused_and_the_first_keeps_serving(
    tmp_path, certs
) -> None:
    agent = AgentProc(tmp_path, certs, "1h", "gateway")
    try:
        second = subprocess.run(
            mtlsdemo(
                "agent",
                "--certs-dir",
                str(certs),
                "--socket-dir",
                str(agent.sockets),
                "--workload",
                "gateway",
                "--admin-listen",
                "off",
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        assert (
            second.stderr.strip()
            .splitlines()[-1]
            .startswith(
                f"error: --socket-dir: {agent.socket('gateway')} is served by another running agent"
            )
        )
        assert "Traceback" not in second.stderr
        assert agent.socket("gateway").exists() and agent.status()["workloads"]["gateway"]
    finally:
        agent.stop()


def test_sidecars_on_workload_api_identities_serve_through_three_rotations_without_restart(
    tmp_path, certs
) -> None:
    agent = AgentProc(tmp_path, certs, "10s")
    echo = EchoServer()
    mesh = None
    try:
        mesh = Mesh(
            tmp_path / "mesh",
            certs,
            echo.port,
            server_args=("--spiffe-endpoint-socket", agent.address("ledger")),
            client_args=("--spiffe-endpoint-socket", agent.address("gateway")),
        )
        pids = (mesh.client.proc.proc.pid, mesh.server.proc.proc.pid)
        start = mesh.client.status()["certificate"]["serial"]
        served, failed = [0], []
        stop = threading.Event()

        def calls() -> None:
            while not stop.is_set():
                payload = f"call {served[0]}".encode()
                try:
                    assert roundtrip(mesh.route, payload) == payload
                    served[0] += 1
                except (OSError, AssertionError) as e:
                    failed.append(repr(e))
                stop.wait(0.02)  # a steady call rate (pacing, not waiting on an outcome)

        worker = threading.Thread(target=calls, daemon=True)
        worker.start()
        wait_for(
            lambda: (
                agent.status()["workloads"]["ledger"]["renewals"] >= 3
                and mesh.server.status()["certificate"]["serial"]
                == agent.status()["workloads"]["ledger"]["serial"]
            ),
            timeout=60,
            what="three rotations of the ledger's SVID taken by its sidecar",
        )
        stop.set()
        worker.join(15)
        assert failed == [] and served[0] > 50
        assert mesh.client.status()["certificate"]["serial"] != start
        assert mesh.server.status()["identity_source"] == {"workload_api": agent.address("ledger")}
        assert (mesh.client.proc.proc.pid, mesh.server.proc.proc.pid) == pids
        assert mesh.client.proc.alive() and mesh.server.proc.alive()
        log = Path(tmp_path / "mesh" / "server-sidecar.log").read_text()
        assert "STATUS CHECKS OFF" in log  # the weakening is said where it is turned on
    finally:
        if mesh is not None:
            mesh.stop()
        echo.close()
        agent.stop()


def _gateway_serial(port: int, cli: Path) -> str:
    """The serial of the certificate the gateway presents to a new TLS connection."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(cli / "ca.crt"))
    ctx.load_cert_chain(str(cli / "tls.crt"), str(cli / "tls.key"))
    ctx.check_hostname = False
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return f"{x509.load_der_x509_certificate(der).serial_number:x}"


def _healthy(channel: grpc.Channel) -> bool:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def test_run_workload_api_keeps_calls_flowing_through_three_rotations_without_restarts(
    tmp_path,
) -> None:
    """`mtlsdemo run --workload-api --svid-ttl 10s`: new connections keep coming, each
    a new handshake (native TLS to the gateway, MTD/1 between the sidecars) with the
    SVIDs in force; none fails and no process restarts while both SVIDs rotate."""
    with running_mesh(tmp_path, "--workload-api", "--svid-ttl", "10s", "--console-port", "0") as (
        ports,
        _env,
    ):
        log = (tmp_path / "run.log").read_text()
        assert "STATUS CHECKS OFF between the sidecars" in log
        cli = tmp_path / "certs" / "cli"
        admins = (ports["gateway_admin"], ports["ledger_admin"])
        instances = [json.loads(http_get(p, "/certificates")[1])["instance"] for p in admins]
        agent = lambda: json.loads(http_get(ports["agent_admin"], "/status")[1])  # noqa: E731
        start = agent()["workloads"]
        calls, failures, serials = 0, [], set()

        def flowing() -> bool:
            nonlocal calls
            try:
                serials.add(_gateway_serial(ports["gateway"], cli))
                with secure_channel(f"127.0.0.1:{ports['gateway']}", cli, "gateway") as ch:
                    assert _healthy(ch)  # a new TLS connection: the gateway's SVID now
                with grpc.insecure_channel(f"127.0.0.1:{ports['route']}") as ch:
                    assert _healthy(ch)  # a new MTD/1 tunnel: both sidecars' SVIDs now
                calls += 1
            except (OSError, grpc.RpcError, AssertionError) as e:
                failures.append(repr(e))
            now = agent()["workloads"]
            taken = {  # what each sidecar serves now: the agent's newest SVID, once taken
                w: json.loads(http_get(p, "/status")[1])["certificate"]["serial"]
                for w, p in zip(("gateway", "ledger"), admins, strict=True)
            }
            return all(
                now[w]["renewals"] >= start[w]["renewals"] + 3 and taken[w] == now[w]["serial"]
                for w in now
            )

        wait_for(flowing, timeout=90, what="three rotations of both SVIDs", interval=0.05)
        assert failures == [] and calls > 20
        assert len(serials) >= 3  # the gateway presented three SVIDs, one after another
        for port in admins:
            st = json.loads(http_get(port, "/status")[1])
            assert st["certificate"]["reload_generation"] >= 3
            assert st["require_status"] == "off"
            assert st["edges"] and all(e["failed"] == 0 for e in st["edges"])
        assert [
            json.loads(http_get(p, "/certificates")[1])["instance"] for p in admins
        ] == instances
        assert "exited" not in (tmp_path / "run.log").read_text()


A, B = "a.mtls-demo.local", "b.mtls-demo.local"
GATEWAY_A, LEDGER_B = f"spiffe://{A}/ns/default/sa/gateway", f"spiffe://{B}/ns/default/sa/ledger"


@contextlib.contextmanager
def two_domains(
    tmp_path: Path,
    a_reads_b: Callable[[int], str],
    before_a: Callable[[int], object] | None = None,
) -> Iterator[tuple[AgentProc, AgentProc, Mesh]]:
    """Domain A (the gateway, its own CA and agent) and domain B (the ledger, its own);
    B's agent federated with A's bundle endpoint, A's with ``a_reads_b(B's admin port)``
    (``before_a`` runs first); the two sidecars, once B's holds A's bundle."""
    certs_a, certs_b = tmp_path / "certs-a", tmp_path / "certs-b"
    bootstrap(BootstrapRequest(out=certs_a, services=("gateway",), trust_domain=A))
    bootstrap(BootstrapRequest(out=certs_b, services=("ledger",), trust_domain=B))
    admin_a, admin_b = free_port(), free_port()
    agents = [
        AgentProc(
            tmp_path, certs_b, "1h", "ledger", name="agent-b", admin=admin_b,
            extra=("--trust-domain", B, "--federate-with", f"{A}=http://127.0.0.1:{admin_a}/bundle"),
        )
    ]  # fmt: skip
    echo, mesh = None, None
    try:
        if before_a is not None:
            before_a(admin_b)
        agents.append(
            AgentProc(
                tmp_path, certs_a, "1h", "gateway", name="agent-a", admin=admin_a,
                extra=("--trust-domain", A, "--federate-with", f"{B}={a_reads_b(admin_b)}"),
            )
        )  # fmt: skip
        agent_b, agent_a = agents
        # B's agent fetches A's bundle once A's endpoint is up (it retries until then)
        wait_for(
            lambda: agent_b.status()["federated"][A]["authorities"] == 1,
            timeout=20,
            what="agent B to fetch A's bundle",
        )
        echo = EchoServer()
        mesh = Mesh(
            tmp_path / "mesh", certs_a, echo.port, allow=GATEWAY_A, expect=LEDGER_B,
            server_args=("--spiffe-endpoint-socket", agent_b.address("ledger")),
            client_args=("--spiffe-endpoint-socket", agent_a.address("gateway")),
        )  # fmt: skip
        wait_for(
            lambda: A in mesh.server.status()["federated_bundles"],
            timeout=20,
            what="the ledger's sidecar to hold A's bundle",
        )
        yield agent_a, agent_b, mesh
    finally:
        if mesh is not None:
            mesh.stop()
        if echo is not None:
            echo.close()
        for agent in agents:
            agent.stop()


def test_two_trust_domains_federated_by_bundle_a_missing_bundle_then_the_call(tmp_path) -> None:
    """gateway in domain A calls ledger in domain B, each agent its own CA. While A's
    agent has no bundle for B, A's sidecar refuses the ledger unknown_ca naming B;
    once B's bundle (the SPIFFE format, from B's bundle endpoint) is where A's agent
    reads it, the next push lets the call through, with no restart."""
    b_bundle = tmp_path / "b-bundle.json"  # absent: A has no bundle for B yet
    with two_domains(tmp_path, lambda _port: str(b_bundle)) as (agent_a, agent_b, mesh):
        assert mesh.server.status()["federated_bundles"].keys() == {A}
        assert mesh.client.status()["federated_bundles"] == {}
        with contextlib.suppress(OSError):  # the app's connection closed (or reset) unanswered
            assert roundtrip(mesh.route, b"before", timeout=5) == b""
        refused = mesh.client.status()["recent_handshakes"][0]
        assert refused["outcome"] == "unknown_ca" and refused["origin"] == "local"
        assert f"no trust bundle for trust domain {B}" in refused["detail"]
        assert agent_a.status()["federated"][B]["last_error"]  # said where it is missing
        # B publishes its bundle (its endpoint, the SPIFFE format); A's agent reads it
        b_bundle.write_bytes(http_get(agent_b.admin, "/bundle")[1])
        wait_for(
            lambda: mesh.client.status()["federated_bundles"].keys() == {B},
            timeout=20,
            what="A's sidecar to receive B's bundle with its next push",
        )
        assert roundtrip(mesh.route, b"across domains") == b"across domains"
        ok = {e["peer"]: e["ok"] for e in mesh.client.status()["edges"] if e["ok"]}
        assert ok == {LEDGER_B: 1}
        assert [e["peer"] for e in mesh.server.status()["edges"] if e["ok"]] == [GATEWAY_A]


def _rotate(certs: Path, stage: str, td: str) -> None:
    from mtlsdemo.pki.lifecycle import rotate_ca
    from mtlsdemo.pki.stores import FileStore

    req = BootstrapRequest(out=certs, services=("ledger",), trust_domain=td)
    rotate_ca(req, stage, FileStore(certs), dt.datetime.now(dt.UTC))


@pytest.mark.parametrize("refreshed", [True, False], ids=["refreshed", "stale"])
def test_domain_bs_ca_rollover_across_federation(tmp_path, refreshed: bool) -> None:
    """B rolls its CA over while A calls it. A's agent refreshing B's bundle within
    the overlap (from B's endpoint): not one failed call. A's copy of B's bundle
    stale (a file nobody updates): after the switch, A refuses B's new SVID
    unknown_ca naming B's bundle, and heals once the bundle is current."""
    certs_b = tmp_path / "certs-b"
    stale = tmp_path / "b-bundle.json"

    def endpoint(port: int) -> str:
        return f"http://127.0.0.1:{port}/bundle"

    def keep_a_copy(port: int) -> None:  # B's bundle before the rollover
        stale.write_bytes(http_get(port, "/bundle")[1])

    source = endpoint if refreshed else (lambda _port: str(stale))
    with two_domains(tmp_path, source, keep_a_copy) as (_agent_a, agent_b, mesh):
        assert roundtrip(mesh.route, b"before") == b"before"
        _rotate(certs_b, "prepare", B)  # B's bundle: both CAs; its SVIDs still the old one's
        if refreshed:
            wait_for(
                lambda: len(mesh.client.status()["federated_bundles"][B]) == 2,
                timeout=20,
                what="A's sidecar to hold both of B's CAs",
            )
        serial = mesh.server.status()["certificate"]["serial"]
        _rotate(certs_b, "switch", B)  # B's agent re-issues the ledger's SVID from the new CA
        wait_for(
            lambda: mesh.server.status()["certificate"]["serial"] != serial,
            timeout=20,
            what="the ledger's sidecar to take an SVID from B's new CA",
        )
        if refreshed:
            for n in range(10):  # every new tunnel a full handshake against the new CA
                assert roundtrip(mesh.route, b"call %d" % n) == b"call %d" % n
            assert all(e["failed"] == 0 for e in mesh.client.status()["edges"])
            return
        with contextlib.suppress(OSError):
            assert roundtrip(mesh.route, b"after", timeout=5) == b""
        refused = mesh.client.status()["recent_handshakes"][0]
        assert refused["outcome"] == "unknown_ca" and refused["origin"] == "local"
        assert f"is not in trust domain {B}'s bundle" in refused["detail"]
        theirs = mesh.server.status()["recent_handshakes"][0]
        assert theirs["outcome"] == "unknown_ca" and theirs["origin"] == "remote_unverified"
        keep_a_copy(agent_b.admin)  # the bundle made current: heals
        wait_for(
            lambda: len(mesh.client.status()["federated_bundles"][B]) == 2,
            timeout=20,
            what="A's sidecar to receive B's current bundle",
        )
        assert roundtrip(mesh.route, b"healed") == b"healed"


def test_run_two_trust_domains_serves_cross_domain_calls(tmp_path) -> None:
    """`mtlsdemo run --domains 2`: the ledger in b.mtls-demo.local, its own CA and agent;
    the demo traffic crosses the domains with no failure, both sides naming the other's
    SPIFFE ID."""
    argv, _ports = run_command(
        tmp_path, "--domains", "2", "--traffic-seconds", "2", "--exit-after-traffic",
        "--console-port", "0",
    )  # fmt: skip
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "codes: OK=" in out and "UNAVAILABLE" not in out
    assert "trust domains: mtls-demo.local (gateway, cli) and b.mtls-demo.local (ledger)" in out
    edges = [
        line
        for line in out.splitlines()
        if line.strip().startswith(("gateway-sidecar ", "ledger-sidecar "))
    ]
    assert len(edges) == 2, out
    for line in edges:
        assert "spiffe://mtls-demo.local/ns/default/sa/gateway" in line
        assert "spiffe://b.mtls-demo.local/ns/default/sa/ledger" in line
        assert line.split()[-1] == "0"  # no failed handshakes
    assert (tmp_path / "certs" / "domain-b" / "ca" / "ca.crt").exists()
