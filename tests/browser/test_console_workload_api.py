"""The console on a mesh whose identities come from a Workload API agent (`run
--workload-api --svid-ttl 20s`): each workload's SVID counts down to its renewal
and expiry, and its rotations are listed as the agent pushes them."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect
from support.browser import shot
from support.processes import running_mesh
from support.tools import require_binary

pytestmark = pytest.mark.browser

WAIT = 20_000


def test_each_workloads_svid_counts_down_and_its_rotations_are_listed(
    page, tmp_path: Path, shots: Path
) -> None:
    require_binary("chromium")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(WAIT)
    with running_mesh(tmp_path, "--workload-api", "--svid-ttl", "20s") as (ports, _env):
        page.goto(f"http://127.0.0.1:{ports['console']}/")
        expect(page.get_by_test_id("live")).to_have_text("live")
        for workload in ("gateway", "ledger"):
            card = page.locator(f"[data-testid=svid-card][data-workload={workload}]")
            expect(card).to_contain_text("SVID from the Workload API")
            expect(card.get_by_test_id("svid-countdown")).to_contain_text("left · renews in")
        ledger = page.locator("[data-testid=svid-card][data-workload=ledger]")
        first = ledger.get_by_test_id("svid-countdown").inner_text()
        # the page ticks on its own: the countdown moves without a new view
        expect(ledger.get_by_test_id("svid-countdown")).not_to_have_text(first)
        # a renewal is pushed to the sidecar and listed: two rotations, newest first
        expect(ledger.get_by_test_id("svid-history").locator("li")).to_have_count(2, timeout=30_000)
        expect(ledger).to_contain_text("rotation #1")
        shot(page.get_by_test_id("svids"), shots / "console-svids.png")
    assert errors == []


def test_a_cross_domain_edge_says_which_bundle_verified_each_side(page, tmp_path: Path) -> None:
    """`run --domains 2`: the gateway -> ledger edge crosses two trust domains; the
    console says each side checked the other against the peer's own domain's bundle."""
    require_binary("chromium")
    page.set_default_timeout(WAIT)
    with running_mesh(tmp_path, "--domains", "2", "--traffic-seconds", "1") as (ports, _env):
        page.goto(f"http://127.0.0.1:{ports['console']}/")
        expect(page.get_by_test_id("live")).to_have_text("live")
        row = page.locator(
            "[data-testid=edge-row][data-client='spiffe://mtls-demo.local/ns/default/sa/gateway']"
            "[data-server='spiffe://b.mtls-demo.local/ns/default/sa/ledger']"
        )
        expect(row.get_by_test_id("edge-federated")).to_have_text(
            "federated: the server checked the client against mtls-demo.local's bundle, "
            "the client the server against b.mtls-demo.local's"
        )
        # an edge inside one domain says nothing of the kind
        cli = page.locator(
            "[data-testid=edge-row][data-client='spiffe://mtls-demo.local/ns/default/sa/cli']"
        )
        expect(cli.get_by_test_id("edge-federated")).to_have_count(0)
        # each domain's agent on the page: the gateway's SVID from A's, the ledger's from B's
        for workload, td in (("gateway", "mtls-demo.local"), ("ledger", "b.mtls-demo.local")):
            card = page.locator(f"[data-testid=svid-card][data-workload={workload}]")
            expect(card).to_contain_text(f"trust domain {td}, its own agent")
