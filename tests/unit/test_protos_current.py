"""The committed services/mtlsdemo/_generated matches what `make protos` emits now."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_current(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "tools" / "gen_protos.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_protos"] = mod
    spec.loader.exec_module(mod)
    fresh = tmp_path / "_generated"
    mod.generate(fresh)
    committed = ROOT / "services" / "mtlsdemo" / "_generated"

    def files(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        }

    stale = files(fresh) != files(committed)
    assert not stale, "services/mtlsdemo/_generated is stale: run `make protos` and commit"
