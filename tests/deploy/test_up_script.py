"""deploy/k8s/up.sh (`make kind-up`) against stand-in kind, docker and kubectl
binaries that record every call: no cluster here, but what the script asks of
them is checked — its own context on every call, the pinned cluster config, the
image archive fallback, exactly the built image deployed, the smoke Job decisive."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import require_binary

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]
UP = ROOT / "deploy" / "k8s" / "up.sh"
IMAGE_ID = "sha256:" + "0123456789ab" + "f" * 52
TAG = "mtlsdemo:sha-0123456789ab"

FAKE = r"""#!/usr/bin/env bash
# records "<tool> <args>" then answers like the real tool would in the case tested
log="$FAKE_DIR/calls"
tool=$(basename "$0")
printf '%s' "$tool" >>"$log"; printf ' %q' "$@" >>"$log"; echo >>"$log"
case "$tool $*" in
  "docker image inspect -f {{.Id}} "*) echo "$FAKE_IMAGE_ID" ;;
  "docker save "*) : >"${@: -1}" ;;
  "kind version") echo "kind v0.33.0 go1.24 linux/amd64" ;;
  "kind get clusters") ;;
  "minikube -p mtlsdemo status") exit 7 ;;   # no such profile yet
  "kind load docker-image "*) echo "ERROR: failed to detect containerd snapshotter" >&2; exit 1 ;;
  "kubectl kustomize "*) exec "$REAL_KUBECTL" "$@" ;;
  *" apply -f "*)
    src="${@: -1}"; n=$(ls "$FAKE_DIR" | grep -c '^applied'); cat "$src" >"$FAKE_DIR/applied-$n.yaml" ;;
  *" wait --for=condition=complete job/mtlsdemo-smoke "*) exit "${FAKE_SMOKE_EXIT:-0}" ;;
  *" logs job/mtlsdemo-smoke "*) echo "[pod/mtlsdemo-smoke/balance] smoke-b balance 2.50" ;;
esac
exit 0
"""


def run_up(
    tmp_path: Path, cluster: str = "kind", **env: str
) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    real = require_binary("kubectl")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("docker", "kind", "kubectl", "minikube"):
        (bin_dir / tool).write_text(FAKE)
        (bin_dir / tool).chmod(0o755)
    r = subprocess.run(
        ["bash", str(UP), cluster],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FAKE_DIR": str(tmp_path),
            "REAL_KUBECTL": real,
            "FAKE_IMAGE_ID": IMAGE_ID,
            "KUBECTL": "kubectl",
            **env,
        },
    )
    calls = [shlex.split(line) for line in (tmp_path / "calls").read_text().splitlines()]
    return r, calls


def applied(tmp_path: Path) -> list[dict]:
    docs = []
    for f in sorted(tmp_path.glob("applied-*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


def test_kind_up_uses_its_own_context_the_pinned_cluster_and_the_built_image(
    tmp_path: Path,
) -> None:
    r, calls = run_up(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    kubectl = [c for c in calls if c[0] == "kubectl" and c[1] != "kustomize"]
    assert kubectl and all(c[1:3] == ["--context", "kind-mtlsdemo"] for c in kubectl), kubectl
    assert [
        "kind",
        "create",
        "cluster",
        "--config",
        str(ROOT / "deploy/k8s/overlays/kind/kind-cluster.yaml"),
    ] in calls
    # docker's containerd image store breaks `kind load docker-image`: the archive path is taken
    assert ["docker", "tag", "mtlsdemo:dev", TAG] in calls
    assert any(c[:2] == ["docker", "save"] and TAG in c for c in calls)
    assert any(c[:3] == ["kind", "load", "image-archive"] for c in calls)
    # the immutable install Job is replaced, then everything is applied with the built image
    delete = calls.index(next(c for c in calls if "delete" in c and "cert-bootstrap" in c))
    first_apply = calls.index(next(c for c in calls if "apply" in c))
    assert delete < first_apply
    images = {
        c["image"]
        for d in applied(tmp_path)
        if d["kind"] in ("Job", "StatefulSet", "Deployment", "CronJob")
        for spec in [d["spec"].get("jobTemplate", d)["spec"]["template"]["spec"]]
        for c in spec.get("initContainers", []) + spec["containers"]
        if "mtlsdemo" in c["image"]
    }
    assert images == {TAG}
    assert "== mtlsdemo serves on kind-mtlsdemo (image mtlsdemo:sha-0123456789ab)" in r.stdout
    assert "smoke-b balance 2.50" in r.stdout


def test_a_failed_smoke_call_fails_the_whole_command_with_its_logs(tmp_path: Path) -> None:
    r, _calls = run_up(tmp_path, FAKE_SMOKE_EXIT="1")
    assert r.returncode == 1
    assert "the smoke Job failed: the mesh does not serve" in r.stderr
    assert "smoke-b balance" in r.stderr  # its steps' logs, to see which call failed
    assert "serves on" not in r.stdout


def test_minikube_pins_the_kubernetes_version_and_its_profile(tmp_path: Path) -> None:
    r, calls = run_up(tmp_path, "minikube")
    assert r.returncode == 0, r.stderr
    start = next(c for c in calls if c[:2] == ["minikube", "start"])
    assert start[2:4] == ["-p", "mtlsdemo"]
    assert "--kubernetes-version=v1.35.8" in start and "--cni=calico" in start
    kubectl = [c for c in calls if c[0] == "kubectl" and c[1] != "kustomize"]
    assert all(c[1:3] == ["--context", "mtlsdemo"] for c in kubectl)


def test_missing_image_is_one_clear_line(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "docker").chmod(0o755)
    (bin_dir / "kubectl").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "kubectl").chmod(0o755)
    r = subprocess.run(
        ["bash", str(UP), "kind"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "KUBECTL": "kubectl"},
    )
    assert r.returncode == 1
    assert r.stderr.strip() == "error: image mtlsdemo:dev not found: run `make image` first"
