"""docker-compose end to end, as a user runs it: up, healthy, the client works,
every /metrics page scrapes, `down -v` leaves nothing behind."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from support.docker import compose_health
from support.metrics import metric_value
from support.processes import wait_for
from support.prometheus import evaluated_after, query
from support.prometheus import running as running_prometheus

pytestmark = pytest.mark.containers
ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("ledger", "ledger-sidecar", "gateway", "gateway-sidecar", "loadgen", "console")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def test_compose_up_is_healthy_serves_the_client_and_down_leaves_nothing(
    compose, tmp_path: Path
) -> None:
    dc, project, ports, env = compose
    # the authorization policy from a directory of the test's (MTLSDEMO_AUTHZ_DIR), so
    # editing it below leaves the checkout's alone
    authz = tmp_path / "authz"
    authz.mkdir(mode=0o755)
    shutil.copy(ROOT / "deploy/compose/authz/policy.yaml", authz / "policy.yaml")
    (authz / "policy.yaml").chmod(0o644)
    authz.chmod(0o755)
    env["MTLSDEMO_AUTHZ_DIR"] = str(authz)
    up = dc("up", "-d")
    assert up.returncode == 0, up.stderr

    def healthy() -> bool:
        state = compose_health(project)
        return (
            all(state.get(s) == "healthy" for s in SERVICES if s != "loadgen")
            and state.get("certs") == "exited"
            and state.get("certs-refresh") == "running"  # the stapled statuses' loop
        )

    wait_for(
        healthy,
        timeout=120,
        interval=1,
        what="every service healthy, certs exited",
        describe=lambda: f"{compose_health(project)}\n{dc('logs', check=False).stdout[-3000:]}",
    )
    certs_exit = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.ExitCode}}", f"{project}_certs_1"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    assert certs_exit == "0"

    r = dc("run", "--rm", "client", "open", "compose-user", "--id", "carol", check=False)
    assert r.returncode == 0 and "opened carol" in r.stdout, r.stdout + r.stderr
    r = dc("run", "--rm", "client", "deposit", "carol", "42.00", check=False)
    assert "carol balance 42.00" in r.stdout, r.stdout + r.stderr

    # every /metrics page scrapes, and the mesh shows real handshakes and traffic
    # (the sidecars publish record counters once a second: wait for them, not for a time)
    def pages() -> dict[str, str]:
        return {
            name: scrape(port)
            for name, port in (
                ("ledger", ports["MTLSDEMO_LEDGER_METRICS_PORT"]),
                ("gateway", ports["MTLSDEMO_GATEWAY_METRICS_PORT"]),
                ("gateway-sidecar", ports["MTLSDEMO_GATEWAY_ADMIN_PORT"]),
                ("ledger-sidecar", ports["MTLSDEMO_LEDGER_ADMIN_PORT"]),
            )
        }

    def traffic_seen() -> bool:
        p = pages()
        return (
            metric_value(
                p["ledger-sidecar"], "mtls_handshakes_total", role="server", result="success"
            )
            >= 1
            and metric_value(p["gateway-sidecar"], "mtls_records_total", direction="sent") >= 1
            and metric_value(
                p["gateway"], "grpc_server_handled_total", grpc_method="Deposit", grpc_code="OK"
            )
            >= 1
            and metric_value(
                p["ledger"], "ledger_transfers_total", kind="deposit", result="applied"
            )
            >= 1
        )

    wait_for(
        traffic_seen,
        timeout=30,
        ignore=(OSError, KeyError),
        what="handshakes, records, the Deposit call and the applied deposit in the metrics",
    )

    # the console found both sidecars over the compose network and shows the edge
    base = f"http://127.0.0.1:{ports['MTLSDEMO_CONSOLE_PORT']}"

    def console_edge() -> list[dict]:
        with urllib.request.urlopen(base + "/api/mesh", timeout=5) as r:
            mesh = json.load(r)
        assert all(src["up"] for src in mesh["sources"]), mesh["sources"]
        return [
            e
            for e in mesh["edges"]
            if e["path"] == "MTD/1" and e["server"].endswith("/sa/ledger") and e["ok"] >= 1
        ]

    (edge,) = wait_for(
        console_edge,
        timeout=30,
        ignore=(OSError, AssertionError),
        what="the console showing gateway -> ledger with every source up",
    )
    assert edge["client"].endswith("/sa/gateway") and edge["health"] == "healthy"

    # the policy is in force and followed when it changes (saved by rename, as editors do)
    def ledger_policy() -> dict:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{ports['MTLSDEMO_LEDGER_ADMIN_PORT']}/status", timeout=5
        ) as resp:
            return json.load(resp)["authz_policy"]

    assert ledger_policy()["policies"] == ["ledger-callers", "gateway-callers"]
    edited = authz / ".policy.yaml.new"
    edited.write_text(
        (authz / "policy.yaml").read_text()
        + "  - name: tried-first\n    applies_to: [ledger]\n    action: DENY\n"
        "    mode: dry-run\n    rules: [{from: [{ids: ['spiffe://mtls-demo.local/ns/*/sa/x']}]}]\n"
    )
    edited.chmod(0o644)
    edited.rename(authz / "policy.yaml")
    wait_for(
        lambda: ledger_policy()["policies"][-1] == "tried-first",
        timeout=30,
        ignore=(OSError,),
        what="the ledger's sidecar to follow the edited policy",
    )

    # the shipped rules against the healthy compose mesh: no alert pending or firing
    # (its services load no CRL: a 0 nextUpdate once made MtlsCrlPastNextUpdate fire)
    published = {
        "ledger:9101": "MTLSDEMO_LEDGER_METRICS_PORT",
        "gateway:9102": "MTLSDEMO_GATEWAY_METRICS_PORT",
        "gateway:9901": "MTLSDEMO_GATEWAY_ADMIN_PORT",
        "ledger:9902": "MTLSDEMO_LEDGER_ADMIN_PORT",
    }
    prom_cfg = yaml.safe_load((ROOT / "deploy/prometheus/prometheus-compose.yml").read_text())
    for job in prom_cfg["scrape_configs"]:
        for group in job["static_configs"]:
            group["targets"] = [f"127.0.0.1:{ports[published[t]]}" for t in group["targets"]]
    with running_prometheus(tmp_path, prom_cfg["scrape_configs"]) as prom:
        evaluated_after(prom, dt.datetime.now(dt.UTC))
        alerts = query(prom, "ALERTS")
        assert alerts == [], [(a["metric"]["alertname"], a["metric"]["component"]) for a in alerts]
        assert query(prom, "mtls_crl_next_update_timestamp_seconds") == []

    # break and tour the compose mesh from the host, as a user does (`--compose`): the
    # scenarios run in the `breaker` service, inside the gateway's pod
    def on_compose(*args: str) -> subprocess.CompletedProcess[str]:
        file = ROOT / "deploy" / "compose" / "docker-compose.yml"
        return subprocess.run(
            [sys.executable, "-m", "mtlsdemo", *args, "--compose", project, "--compose-file", str(file)],
            cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip

    r = on_compose("break", "foreign-ca", "revoked")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "== foreign-ca: as described; the mesh is healthy again" in r.stdout
    assert "== revoked: as described; the mesh is healthy again" in r.stdout
    # compose's gateway loads no CRL: said, not tried (and not a failure)
    assert "native    not tried: the gateway checks its callers against no CRL" in r.stdout
    r = on_compose("tour", "--non-interactive")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "== 4. " in r.stdout and "handshake --connect ledger:8443" in r.stdout, r.stdout
    # the console holds no CA key: its buttons say the command; it saw the refusals
    with urllib.request.urlopen(base + "/api/options", timeout=5) as resp:
        breaking = json.load(resp)["break"]
    assert not breaking["allowed"] and "--compose" in breaking["command"], breaking
    assert "{scenario}" in breaking["command"]
    with urllib.request.urlopen(base + "/api/mesh", timeout=5) as resp:
        seen = {(f["reason"], f["rejected"]) for f in json.load(resp)["failures"]}
    assert ("certificate_revoked", edge["client"]) in seen, seen

    # only the certs container (and the breaker, which ran and left) sees the CA key
    for svc in SERVICES:
        cid = f"{project}_{svc}_1"
        mounts = json.loads(
            subprocess.run(
                ["docker", "inspect", "-f", "{{json .Mounts}}", cid],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert not any(m.get("Name", "").endswith("_ca") for m in mounts), (svc, mounts)
        assert all(not m["RW"] for m in mounts if m["Destination"] == "/identity")

    down = dc("down", "-v", "-t", "2")
    assert down.returncode == 0
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    vols = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    nets = subprocess.run(
        [
            "docker",
            "network",
            "ls",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={project}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert (left, vols, nets) == ([], [], [])
