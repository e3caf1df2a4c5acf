"""The first `make run` on a new machine: a Python older than 3.11 is told in one line,
and a virtual environment an interrupted first run left without pip is made again
(it used to fail every later run with "No module named pip")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "ensure_venv.sh"


def run(python: str, venv: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT), python, str(venv)], capture_output=True, text=True, timeout=300, check=False
    )


def test_an_older_python_gets_one_line_and_no_venv(tmp_path: Path) -> None:
    old = tmp_path / "python3.10"  # answers like a 3.10 interpreter
    old.write_text('#!/bin/sh\ncase "$1" in --version) echo "Python 3.10.12";; *) exit 1;; esac\n')
    old.chmod(0o755)
    r = run(str(old), tmp_path / "venv")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"error: mtlsdemo needs Python >= 3.11 ({old}: Python 3.10.12); run: make run "
        "PYTHON=python3.11 (or newer)"
    ]
    assert not (tmp_path / "venv").exists()


def test_a_venv_left_without_pip_is_made_again(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    broken = subprocess.run([str(venv / "bin" / "python"), "-c", "import pip"], check=False)
    assert broken.returncode != 0  # what an interrupted first run leaves
    r = run(sys.executable, venv)
    assert r.returncode == 0, r.stderr
    assert "incomplete" in r.stdout
    ok = subprocess.run([str(venv / "bin" / "python"), "-c", "import pip"], check=False)
    assert ok.returncode == 0
    again = run(sys.executable, venv)  # a good one is kept as it is
    assert again.returncode == 0 and again.stdout == ""
