"""deploy/docker/check-base-image.sh (`make image`'s first step) against a stand-in
docker: a base image that is here or pullable passes; one that is neither gets one
line that says how to build it without a registry, not Docker's pull error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "deploy" / "docker" / "check-base-image.sh"

FAKE = r"""#!/bin/sh
case "$1 $2" in
  "info ") [ -z "$FAKE_NO_DAEMON" ] || exit 1 ;;
  "image inspect") [ "$3" = "$FAKE_PRESENT" ] || exit 1 ;;
  "pull -q") [ "$3" = "$FAKE_PULLABLE" ] || { echo "Error response from daemon: pull access denied" >&2; exit 1; } ;;
esac
exit 0
"""


def check(tmp_path: Path, image: str, **env: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(FAKE)
    (bin_dir / "docker").chmod(0o755)
    fake = {"FAKE_PRESENT": "", "FAKE_PULLABLE": "", "FAKE_NO_DAEMON": "", **env}
    return subprocess.run(
        [str(CHECK), image],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", **fake},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_base_image_that_is_here_passes(tmp_path: Path) -> None:
    r = check(tmp_path, "mtlsdemo-base:bookworm", FAKE_PRESENT="mtlsdemo-base:bookworm")
    assert (r.returncode, r.stderr) == (0, "")


def test_a_base_image_that_can_be_pulled_passes(tmp_path: Path) -> None:
    r = check(tmp_path, "python:3.11-slim-bookworm", FAKE_PULLABLE="python:3.11-slim-bookworm")
    assert (r.returncode, r.stderr) == (0, "")


def test_no_registry_and_no_base_image_says_how_to_build_one_in_one_line(tmp_path: Path) -> None:
    r = check(tmp_path, "python:3.11-slim-bookworm")
    assert r.returncode == 2
    (line,) = r.stderr.splitlines()
    assert line.startswith("error: base image python:3.11-slim-bookworm is not here")
    assert "make base-image" in line and "MTLSDEMO_BASE_IMAGE=mtlsdemo-base:bookworm" in line
    assert "pull access denied" not in r.stderr


def test_no_docker_daemon_is_said_in_one_line(tmp_path: Path) -> None:
    r = check(tmp_path, "mtlsdemo-base:bookworm", FAKE_NO_DAEMON="1")
    assert r.returncode == 2
    (line,) = r.stderr.splitlines()
    assert "Docker is not reachable" in line
