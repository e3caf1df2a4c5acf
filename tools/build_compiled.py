"""The compiled build (issue 25): the handshake core and the verifier compiled ahead
of time with mypyc (part of mypy, a dev dependency: typed Python in, C extensions out),
into build/compiled/. The same source runs interpreted everywhere else; put
build/compiled first on PYTHONPATH to run the compiled one (`make test-compiled`).

mypyc needs a C compiler and the interpreter's headers; without them this says so in
one line and exits 2 (the interpreted build is unaffected)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "compiled"
# what the profile says the per-handshake and per-record path spends Python on
COMPILED = ("mtlsdemo/handshake", "mtlsdemo/trust")


def main() -> int:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        print("build_compiled: no C compiler (apt-get install gcc); the interpreted build "
              "is unaffected", file=sys.stderr)  # fmt: skip
        return 2
    mypyc = Path(sys.executable).with_name("mypyc")
    if not mypyc.exists():
        print(f"build_compiled: {mypyc} missing (pip install -e '.[dev]')", file=sys.stderr)
        return 2
    if OUT.exists():
        shutil.rmtree(OUT)
    shutil.copytree(
        ROOT / "services" / "mtlsdemo",
        OUT / "mtlsdemo",
        ignore=shutil.ignore_patterns("__pycache__", "*.so"),
    )
    r = subprocess.run(
        [str(mypyc), *COMPILED], cwd=OUT, capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        errors = [line for line in r.stdout.splitlines() if ": error:" in line]
        print("build_compiled: mypyc failed:\n" + "\n".join(errors or [r.stdout[-2000:], r.stderr[-2000:]]),
              file=sys.stderr)  # fmt: skip
        return 1
    built = sorted(p for p in (OUT / "mtlsdemo").rglob("*.so"))
    print(f"build_compiled: {len(built)} extension modules in {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
