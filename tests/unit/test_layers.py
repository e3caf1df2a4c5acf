"""The import rules of docs/architecture.md: layers import downwards only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "services" / "mtlsdemo"

# package -> the mtlsdemo modules it may import (prefixes)
ALLOWED = {
    "trust": {"mtlsdemo.trust"},
    "handshake": {"mtlsdemo.handshake", "mtlsdemo.trust"},
    "pki": {"mtlsdemo.pki", "mtlsdemo.trust", "mtlsdemo.telemetry"},
    "waiting": set(),
    "addresses": set(),
}
FORBIDDEN = {
    "sidecar": {"mtlsdemo.rpc", "mtlsdemo.gateway", "mtlsdemo.ledger", "mtlsdemo.cli"},
    # the relay talks to its host through TunnelHost: no server <-> tunnel cycle
    "sidecar/tunnel": {"mtlsdemo.sidecar.server"},
    "sidecar/observer": {"mtlsdemo.sidecar.server", "mtlsdemo.sidecar.tunnel"},
}


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in out if m == "mtlsdemo" or m.startswith("mtlsdemo.")}


def files(name: str) -> list[Path]:
    return sorted((PKG / name).rglob("*.py")) if (PKG / name).is_dir() else [PKG / f"{name}.py"]


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_below(layer: str) -> None:
    for f in files(layer):
        bad = {
            m
            for m in imports(f)
            if not any(m == a or m.startswith(a + ".") for a in ALLOWED[layer]) and m != "mtlsdemo"
        }
        assert not bad, f"{f.relative_to(PKG)} imports {sorted(bad)}"


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_never_imports(layer: str) -> None:
    for f in files(layer):
        bad = {
            m for m in imports(f) if any(m == a or m.startswith(a + ".") for a in FORBIDDEN[layer])
        }
        assert not bad, f"{f.relative_to(PKG)} imports {sorted(bad)}"


def test_the_handshake_core_reads_no_clock_and_no_randomness() -> None:
    """No module of handshake/ imports os, time, random or secrets, calls a
    ``now()`` or generates a key itself: the caller's now, clock and entropy only."""
    for f in files("handshake"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                assert not {n for n in names if n in ("os", "time", "random", "secrets")}, (
                    f"{f.relative_to(PKG)} imports {names}"
                )
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in (
                    "now",
                    "urandom",
                    "generate",
                    "generate_private_key",
                    "perf_counter",
                    "monotonic",
                    "time",
                ), f"{f.relative_to(PKG)}:{node.lineno} calls .{node.func.attr}()"


def test_nothing_below_the_commands_sees_argparse() -> None:
    """Commands turn flags into typed configs at the edge (commands/*, via
    commands.common.typed); below them no module imports argparse or takes a
    Namespace."""
    root = Path(__file__).resolve().parents[2] / "services" / "mtlsdemo"
    allowed = {root / "cli.py", root / "commands/flags.py"}
    offenders = []
    for path in root.rglob("*.py"):
        if path in allowed or "commands" in path.relative_to(root).parts:
            continue
        text = path.read_text()
        if "import argparse" in text or "Namespace" in text:
            offenders.append(str(path.relative_to(root)))
    assert offenders == []
