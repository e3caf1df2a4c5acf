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
    # and the Workload API's messages: an identity may arrive on a socket (pki/workload_api.py)
    "pki": {"mtlsdemo.pki", "mtlsdemo.trust", "mtlsdemo.telemetry", "mtlsdemo._generated.spiffe"},
    "waiting": set(),
    "addresses": set(),
}
FORBIDDEN = {
    "sidecar": {"mtlsdemo.rpc", "mtlsdemo.gateway", "mtlsdemo.ledger", "mtlsdemo.cli"},
    # the relay talks to its host through TunnelHost: no server <-> tunnel cycle
    "sidecar/tunnel": {"mtlsdemo.sidecar.server"},
    "sidecar/observer": {"mtlsdemo.sidecar.server", "mtlsdemo.sidecar.tunnel"},
}


# Every package and root module, by layer: each imports only from layers below it
# (docs/architecture.md draws the same map). A new package must be placed here.
RANK = {
    "__init__": 0,
    "_generated": 0,
    "addresses": 0,
    "logline": 0,
    "steps": 0,
    "trust": 0,
    "waiting": 0,
    "handshake": 1,
    "telemetry": 1,
    "pki": 2,
    "policyfile": 2,
    "agent": 3,  # the Workload API (sidecar, serve and the gateway take identities from it)
    "endpoint": 3,
    "rpc": 3,
    "ledger": 4,
    "sidecar": 4,
    "gateway": 5,  # the ledger's client (it shares ledger.money)
    "mesh": 6,
    "breaking": 7,
    "bench": 8,
    "chaos": 8,
    "explain": 8,
    "wire": 7,
    "console": 9,
    "commands": 10,
    "cli": 11,
    "__main__": 12,
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


def _unit(path: Path) -> str:
    return path.relative_to(PKG).parts[0].removesuffix(".py")


def test_every_package_imports_only_layers_below_it() -> None:
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        me = _unit(path)
        assert me in RANK, f"{me}: place the new package in RANK (and docs/architecture.md)"
        for m in imports(path):
            parts = m.split(".")
            other = parts[1] if len(parts) > 1 else "__init__"
            other = "__init__" if other == "__version__" else other
            if other != me and other in RANK and RANK[other] >= RANK[me]:
                offenders.append(f"{path.relative_to(PKG)} imports {m} (layer {other})")
    assert offenders == []


def _module_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere (top level, functions,
    TYPE_CHECKING blocks alike: a function-local import is still a circle)."""
    names = {}
    for f in PKG.rglob("*.py"):
        rel = f.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        names[name] = f
    graph = {}
    for name, f in names.items():
        out = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    out.add(full if full in names else node.module)
            elif isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
        graph[name] = {m for m in out if m in names and m != name}
    return graph


def test_no_import_circles() -> None:
    graph = _module_graph()
    circles = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            circles.append(" -> ".join(path[path.index(node) :] + [node]))
            return
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, path + [node])
        done.add(node)

    for start in sorted(graph):
        visit(start, [])
    assert circles == []


def test_the_build_under_test_is_the_one_asked_for() -> None:
    """`make test-compiled` sets MTLSDEMO_EXPECT_BUILD=compiled: the unit tier must then
    really import the mypyc extension modules, never fall back to the .py files."""
    import os

    from mtlsdemo.handshake import build

    expected = os.environ.get("MTLSDEMO_EXPECT_BUILD", "interpreted")
    assert build().startswith(expected), build()
