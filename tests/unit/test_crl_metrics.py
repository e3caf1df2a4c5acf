"""A process that checks no CRL exports no CRL series (a nextUpdate of 0 read as "57
years past" fired a critical alert on a healthy mesh); once it loads one, it does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from pathlib import Path
from prometheus_client import REGISTRY, generate_latest
from mtlsdemo import telemetry
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.crlfile import CrlFile
from mtlsdemo.pki.material import IdentitySource

before = generate_latest(REGISTRY).decode()
out = Path(sys.argv[1])
bootstrap(BootstrapRequest(out=out, services=("ledger",)))
crl = CrlFile(out / "ca" / "crl.pem", lambda: IdentitySource(out / "ledger").current.cas)
crl.check()
after = generate_latest(REGISTRY).decode()
print("BEFORE", "mtls_crl_next_update_timestamp_seconds" in before, "mtls_crl_revoked_serials" in before)
line = [l for l in after.splitlines() if l.startswith("mtls_crl_next_update_timestamp_seconds ")]
print("AFTER", line)
"""


def test_no_crl_no_series_and_a_loaded_crl_exports_its_next_update(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "certs")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "BEFORE False False" in r.stdout
    after = r.stdout.split("AFTER ", 1)[1]
    value = float(after.split()[1].rstrip("']"))
    assert value > 1.7e9  # a real nextUpdate, not 0
