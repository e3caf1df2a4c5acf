"""deploy/k8s/verify-on-cluster.sh against a stand-in kubectl: no cluster here, but
its NetworkPolicy check is run against what a real one answers — a probe pod whose
early output an attach never shows (a CRI attach does not replay it)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support.tools import require_binary

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]
VERIFY = ROOT / "deploy" / "k8s" / "verify-on-cluster.sh"

# answers like a cluster that enforces the policy: the probe prints three lines, and
# an attached `run -i` would have shown only the last one
FAKE = r"""#!/usr/bin/env bash
echo "$*" >>"$FAKE_DIR/calls"
shift 4  # --context CTX -n mtlsdemo
case "$*" in
  "get ns mtlsdemo") exit 0 ;;
  "get statefulset ledger "*) echo "mtlsdemo:test" ;;
  "run np-probe "*" -i "*) echo "blocked: connect timed out" ;;  # attached late
  "run np-probe "*) echo "pod/np-probe created" ;;
  "wait --for=jsonpath={.status.phase}=Succeeded pod/np-probe "*) exit 0 ;;
  "logs np-probe") printf 'probe healthy\nresolved 10.96.0.12\nblocked: connect timed out\n' ;;
  "delete pod np-probe "*) exit 0 ;;
  "get job "*) echo "Failed " ;;   # every Job fails in seconds
  "logs job/"*) echo "error: secrets is forbidden" ;;
  *) exit 1 ;;  # every other check fails at once: only the probe's verdict is read
esac
"""


def verify_against_the_stand_in(tmp_path: Path, timeout: float) -> subprocess.CompletedProcess:
    """verify-on-cluster.sh with the stand-in kubectl above (its calls in FAKE_DIR)."""
    fake = tmp_path / "kubectl"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    return subprocess.run(
        ["bash", str(VERIFY), "kind-test"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "KUBECTL": str(fake), "FAKE_DIR": str(tmp_path)},
    )


def test_the_networkpolicy_check_reads_the_probes_whole_log(tmp_path: Path) -> None:
    require_binary("python3")
    r = verify_against_the_stand_in(tmp_path, timeout=120)
    table = [line for line in r.stdout.splitlines() if "ledger:8443" in line]
    blocked = next(line for line in table if line.startswith("other pods cannot reach"))
    assert " pass " in blocked, r.stdout + r.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    run = [c for c in calls if " run np-probe " in c]
    assert len(run) == 1 and " -i " not in run[0] and " --rm " not in run[0]
    assert any(c.endswith(" logs np-probe") for c in calls)
    assert r.returncode == 1  # the other checks failed against the stand-in


def test_a_job_that_fails_in_seconds_fails_its_check_at_once(tmp_path: Path) -> None:
    # the old `kubectl wait` sat out 60 + 180 + 120 s
    r = verify_against_the_stand_in(tmp_path, timeout=60)
    line = next(x for x in r.stdout.splitlines() if x.startswith("bootstrap Job complete"))
    assert " FAIL " in line and "job/cert-bootstrap failed" in line, r.stdout
    assert "secrets is forbidden" in line  # its last log lines, in the table
