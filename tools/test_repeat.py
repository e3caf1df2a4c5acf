"""Flake hunt: run test tiers N times back to back and print failures per test.

    python tools/test_repeat.py --runs 20 tests/unit tests/integration

Each run is a fresh pytest process writing JUnit XML; the table counts, per
test, the runs in which it failed or errored. Exit status 1 if any run failed.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path


def failures(junit: Path) -> tuple[int, list[str]]:
    """(tests run, ids of the tests that failed or errored) from one JUnit XML file."""
    if not junit.exists():
        return 0, ["<pytest produced no report>"]
    root = ET.parse(junit).getroot()
    ran, bad = 0, []
    for case in root.iter("testcase"):
        ran += 1
        if case.find("failure") is not None or case.find("error") is not None:
            bad.append(f"{case.get('classname')}::{case.get('name')}")
    return ran, bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="how many runs (default 20)")
    ap.add_argument("paths", nargs="*", default=["tests/unit", "tests/integration"])
    args = ap.parse_args(argv)
    if args.runs < 1:
        print(f"error: --runs {args.runs}: must be at least 1", file=sys.stderr)
        return 2
    counts: collections.Counter[str] = collections.Counter()
    failed_runs = 0
    with tempfile.TemporaryDirectory(prefix="test-repeat-") as tmp:
        for i in range(1, args.runs + 1):
            junit = Path(tmp) / f"run-{i}.xml"
            t0 = time.monotonic()
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    f"--junitxml={junit}",
                    *args.paths,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            ran, bad = failures(junit)
            counts.update(bad)
            failed_runs += r.returncode != 0
            verdict = "ok" if r.returncode == 0 else f"FAILED ({', '.join(bad) or r.returncode})"
            print(
                f"run {i:>3}/{args.runs}: {ran} tests in {time.monotonic() - t0:6.1f}s  {verdict}",
                flush=True,
            )
            if r.returncode != 0:
                print(
                    "\n".join("    | " + line for line in r.stdout.splitlines()[-25:]), flush=True
                )
    print(f"\n{'test':<100} failed runs")
    for test, n in counts.most_common():
        print(f"{test:<100} {n:>3}/{args.runs}")
    print(f"{'(every test)' if not counts else '':<100} {'' if counts else f'0/{args.runs}'}")
    print(f"{args.runs - failed_runs} passed, {failed_runs} failed: runs of {' '.join(args.paths)}")
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
