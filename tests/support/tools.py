"""Tier requirements: a test whose tool is missing skips with the reason, unless
the tool is named in MTLSDEMO_REQUIRE (comma-separated, e.g. "docker,prometheus"):
then it fails (CI)."""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRED = {t.strip() for t in os.environ.get("MTLSDEMO_REQUIRE", "").split(",") if t.strip()}


def require_tool(tool: str, available: bool, why: str) -> None:
    """Skip (or fail, when CI demands the tool) a test whose tool is missing."""
    if available:
        return
    if tool in REQUIRED:
        pytest.fail(f"MTLSDEMO_REQUIRE names {tool!r} but it is unavailable: {why}")
    pytest.skip(f"{tool} unavailable: {why}")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    require_tool(name, path is not None, f"`{name}` is not on PATH")
    return str(path)
