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
from support.tools import require_binary

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
  "docker info --format "*) echo "${FAKE_CGROUP:-2}" ;;
  "docker version -f "*) echo amd64 ;;
  "docker image save "*) : >"${@: -1}" ;;
  "kind version") echo "kind v0.33.0 go1.24 linux/amd64" ;;
  "kind get clusters") [ -z "${FAKE_EXISTING:-}" ] || echo mtlsdemo ;;
  *" get nodes -o jsonpath="*) echo "${FAKE_EXISTING:-}" ;;
  "kind create cluster "*) echo kind-mtlsdemo >"$FAKE_DIR/context" ;;   # kind switches it
  "kubectl config current-context") cat "$FAKE_DIR/context" 2>/dev/null || echo docker-desktop ;;
  "minikube -p mtlsdemo status") exit 7 ;;   # no such profile yet
  "minikube -p mtlsdemo image load mtlsdemo:"*) [ -z "${FAKE_MINIKUBE_LOAD_FAILS:-}" ] || exit 1 ;;
  "minikube -p mtlsdemo image ls") echo "docker.io/library/${FAKE_LISTED:-mtlsdemo:sha-0123456789ab}" ;;
  "kind load docker-image "*) echo "ERROR: failed to detect containerd snapshotter" >&2; exit 1 ;;
  "kubectl kustomize "*) exec "$REAL_KUBECTL" "$@" ;;
  *" apply -f "*)
    src="${@: -1}"; n=$(ls "$FAKE_DIR" | grep -c '^applied'); cat "$src" >"$FAKE_DIR/applied-$n.yaml" ;;
  *" get statefulset ledger "*) echo "${FAKE_DEPLOYED:-}" ;;
  *" rollout status statefulset/ledger "*) [ -z "${FAKE_ROLLOUT_FAILS:-}" ] || { echo "error: timed out waiting for the condition" >&2; exit 1; } ;;
  *" get pods -o wide") echo "ledger-0   0/2   ImagePullBackOff   0   5m" ;;
  *" get job $FAKE_FAILING_JOB "*) echo "Failed " ;;
  *" get pods -l job-name=$FAKE_CRASHING_JOB "*) echo "CrashLoopBackOff" ;;
  *" get job $FAKE_CRASHING_JOB "*) echo "" ;;   # not Failed yet: backoffLimit is far
  *" get job "*) echo "Complete " ;;
  *" logs job/"*) echo "[pod/${4#job/}/step] ${FAKE_LOG:-smoke-b balance 2.50}" ;;
  *"-n kube-system logs -l app=kindnet "*) echo "${FAKE_KINDNET_LOG:-I1207 controller.go:374] Syncing nftables rules}" ;;
