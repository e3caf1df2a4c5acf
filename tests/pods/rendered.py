"""What deploy/k8s/render.sh renders, as objects: the pods tier runs exactly that."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from kubelet import load_rendered

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
