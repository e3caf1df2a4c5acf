"""The containers tier's fixtures: Docker via testcontainers and docker-compose.

Loaded as a plugin by tests/conftest.py (`pytest_plugins = ["support.docker"]`).

Skips with the reason when Docker is missing, unless MTLSDEMO_REQUIRE names
"docker" (CI), then fails. The image is built once per session from the
working tree; MTLSDEMO_BASE_IMAGE picks the base (CI: the debootstrap one).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from mtlsdemo.addresses import free_port

from support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]  # tests/support/docker.py -> the repository
IMAGE = os.environ.get("MTLSDEMO_TEST_IMAGE", "mtlsdemo:test")
BASE = os.environ.get("MTLSDEMO_BASE_IMAGE", "python:3.11-slim-bookworm")
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # no registry for the reaper image


def docker_available() -> tuple[bool, str]:
    if shutil.which("docker") is None:
        return False, "the docker CLI is not installed"
    r = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if r.returncode != 0:
        return (
            False,
            f"no Docker engine answers ({r.stderr.strip().splitlines()[-1] if r.stderr.strip() else 'docker info failed'})",
        )
    return True, r.stdout.strip()


@pytest.fixture(scope="session")
def docker() -> str:
    ok, why = docker_available()
    require_tool("docker", ok, why)
    return why


@pytest.fixture(scope="session")
def image(docker: str) -> str:
    have_base = (
        subprocess.run(
            ["docker", "image", "inspect", BASE], capture_output=True, check=False
        ).returncode
        == 0
    )
    if not have_base:
        pull = subprocess.run(
            ["docker", "pull", BASE], capture_output=True, text=True, timeout=300, check=False
        )
        require_tool(
            "docker",
            pull.returncode == 0,
            f"base image {BASE} is not present and cannot be pulled; build one with "
            "deploy/docker/build-base-image.sh and set MTLSDEMO_BASE_IMAGE",
        )
    r = subprocess.run(
        [
            "docker",
            "build",
            "-q",
            "-f",
            "deploy/docker/Dockerfile",
            "--build-arg",
            f"BASE_IMAGE={BASE}",
            "-t",
            IMAGE,
            ".",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert r.returncode == 0, f"docker build failed:\n{r.stdout}\n{r.stderr}"
    return IMAGE


def docker_json(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


COMPOSE_FILE = ROOT / "deploy" / "compose" / "docker-compose.yml"


@pytest.fixture
def compose(image: str):
    """A compose project of its own (random name, free host ports): (dc, project,
    ports, the environment docker-compose needs for it)."""
    yield from compose_project(image, [COMPOSE_FILE])


@pytest.fixture
def compose_workload_api(image: str):
    """As ``compose``, with the Workload API override (MTLSDEMO_IDENTITIES=workload-api)."""
    yield from compose_project(image, [COMPOSE_FILE, COMPOSE_FILE.parent / "workload-api.yml"])


@pytest.fixture
def compose_post_quantum(image: str):
    """As ``compose``, with the ML-DSA override (MTLSDEMO_KEY_TYPE=ml-dsa-65)."""
    yield from compose_project(image, [COMPOSE_FILE, COMPOSE_FILE.parent / "post-quantum.yml"])


def compose_project(image: str, files: list[Path]):
    binary = shutil.which("docker-compose")
    if binary is None:
        require_tool("docker", False, "docker-compose is not installed")
    project = f"mtlsdemo-test-{uuid.uuid4().hex[:8]}"
    ports = {
        name: free_port()
        for name in (
            "MTLSDEMO_GATEWAY_PORT",
            "MTLSDEMO_GATEWAY_METRICS_PORT",
            "MTLSDEMO_GATEWAY_ADMIN_PORT",
            "MTLSDEMO_LEDGER_METRICS_PORT",
            "MTLSDEMO_LEDGER_ADMIN_PORT",
            "MTLSDEMO_CONSOLE_PORT",
            "MTLSDEMO_AGENT_ADMIN_PORT",
        )
    }
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "MTLSDEMO_IMAGE": image,
        **{k: str(v) for k, v in ports.items()},
    }

    def dc(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [binary, *(a for f in files for a in ("-f", str(f))), "-p", project, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    yield dc, project, ports, env
    # -t 2: the gateway's sidecar drains its tunnels up to 10 s (the gateway holds one
    # open); a test's teardown needs no graceful stop
    dc("down", "-v", "--remove-orphans", "-t", "2", check=False)


def compose_health(project: str) -> dict[str, str]:
    """Each service of a compose project: its health (running) or its state."""
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    out = {}
    for cid in ids:
        info = json.loads(
            subprocess.run(
                ["docker", "inspect", cid], capture_output=True, text=True, check=True
            ).stdout
        )[0]
        svc = info["Config"]["Labels"]["com.docker.compose.service"]
        st = info["State"]
        running = st["Status"] == "running"
        out[svc] = (st.get("Health", {}).get("Status") if running else None) or st["Status"]
    return out


def wait_healthy(dc, project: str, services: tuple[str, ...], timeout: float = 120) -> None:
    """Until each service's container is healthy (its HEALTHCHECK); on timeout, each
    one's state and the project's last log lines."""
    from support.processes import wait_for

    wait_for(
        lambda: all(compose_health(project).get(s) == "healthy" for s in services),
        timeout=timeout,
        interval=1,
        what=f"{', '.join(services)} healthy",
        describe=lambda: f"{compose_health(project)}\n{dc('logs', check=False).stdout[-3000:]}",
    )
