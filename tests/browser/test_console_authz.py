"""The console on `mtlsdemo run --authz-policy`: a dry-run policy's would-deny count
sits on the edge it would cut (before it is enforced), and a refused handshake's
failure row names the policy that decided it."""

from __future__ import annotations

from pathlib import Path

import pytest
from mtlsdemo.endpoint.dial import handshake
from mtlsdemo.endpoint.identity import identity_config
from playwright.sync_api import expect
from support.identities import CLI_ID, GATEWAY_ID
from support.processes import running_mesh
from support.tools import require_binary

pytestmark = pytest.mark.browser

WAIT = 20_000
LEDGER_ID = "spiffe://mtls-demo.local/ns/default/sa/ledger"
POLICY = f"""
policies:
  - name: ledger-callers
    applies_to: [ledger]
    rules:
      - from: [{{ids: ["{GATEWAY_ID}"]}}]
  - name: lock-out-try
    applies_to: [ledger]
    action: DENY
    mode: dry-run
    rules:
      - from: [{{ids: ["{GATEWAY_ID}"]}}]
  - name: gateway-callers
    applies_to: [gateway]
    rules:
      - from: [{{ids: ["{CLI_ID}"]}}]
"""


def test_a_dry_run_counts_on_its_edge_and_a_refusal_names_its_policy(page, tmp_path: Path) -> None:
    require_binary("chromium")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(WAIT)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    with running_mesh(tmp_path, "--authz-policy", str(policy)) as (ports, _env):
        # the cli's identity at the ledger's sidecar: no ALLOW rule takes it
        cfg = identity_config(tmp_path / "certs" / "cli", peer_ids=(LEDGER_ID,))
        attempt = handshake("127.0.0.1", ports["ledger"], cfg)
        attempt.close()
        assert attempt.error is not None and attempt.error.reason.value == "identity_mismatch"
        page.goto(f"http://127.0.0.1:{ports['console']}/")
        expect(page.get_by_test_id("live")).to_have_text("live")
        edge = page.locator(
            f"[data-testid=edge-row][data-client='{GATEWAY_ID}'][data-server='{LEDGER_ID}']"
        )
        expect(edge.get_by_test_id("edge-would-deny")).to_contain_text("(dry-run: lock-out-try#1)")
        expect(edge.get_by_test_id("edge-health")).not_to_contain_text("fail")  # nothing cut
        row = page.locator(
            f"[data-testid=failure-row][data-reason=identity_mismatch][data-rejected-by='{LEDGER_ID}']"
        )
        expect(row).to_contain_text("'ledger-callers'")
    assert errors == []
