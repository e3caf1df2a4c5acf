"""What deploy/k8s/render.sh renders, as objects: the pods tier runs exactly that."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubelet import Cluster, Pod, find, load_rendered

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def render(*args: str, identities: str = "files", key_type: str = "ecdsa-p256") -> list[dict]:
    """``render.sh ARGS`` with ``MTLSDEMO_IDENTITIES`` (files or workload-api) and
    ``MTLSDEMO_KEY_TYPE`` (ecdsa-p256, or ml-dsa-65: the post-quantum mesh)."""
    r = subprocess.run(
        [str(K8S / "render.sh"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "MTLSDEMO_IDENTITIES": identities, "MTLSDEMO_KEY_TYPE": key_type},
    )
    assert r.returncode == 0, r.stderr
    return load_rendered(r.stdout)


@contextmanager
def running(objects: list[dict], workdir: Path, tag: str) -> Iterator[Cluster]:
    """The rendered objects' cluster, its node holding exactly what `kind load
    docker-image` put there: the image under its content tag."""
    c = Cluster(objects, workdir, node_images=[tag], pause_image=tag)
    try:
        yield c.start()
    finally:
        c.close()


def apply_together(cluster: Cluster, *workloads: tuple[str, str]) -> list[Any]:
    """(kind, name) started at once, as `kubectl apply` starts them: a Job run to
    completion, the rest rolled out; the pods wait for the Secrets the Job writes.
    Each one's result, in order (a Job's pod, a workload's pods)."""
    with ThreadPoolExecutor(len(workloads)) as pool:
        started = [
            pool.submit(
                cluster.run_job if kind == "Job" else cluster.rollout,
                find(cluster.objects, kind, name),
            )
            for kind, name in workloads
        ]
    return [f.result() for f in started]


def foreign_ca_check(gateway: Pod) -> subprocess.CompletedProcess[str]:
    """deploy/k8s/checks/foreign-ca.sh in a gateway pod's sidecar container, as
    verify-on-cluster.sh runs it: a leaf from another CA presented to the ledger."""
    script = (K8S / "checks" / "foreign-ca.sh").read_text()
    return subprocess.run(
        ["docker", "exec", gateway.containers["sidecar"].docker_id, "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
