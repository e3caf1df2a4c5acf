"""The pods tier's shared fixture: the image under the content tag up.sh gives it."""

from __future__ import annotations

import subprocess

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