esac
exit 0
"""


def run_up(
    tmp_path: Path, cluster: str = "kind", *args: str, **env: str
) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    real = require_binary("kubectl")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("docker", "kind", "kubectl", "minikube"):
        (bin_dir / tool).write_text(FAKE)
        (bin_dir / tool).chmod(0o755)
    r = subprocess.run(
        ["bash", str(UP), cluster, *args],
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
            "FAKE_FAILING_JOB": "none",
            "FAKE_CRASHING_JOB": "none",
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
    kubectl = [c for c in calls if c[0] == "kubectl" and c[1] not in ("kustomize", "config")]
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
    save = next(c for c in calls if c[:3] == ["docker", "image", "save"])
    assert TAG in save and "--platform" in save and "linux/amd64" in save  # kind#3795
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
    assert "] mtlsdemo serves on kind-mtlsdemo (image mtlsdemo:sha-0123456789ab)" in r.stdout
    assert "smoke-b balance 2.50" in r.stdout


def test_a_failed_smoke_call_fails_the_whole_command_with_its_logs(tmp_path: Path) -> None:
    r, _calls = run_up(tmp_path, FAKE_FAILING_JOB="mtlsdemo-smoke")
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
    kubectl = [c for c in calls if c[0] == "kubectl" and c[1] not in ("kustomize", "config")]
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


def test_stages_print_their_durations_and_the_context_switch_is_said(tmp_path: Path) -> None:
    r, _calls = run_up(tmp_path)
    assert r.returncode == 0, r.stderr
    stages = [line for line in r.stdout.splitlines() if line.startswith("== [+")]
    assert len(stages) >= 6 and all("s, total " in line for line in stages)
    assert (
        "note: creating the cluster made kind-mtlsdemo kubectl's current context "
        "(it was docker-desktop; back: kubectl config use-context docker-desktop)"
    ) in r.stderr


def test_smoke_job_is_rendered_with_the_deployed_image_and_the_namespace(tmp_path: Path) -> None:
    r, _calls = run_up(tmp_path)
    assert r.returncode == 0, r.stderr
    (smoke,) = [d for d in applied(tmp_path) if d["metadata"]["name"] == "mtlsdemo-smoke"]
    assert smoke["metadata"]["namespace"] == "mtlsdemo"
    spec = smoke["spec"]["template"]["spec"]
    assert {c["image"] for c in spec["initContainers"] + spec["containers"]} == {TAG}


def test_a_failed_bootstrap_prints_its_logs_at_once_and_stops(tmp_path: Path) -> None:
    r, calls = run_up(
        tmp_path, FAKE_FAILING_JOB="cert-bootstrap", FAKE_LOG="error: secrets is forbidden"
    )
    assert r.returncode == 1
    assert "job/cert-bootstrap failed" in r.stderr and "secrets is forbidden" in r.stderr
    assert "the cert-bootstrap Job did not complete" in r.stderr
    assert not any("rollout" in c for c in calls)  # nothing waits on pods that cannot start


def test_a_cgroup_v1_host_is_said_and_handled(tmp_path: Path) -> None:
    r, calls = run_up(tmp_path, "minikube", FAKE_CGROUP="1")
    assert r.returncode == 0, r.stderr
    assert "this host uses cgroup v1" in r.stderr
    start = next(c for c in calls if c[:2] == ["minikube", "start"])
    assert "--extra-config=kubelet.fail-cgroupv1=false" in start
    kind = yaml.safe_load((ROOT / "deploy/k8s/overlays/kind/kind-cluster.yaml").read_text())
    patches = [yaml.safe_load(p) for p in kind["kubeadmConfigPatches"]]
    assert {"kind": "KubeletConfiguration", "failCgroupV1": False} in patches


def test_rotate_ca_runs_the_stage_with_the_deployed_image_on_its_context(tmp_path: Path) -> None:
    deployed = "mtlsdemo:sha-feedfacecafe"
    r, calls = run_up(tmp_path, "kind", "rotate-ca", "prepare", FAKE_DEPLOYED=deployed)
    assert r.returncode == 0, r.stderr
    kubectl = [c for c in calls if c[0] == "kubectl" and c[1] not in ("kustomize", "config")]
    assert kubectl and all(c[1:3] == ["--context", "kind-mtlsdemo"] for c in kubectl), kubectl
    (job,) = applied(tmp_path)
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert (job["metadata"]["name"], c["image"], c["args"]) == (
        "cert-rotate-ca",
        deployed,
        ["certs", "rotate-ca", "prepare"],
    )
    assert job["metadata"]["namespace"] == "mtlsdemo"


def test_rotate_ca_needs_a_known_stage(tmp_path: Path) -> None:
    r, _calls = run_up(tmp_path, "kind", "rotate-ca", "sideways", FAKE_DEPLOYED="mtlsdemo:sha-1")
    assert r.returncode != 0
    assert "rotate-ca needs a stage: plan, prepare, switch or finish" in r.stderr


def test_a_crash_looping_bootstrap_is_reported_at_once_not_after_its_backoff_limit(
    tmp_path: Path,
) -> None:
    """restartPolicy OnFailure keeps a deterministic failure in CrashLoopBackOff for
    ~10 minutes before the Job says Failed: the back-off is reported at once."""
    r, _calls = run_up(
        tmp_path, FAKE_CRASHING_JOB="cert-bootstrap", FAKE_LOG="error: secrets is forbidden"
    )
    assert r.returncode != 0
    assert "!! job/cert-bootstrap failed and is being restarted (CrashLoopBackOff)" in r.stderr
    assert "secrets is forbidden" in r.stderr  # its logs, printed with it
    assert "not complete after" not in r.stderr  # not after the whole timeout


def test_minikube_falls_back_to_the_platform_archive_and_checks_the_image_is_there(
    tmp_path: Path,
) -> None:
    """Docker's containerd image store: `minikube image load NAME` fails as kind's
    does; the archive of this platform's variant is loaded instead, and the image
    must then be listed in minikube."""
    r, calls = run_up(tmp_path, "minikube", FAKE_MINIKUBE_LOAD_FAILS="1")
    assert r.returncode == 0, r.stderr
    save = next(c for c in calls if c[:3] == ["docker", "image", "save"])
    assert "--platform" in save and "linux/amd64" in save
    loads = [
        c for c in calls if c[:4] == ["minikube", "-p", "mtlsdemo", "image"] and c[4] == "load"
    ]
    assert [c[5] for c in loads] == [TAG, save[-1]]  # the name, then the saved archive
    assert ["minikube", "-p", "mtlsdemo", "image", "ls"] in calls
    (tmp_path / "again").mkdir()
    r, _calls = run_up(tmp_path / "again", "minikube", FAKE_LISTED="something-else:1")
    assert r.returncode != 0
    assert f"{TAG} is not in minikube's images after loading it" in r.stderr


def test_a_rollout_that_times_out_shows_the_pods_and_what_they_wait_on(tmp_path: Path) -> None:
    r, _calls = run_up(tmp_path, FAKE_ROLLOUT_FAILS="1")
    assert r.returncode != 0
    assert "ledger-0   0/2   ImagePullBackOff" in r.stderr  # the pod state, not only a timeout
    assert "statefulset/ledger did not roll out" in r.stderr


def test_kind_failing_open_on_network_policy_is_said_loudly(tmp_path: Path) -> None:
    """kindnet on WSL2 cannot program nftables: it logs the error and enforces no
    NetworkPolicy. up.sh reads its log and says so (and what to use instead)."""
    broken = "I1207 controller.go:761] error syncing nftables rules /dev/stdin:12:49-56: Error"
    (tmp_path / "wsl").mkdir()
    (tmp_path / "linux").mkdir()
    r, _calls = run_up(tmp_path / "wsl", "kind", FAKE_KINDNET_LOG=broken)
    assert r.returncode == 0, r.stderr
    assert "NetworkPolicies are NOT enforced on this cluster" in r.stderr
    assert "make minikube-up" in r.stderr
    r, _calls = run_up(tmp_path / "linux", "kind")
    assert r.returncode == 0 and "NOT enforced" not in r.stderr


def test_an_existing_kind_cluster_of_another_version_is_not_reused_silently(
    tmp_path: Path,
) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "same").mkdir()
    r, calls = run_up(tmp_path / "old", "kind", FAKE_EXISTING="v1.30.0")
    assert r.returncode != 0
    assert "runs Kubernetes v1.30.0, not the pinned v1.35.8: make kind-down" in r.stderr
    assert not any(c[:2] == ["kind", "create"] for c in calls)
    assert not any("apply" in c for c in calls)  # nothing deployed onto it
    r, calls = run_up(tmp_path / "same", "kind", FAKE_EXISTING="v1.35.8")
    assert r.returncode == 0, r.stderr
    assert not any(c[:2] == ["kind", "create"] for c in calls)  # reused as it is
