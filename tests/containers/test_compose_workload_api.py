"""docker-compose with the Workload API override (``make compose-up
MTLSDEMO_IDENTITIES=workload-api``): one agent serves each workload its SVID on a
socket in a volume of its own; the workloads mount no identity file and no CA; calls
pass before and after a rotation, with no container restarted."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
from support.docker import wait_healthy
from support.processes import wait_for

pytestmark = pytest.mark.containers
WORKLOADS = ("ledger-sidecar", "gateway", "gateway-sidecar")


def get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.load(r)


def mounts(project: str, service: str) -> dict[str, dict]:
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{json .Mounts}}", f"{project}_{service}_1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m["Destination"]: m for m in json.loads(out)}


def restarts(project: str) -> dict[str, int]:
    out = {}
    for svc in ("agent", *WORKLOADS):
        r = subprocess.run(
            [
                "docker",
                "inspect",
                "-f",
                "{{.RestartCount}} {{.State.StartedAt}}",
                f"{project}_{svc}_1",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        out[svc] = r.stdout.strip()
    return out


def test_compose_on_svids_serves_calls_through_a_rotation(compose_workload_api) -> None:
    dc, project, ports, env = compose_workload_api
    env["MTLSDEMO_SVID_TTL"] = "20s"  # renewed 8-10 s in
    up = dc("up", "-d")
    assert up.returncode == 0, up.stderr
    wait_healthy(dc, project, ("agent", *WORKLOADS, "ledger"))
    agent_port = ports["MTLSDEMO_AGENT_ADMIN_PORT"]
    ledger_admin = ports["MTLSDEMO_LEDGER_ADMIN_PORT"]
    agent = get(agent_port, "/status")
    assert sorted(agent["workloads"]) == ["gateway", "ledger"] and agent["ttl_seconds"] == 20
    side = get(ledger_admin, "/status")
    assert side["identity_source"] == {"workload_api": "unix:///run/spiffe/ledger/agent.sock"}

    # who mounts what: the CA in the agent only, each workload its own socket only,
    # /identity an empty tmpfs
    assert mounts(project, "agent")["/certs/ca"]["Name"].endswith("_ca")
    for svc in WORKLOADS:
        m = mounts(project, svc)
        assert not any(x.get("Name", "").endswith("_ca") for x in m.values()), svc
        assert m["/identity"]["Type"] == "tmpfs", svc
        own = "ledger" if svc.startswith("ledger") else "gateway"
        spiffe = {d: x["Name"] for d, x in m.items() if d.startswith("/run/spiffe")}
        assert spiffe == {f"/run/spiffe/{own}": f"{project}_{own}-spiffe"}, svc
        assert not m[f"/run/spiffe/{own}"]["RW"], svc

    r = dc("run", "--rm", "client", "open", "svid-user", "--id", "dave", check=False)
    assert r.returncode == 0 and "opened dave" in r.stdout, r.stdout + r.stderr
    before = (
        side["certificate"]["serial"],
        get(ports["MTLSDEMO_GATEWAY_ADMIN_PORT"], "/status")["certificate"]["serial"],
    )
    started = restarts(project)

    def rotated() -> bool:
        now = (
            get(ledger_admin, "/status")["certificate"]["serial"],
            get(ports["MTLSDEMO_GATEWAY_ADMIN_PORT"], "/status")["certificate"]["serial"],
        )
        return all(a != b for a, b in zip(now, before, strict=True))

    wait_for(
        rotated,
        timeout=60,
        interval=0.5,
        ignore=(OSError,),
        what="both sidecars on renewed SVIDs",
        describe=lambda: json.dumps(get(agent_port, "/status"))[-2000:],
    )
    r = dc("run", "--rm", "client", "deposit", "dave", "7.00", check=False)
    assert "dave balance 7.00" in r.stdout, r.stdout + r.stderr
    assert restarts(project) == started
    w = get(agent_port, "/status")["workloads"]
    assert all(w[n]["renewals"] >= 1 and w[n]["failures"] == 0 for n in w), w
