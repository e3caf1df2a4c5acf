"""The hash-locked dependency sets (requirements/*.lock, `make lock`; issue 29): every
requirement of pyproject.toml is pinned there at a version it allows, and every pin
carries hashes, so `pip install --require-hashes` on a fresh machine gets exactly the
tested set. A dependency added or narrowed without `make lock` fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQ = ROOT / "requirements"


def pins(lock: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes)."""
    out: dict[str, tuple[str, int]] = {}
    current = None
    for line in lock.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            current = canonicalize_name(m.group(1))
            out[current] = (m.group(2), 0)
        elif current and "--hash=sha256:" in line:
            version, n = out[current]
            out[current] = (version, n + 1)
    return out


def _inputs(*names: str, extra: bool = False) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    if extra:
        reqs += [Requirement(r) for r in project["optional-dependencies"]["dev"]]
    for name in names:
        for line in (REQ / name).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                reqs.append(Requirement(line))
    return [r for r in reqs if r.marker is None or r.marker.evaluate()]


def _inputs_of(name: str) -> list[Requirement]:
    lines = (REQ / name).read_text().splitlines()
    return [Requirement(x) for x in lines if x.strip() and not x.startswith("#")]


@pytest.mark.parametrize(
    ("lock", "reqs"),
    [
        ("runtime.lock", _inputs("build.in")),
        ("dev.lock", _inputs("build.in", extra=True)),
        ("sbom.lock", [Requirement(x) for x in ["cyclonedx-bom>=7"]]),
        ("compile.lock", _inputs_of("compile.in")),
    ],
)
def test_the_lock_pins_every_requirement_at_an_allowed_version(lock: str, reqs) -> None:
    locked = pins(REQ / lock)
    for r in reqs:
        name = canonicalize_name(r.name)
        assert name in locked, f"{lock}: {r.name} is not locked: run `make lock`"
        version, _ = locked[name]
        assert r.specifier.contains(version, prereleases=True), (
            f"{lock}: {r.name}=={version} does not satisfy {r.specifier}: run `make lock`"
        )


@pytest.mark.parametrize("lock", ["runtime.lock", "dev.lock", "sbom.lock", "compile.lock"])
def test_every_pin_carries_hashes(lock: str) -> None:
    locked = pins(REQ / lock)
    assert locked, f"{lock} pins nothing"
    assert [n for n, (_v, hashes) in locked.items() if hashes == 0] == []


def test_the_runtime_lock_is_the_dev_locks_runtime_part() -> None:
    """make run and make test install the same versions of what both need."""
    runtime, dev = pins(REQ / "runtime.lock"), pins(REQ / "dev.lock")
    assert {n: v for n, (v, _) in runtime.items()} == {n: dev[n][0] for n in runtime if n in dev}
    assert set(runtime) <= set(dev)


def test_the_image_compiles_with_the_compiler_make_test_compiled_tests() -> None:
    """The image's mypyc (compile.lock) is the one `make test-compiled` runs (dev.lock)."""
    compile_, dev = pins(REQ / "compile.lock"), pins(REQ / "dev.lock")
    assert {n: v for n, (v, _) in compile_.items()} == {n: dev[n][0] for n in compile_}
