"""What every `break` scenario shares: its report, the sidecars' counters before and
after, and the trigger through the gateway sidecar's route (a new tunnel)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mtlsdemo.mesh.client import LocalMesh, delta, through_route
from mtlsdemo.waiting import WaitTimeout, wait_until


@dataclass
class Report:
    name: str
    lines: list[str] = field(default_factory=list)
    ok: bool = True  # the failure happened as described and the mesh came back
    skipped: bool = False  # the scenario does not apply to this mesh (said why)

    def add(self, label: str, text: str) -> None:
        self.lines.append(f"   {label:<9} {text}")

    def fail(self, text: str) -> None:
        self.ok = False
        self.add("!!", text)


def report_metrics(
    r: Report, mesh: LocalMesh, before: dict[str, object], expect: list[tuple[str, str, str, str]]
) -> None:
    """Wait for the expected counter increases ((sidecar, role, reason, origin)),
    then print every delta seen."""
    admins = {
        "ledger-sidecar": mesh.config.ledger_admin,
        "gateway-sidecar": mesh.config.gateway_admin,
    }

    def deltas() -> dict[str, dict[Any, int]]:
        return {n: delta(before[n], mesh.handshakes(a)) for n, a in admins.items()}  # type: ignore[arg-type]

    def seen() -> bool:
        d = deltas()
        return all(d[s].get((role, reason, origin), 0) >= 1 for s, role, reason, origin in expect)

    try:
        wait_until(
            seen, timeout=mesh.config.timeout + 10, what="the sidecars to count it", interval=0.2
        )
    except WaitTimeout:
        r.fail(f"expected counts not seen: {expect}")
    for name, d in deltas().items():
        for (role, reason, origin), n in sorted(d.items()):
            r.add(
                "metrics",
                f'{name}: mtls_handshakes_total{{role="{role}",reason="{reason}",origin="{origin}"}} +{n}',
            )


def snapshot(mesh: LocalMesh) -> dict[str, object]:
    return {
        "ledger-sidecar": mesh.handshakes(mesh.config.ledger_admin),
        "gateway-sidecar": mesh.handshakes(mesh.config.gateway_admin),
    }


def through_the_mesh(mesh: LocalMesh, r: Report, reason: str) -> None:
    before = snapshot(mesh)
    said = through_route(mesh.config.route, mesh.config.timeout)
    r.add(
        "trigger",
        "a new connection into the gateway sidecar's route "
        f"{mesh.config.route[0]}:{mesh.config.route[1]} (a new handshake with the ledger's)",
    )
    r.add("result", said)
    if said == "the ledger answered":
        r.fail("expected the ledger's sidecar to refuse the gateway's")
    recent = [
        h
        for h in mesh.status(mesh.config.ledger_admin)["recent_handshakes"]
        if h["outcome"] == reason
    ]
    if recent:
        r.add("", f"the ledger's sidecar refused the gateway's: {reason} — {recent[0]['detail']}")
    report_metrics(
        r,
        mesh,
        before,
        [
            ("ledger-sidecar", "server", reason, "local"),
            ("gateway-sidecar", "client", reason, "remote_unverified"),
        ],
    )
