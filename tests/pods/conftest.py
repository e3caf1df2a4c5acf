"""The pods tier's shared fixtures: the image under the content tag up.sh gives it,
and the stand-in for the public Prometheus image."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from rendered import K8S
from support.tools import require_binary


@pytest.fixture(scope="module")
def tag(image: str) -> str:
    require_binary("kubectl")
    r = subprocess.run(
        [str(K8S / "image-tag.sh"), image], capture_output=True, text=True, timeout=60, check=True
    )
    return r.stdout.strip()


@pytest.fixture(scope="session")
def prometheus_image(image: str) -> str:
    """The public Prometheus image's stand-in: Debian's prometheus package on the same
    base as the project's image (prometheus-image/Dockerfile; no registry here)."""
    from support.docker import BASE

    tag = "mtlsdemo-prometheus:test"
    r = subprocess.run(
        ["docker", "build", "-q", "--build-arg", f"BASE_IMAGE={BASE}", "-t", tag,
         str(Path(__file__).parent / "prometheus-image")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return tag
