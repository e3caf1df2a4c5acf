"""The observability pieces against a real Prometheus: promtool checks and rule
unit tests, then a server scraping a local run, with every dashboard query and
every alert expression executed through the HTTP API."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from mtlsdemo.pki import lifecycle
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.stores import FileStore
from support.agents import AgentProc
from support.identities import now
from support.metrics import metric_value
from support.processes import run_command, wait_for
from support.prometheus import api, evaluated_after, query
from support.prometheus import running as running_prometheus
from support.sidecars import forge_record_after_handshake
from support.tools import require_binary

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "mtls-handshakes.json"


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [require_binary("promtool"), *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        check=False,
    )


def test_rules_check_and_unit_tests_pass() -> None:
    r = promtool("check", "rules", str(PROM / "rules" / "mtlsdemo.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    r = promtool("test", "rules", str(PROM / "tests" / "mtlsdemo_test.yml"))
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_every_alert_has_a_firing_unit_test() -> None:
    rules = yaml.safe_load((PROM / "rules" / "mtlsdemo.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((PROM / "tests" / "mtlsdemo_test.yml").read_text())
    fired = {
        t["alertname"]
        for case in tests["tests"]
        for t in case.get("alert_rule_test", [])
        if t.get("exp_alerts")
    }
    assert alerts == fired


@pytest.mark.parametrize(
    "config", ["prometheus.yml", "prometheus-compose.yml", "prometheus-k8s.yml"]
)
def test_scrape_configs_are_valid(config: str, tmp_path: Path) -> None:
    # rule_files paths are relative to the deployed location: check the scrape part here
    doc = yaml.safe_load((PROM / config).read_text())
    doc.pop("rule_files", None)
    for job in doc["scrape_configs"]:
        sd = job.pop("kubernetes_sd_configs", None)
        if sd is not None:
            # Debian's Prometheus is built without Kubernetes discovery, so its
            # promtool cannot parse it: check that block here, the rest below.
            assert sd == [
                {"role": "pod", "namespaces": {"own_namespace": True}}
            ]  # no hard-coded namespace
            keep = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
            assert {r["regex"] for r in keep} == {"mtlsdemo", "metrics|admin"}
            job["static_configs"] = [{"targets": ["127.0.0.1:9101"]}]
    f = tmp_path / config
    f.write_text(yaml.safe_dump(doc))
    r = promtool("check", "config", str(f))
    assert r.returncode == 0, r.stdout + r.stderr


def dashboard_queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


def alert_signals() -> list[tuple[str, str]]:
    """Each alert expression with its comparisons turned into `bool` ones, so it
    returns a sample whenever the series it watches exist, firing or not."""
    rules = yaml.safe_load((PROM / "rules" / "mtlsdemo.yml").read_text())
    out = []
    for g in rules["groups"]:
        for r in g["rules"]:
            expr = re.sub(r"\s(==|>|<)\s", r" \1 bool ", " ".join(r["expr"].split()))
            out.append((r["alert"], expr))
    return out


def test_dashboard_has_the_promised_panels() -> None:
    titles = " | ".join(t for t, _ in dashboard_queries()).lower()
    for want in (
        "handshake rate by result and reason",
        "p50 / p99",
        "per step",
        "suites",
        "active sessions",
        "bytes encrypted",
        "record failures",
        "expiry countdown",
        "stapled status and crl time left",
        "revoked serials",
        "refused for revocation",
        "grpc calls per method and code",
        "full and resumed",
    ):
        assert want in titles


# ---------------------------------------------------------------- a real Prometheus
class Run:
    def __init__(self, root: Path) -> None:
        self.root = root
        argv, self.ports = run_command(root, "--traffic-seconds", "0")
        self.certs = root / "certs"
        env = dict(
            os.environ, PYTHONUNBUFFERED="1", MTLSDEMO_KEY_UPDATE_RECORDS="20"
        )  # the sidecars inherit it: key updates happen
        self.log = (root / "run.log").open("w")
        self.proc = subprocess.Popen(
            argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.wait_log("== running")
        # a Workload API agent issuing from the same CA: the SVID series and alerts
        self.agent = AgentProc(root, self.certs, "10s")

    def wait_log(self, text: str, timeout: float = 60) -> None:
        wait_for(
            lambda: text in (self.root / "run.log").read_text(),
            timeout=timeout,
            what=f"{text!r} in the run's log",
            check=self.assert_alive,
        )

    def assert_alive(self) -> None:
        assert self.proc.poll() is None, (self.root / "run.log").read_text()

    @property
    def metrics_ports(self) -> list[int]:
        p = self.ports
        return [
            p["ledger_metrics"],
            p["gateway_metrics"],
            p["gateway_admin"],
            p["ledger_admin"],
            self.agent.admin,
        ]

    def stop(self) -> None:
        self.agent.stop()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    root = tmp_path_factory.mktemp("prom")
    run = Run(root)
    scrape = [
        {
            "job_name": "mtlsdemo",
            "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in run.metrics_ports]}],
        }
    ]
    try:
        with running_prometheus(root, scrape) as port:
            # traffic for rates: a loadgen against the gateway while we watch
            from mtlsdemo.gateway.loadgen import run_load

            run_load(
                f"127.0.0.1:{run.ports['gateway']}",
                run.certs / "cli",
                "gateway",
                rps=40,
                duration=6,
                concurrency=2,
                progress=False,
            )
            yield run, port
    finally:
        run.stop()


# Queries that are empty until a failure is provoked; everything else must have data now.
EMPTY_UNTIL_FAILURE = {
    "Handshake failures by side and reason",
    "Record failures",
    "Certificate reloads",
    "MtlsCertificateReloadFailing",
    "MtlsRecordFailures",
    "MtlsHandshakeFailureRatioHigh",
    "MtlsHandshakesFailingForReason",
    "GrpcServerErrorRatioHigh",
    "Handshakes refused for revocation or status",
    "MtlsRevokedCertificateInUse",
    "MtlsSvidRenewalFailing",
}


def test_promtool_check_metrics_on_every_page(prometheus) -> None:
    run, _ = prometheus
    for port in run.metrics_ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        res = promtool("check", "metrics", stdin=text)
        assert res.returncode == 0, (port, res.stdout + res.stderr)


def test_a_healthy_mesh_raises_no_alert(prometheus) -> None:
    """The shipped rules against `mtlsdemo run` with nothing broken: no alert pending or
    firing (a ledger that loads no CRL exported nextUpdate 0, and MtlsCrlPastNextUpdate
    went pending at once and fired, critical, after 2 minutes; pending is what shows it
    here within seconds)."""
    import datetime as dt

    _run, port = prometheus
    evaluated_after(port, dt.datetime.now(dt.UTC))
    alerts = query(port, "ALERTS")
    assert alerts == [], [(a["metric"]["alertname"], a["metric"].get("instance")) for a in alerts]
    # the ledger behind its sidecar checks no CRL: it exports no CRL series at all
    crl = query(port, "mtls_crl_next_update_timestamp_seconds")
    assert all(float(s["value"][1]) > 1.7e9 for s in crl), crl


def test_every_query_and_alert_expression_returns_data(prometheus, record_property) -> None:
    run, port = prometheus
    rules = api(port, "rules")["groups"]
    assert all(r["health"] == "ok" for g in rules for r in g["rules"]), rules
    queries = dashboard_queries() + alert_signals()
    expected_empty = EMPTY_UNTIL_FAILURE & {n for n, _ in queries}

    def empty() -> list[str]:
        return [name for name, expr in queries if not query(port, expr)]

    # rates need two scrapes after the traffic: wait until everything but the
    # failure queries has data (or the deadline names what is still empty)
    wait_for(
        lambda: set(empty()) <= expected_empty,
        timeout=60,
        describe=empty,
        what="every query but the failure ones to have data",
    )
    empty_now = empty()
    assert set(empty_now) == expected_empty, empty_now
    record_property("with_data_before_failures", len(queries) - len(empty_now))

    # provoke: a client from another CA, a forged record, a broken certificate file
    # (it trusts our CA, so the ledger's sidecar is the one that rejects, locally)
    other = run.root / "other"
    bootstrap(BootstrapRequest(out=other, services=("gateway",)))
    (other / "gateway" / "ca.crt").write_bytes((run.certs / "ca" / "ca.crt").read_bytes())
    r = _handshake_as(run.ports["ledger"], other / "gateway")
    assert r.returncode == 1 and "unknown_ca" in r.stdout
    # a revoked gateway identity (same CA, revoked in a copy of the CA's state):
    # the ledger's sidecar refuses it with certificate_revoked
    revoked = run.root / "revoked"
    shutil.copytree(run.certs, revoked)
    lifecycle.revoke(FileStore(revoked), ("gateway",), now(), service="gateway")
    r = _handshake_as(run.ports["ledger"], revoked / "gateway")
    assert r.returncode == 1 and "certificate_revoked" in r.stdout, r.stdout + r.stderr
    forge_record_after_handshake(run.ports["ledger"], run.certs / "gateway")
    _call_with_wrong_identity(run.ports["gateway"], run.certs / "ledger")
    crt = run.certs / "ledger" / "tls.crt"
    good = crt.read_bytes()
    crt.write_text("garbage")
    wait_for(
        lambda: _reload_failures(run.ports["ledger_admin"]) >= 1,
        timeout=30,
        what="the ledger's sidecar to refuse the broken certificate file",
    )
    crt.write_bytes(good)
    # the CA's key out of reach: the agent's next renewal fails, the SVID in hand serves
    key = run.certs / "ca" / "ca.key"
    aside = key.with_name("ca.key.aside")
    key.rename(aside)
    try:
        wait_for(
            lambda: run.agent.status()["workloads"]["gateway"]["failures"] >= 1,
            timeout=30,
            what="the agent to fail a renewal without the CA's key",
        )
    finally:
        aside.rename(key)
    wait_for(lambda: not empty(), timeout=60, what="data in every query", describe=empty)
    failures = query(port, 'sum by (reason, origin) (mtls_handshakes_total{result="failure"})')
    assert {(s["metric"]["reason"], s["metric"]["origin"]) for s in failures} >= {
        ("unknown_ca", "local"),
        ("certificate_revoked", "local"),
    }


def _handshake_as(port: int, identity: Path) -> subprocess.CompletedProcess:
    """`mtlsdemo handshake --connect` to a sidecar with another identity directory."""
    argv = [sys.executable, "-m", "mtlsdemo", "handshake", "--connect", f"127.0.0.1:{port}"]
    return subprocess.run(
        [*argv, "--client-dir", str(identity)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _reload_failures(admin_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    try:
        return metric_value(text, "mtls_certificate_reloads_total", result="failure")
    except KeyError:
        return 0.0


def _call_with_wrong_identity(port: int, identity: Path) -> None:
    import grpc
    from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
    from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
    from mtlsdemo.rpc.credentials import secure_channel

    channel = secure_channel(f"127.0.0.1:{port}", identity, "gateway")
    try:
        pb_grpc.GatewayServiceStub(channel).GetBalance(
            pb.GetBalanceRequest(account_id="x"), timeout=5
        )
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED
    else:
        raise AssertionError("the ledger identity must not be allowed to call the gateway")
    finally:
        channel.close()
