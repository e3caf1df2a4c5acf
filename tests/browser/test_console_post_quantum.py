"""The console on a mesh of ML-DSA identities and the hybrid suite (issue 26): every
edge, the caller's MTD/1 edge into the gateway among them, says "quantum-safe key
exchange" and "quantum-safe identities", and a ladder says which signature proved
each identity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from support.browser import shot
from support.processes import running_mesh
from support.tools import require_binary

pytestmark = pytest.mark.browser

WAIT = 15_000
CLI, GATEWAY, LEDGER = (
    f"spiffe://mtls-demo.local/ns/default/sa/{s}" for s in ("cli", "gateway", "ledger")
)


@pytest.fixture(scope="module")
def pq_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    require_binary("chromium")
    root = tmp_path_factory.mktemp("pq-console")
    with running_mesh(root, "--key-type", "ml-dsa-65", "--traffic-seconds", "1") as (ports, _env):
        yield ports


def test_every_edge_of_an_ml_dsa_mesh_is_labelled_quantum_safe(page, pq_mesh, shots: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(WAIT)
    page.goto(f"http://127.0.0.1:{pq_mesh['console']}/")
    expect(page.get_by_test_id("live")).to_have_text("live")
    for client, server in ((CLI, GATEWAY), (GATEWAY, LEDGER)):
        row = page.locator(
            f"[data-testid=edge-row][data-client='{client}'][data-server='{server}']"
            "[data-path='MTD/1']"
        )
        expect(row.get_by_test_id("edge-kx")).to_have_text("quantum-safe key exchange")
        expect(row.get_by_test_id("edge-ids")).to_have_text("quantum-safe identities")
        expect(row.get_by_test_id("edge-ids")).to_have_attribute("data-quantum-safe", "true")
        expect(
            page.locator(f"[data-testid=mesh-edge][data-client='{client}'][data-server='{server}']")
        ).to_have_count(1)
    # the cli calls over MTD/1 with a sidecar inside its own process: not "no sidecar"
    expect(page.locator(f"[data-testid=mesh-node][data-id='{CLI}']")).to_contain_text(
        "its sidecar runs in its process"
    )
    page.locator(f"[data-testid=edge-row][data-client='{GATEWAY}'][data-server='{LEDGER}']").click()
    expect(page.get_by_test_id("ladder-verdict").first).to_contain_text("both sides verified")
    expect(page.get_by_test_id("ladder-pq")).to_be_visible()
    expect(page.get_by_test_id("ladder-pq-identity")).to_contain_text(
        "signed the transcript with MLDSA65"
    )
    # the in-memory panel starts from what this mesh runs
    expect(page.get_by_test_id("try-key-type")).to_have_value("ml-dsa-65")
    expect(page.get_by_test_id("try-suite")).to_have_value("X25519MLKEM768-AES-256-GCM")
    # the mesh and its edges only: a whole page shrinks to unreadable text at doc width
    shot(page.locator("#mesh-section"), shots / "post-quantum-mesh.png")
    assert errors == [], errors
