"""Two routes that expect one identity at two addresses keep their session tickets
apart (issue 31, item 6): each server is offered only the tickets it issued."""

from __future__ import annotations

from pathlib import Path

from mtlsdemo.sidecar.config import Route, SidecarConfig
from mtlsdemo.sidecar.server import Sidecar

LEDGER = "spiffe://mtls-demo.local/ns/default/sa/ledger"


def test_routes_to_one_identity_at_two_addresses_have_their_own_ticket_entries(
    pki_dir: Path,
) -> None:
    a = Route(("127.0.0.1", 15001), ("10.0.0.1", 8443), LEDGER)
    b = Route(("127.0.0.1", 15002), ("10.0.0.2", 8443), LEDGER)
    sidecar = Sidecar(SidecarConfig(identity_dir=pki_dir / "gateway", routes=[a, b]))
    peers = {sidecar.client_config(r).ticket_peer for r in (a, b)}
    assert peers == {f"10.0.0.1:8443@{LEDGER}", f"10.0.0.2:8443@{LEDGER}"}
