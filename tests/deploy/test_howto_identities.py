"""docs/how-to.md "Identities from a Workload API", its compose and Kubernetes lines:
each switches what it says it switches (no cluster here: what `make` would run and
what render.sh renders; the containers and pods tiers run both)."""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest
from support.docblocks import ROOT, blocks, commands

pytestmark = pytest.mark.deploy


def documented() -> list[tuple[dict[str, str], list[str]]]:
    """Each line of the block as (environment, argv)."""
    _run, block = blocks(section="Identities from a Workload API")
    out = []
    for cmd, _note in commands(block):
        words = shlex.split(cmd)
        env = dict(w.split("=", 1) for w in words if "=" in w)
        out.append((env, [w for w in words if "=" not in w]))
    return out


def test_the_compose_line_adds_the_override_and_the_kind_line_reaches_render() -> None:
    (compose_env, compose), (kind_env, kind) = documented()
    assert compose == ["make", "compose-up"]
    assert kind == ["make", "kind-up"]
    assert compose_env == kind_env == {"MTLSDEMO_IDENTITIES": "workload-api"}
    dry = subprocess.run(
        ["make", "-n", "compose-up", *(f"{k}={v}" for k, v in compose_env.items())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    up = next(line for line in dry.splitlines() if line.endswith(" up -d"))
    assert "-f deploy/compose/docker-compose.yml -f deploy/compose/workload-api.yml" in up
    # kind-up runs up.sh, which renders with render.sh: the variable reaches it unchanged
    dry = subprocess.run(
        ["make", "-n", "kind-up"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, **kind_env},
    ).stdout
    assert "deploy/k8s/up.sh kind" in dry
    script = (ROOT / "deploy" / "k8s" / "render.sh").read_text()
    assert "identities=${MTLSDEMO_IDENTITIES:-files}" in script
