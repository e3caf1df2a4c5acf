"""A setting that weakens checking never takes effect silently: an environment twin
that does is said in one loud line, and ``mtlsdemo run`` does not hand its
MTLSDEMO_* environment to its children (the audit's leftover
MTLSDEMO_REQUIRE_STATUS=off turned status checks off in both sidecars unseen)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mtlsdemo.cli import build_parser
from mtlsdemo.commands import flags
from mtlsdemo.mesh.supervisor import child_environment, dropped_twins


def parse(argv: list[str]):
    return flags.resolve_lists(build_parser().parse_args(argv))


@pytest.mark.parametrize(
    ("twin", "value", "said"),
    [
        ("MTLSDEMO_REQUIRE_STATUS", "off", "stapled status checking is off"),
        ("MTLSDEMO_REQUIRE_STATUS", "soft", "stapled status checking is soft"),
        ("MTLSDEMO_SUITES", "RSA-OAEP-AES-256-GCM", "RSA key transport"),
        ("MTLSDEMO_MAX_HANDSHAKES_PER_SOURCE", "0", "no per-source cap"),
        ("MTLSDEMO_KEYLOG", "/tmp/keys", "key log on"),
        ("MTLSDEMO_VERSIONS", "1.2,1.1", "older MTD/1 versions accepted"),
    ],
)
def test_a_weakening_twin_is_said_loudly(monkeypatch, twin: str, value: str, said: str) -> None:
    monkeypatch.setenv(twin, value)
    lines = flags.weakened(parse(["sidecar", "--route", "127.0.0.1:1=a:2@spiffe://x/y"]))
    assert len(lines) == 1 and lines[0].startswith(f"!! {twin} (from the environment)")
    assert said in lines[0]


def test_a_harmless_twin_or_a_flag_is_not_nagged(monkeypatch) -> None:
    monkeypatch.setenv("MTLSDEMO_REQUIRE_STATUS", "hard")
    assert flags.weakened(parse(["sidecar"])) == []
    monkeypatch.delenv("MTLSDEMO_REQUIRE_STATUS")
    assert flags.weakened(parse(["sidecar", "--require-status", "off"])) == []  # said by hand


def test_the_cli_prints_the_line_before_anything_else(tmp_path) -> None:
    env = {"MTLSDEMO_REQUIRE_STATUS": "off", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "mtlsdemo", "sidecar", "--identity-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    first = out.stderr.splitlines()[0]
    assert first.startswith("!! MTLSDEMO_REQUIRE_STATUS (from the environment) weakens")


def test_run_hands_no_twin_to_its_children(monkeypatch) -> None:
    monkeypatch.setenv("MTLSDEMO_REQUIRE_STATUS", "off")
    monkeypatch.setenv("PYTHONHASHSEED", "1")
    env = child_environment()
    assert "MTLSDEMO_REQUIRE_STATUS" not in env and env["PYTHONHASHSEED"] == "1"
    assert "MTLSDEMO_REQUIRE_STATUS" in dropped_twins()
