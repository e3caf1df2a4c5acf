"""`mtlsdemo console`, typed (built from the flags in commands/console.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mtlsdemo.addresses import DEFAULT_PORTS, local

if TYPE_CHECKING:
    from mtlsdemo.mesh.client import MeshConfig


@dataclass(frozen=True)
class ConsoleConfig:
    listen: tuple[str, int] = ("127.0.0.1", DEFAULT_PORTS["console"])
    sidecar_admins: tuple[str, ...] = (
        f"http://{local('gateway_admin')}",
        f"http://{local('ledger_admin')}",
    )
    metrics: tuple[str, ...] = ("http://127.0.0.1:9102/metrics", "http://127.0.0.1:9101/metrics")
    # HOST:PORT names to look up again and again, one watch per address (Kubernetes:
    # a headless Service per workload; every pod's sidecar admin and /metrics)
    discover_sidecar_admins: tuple[tuple[str, int], ...] = ()
    discover_metrics: tuple[tuple[str, int], ...] = ()
    poll_interval: float = 1.0  # seconds between /status and /metrics reads
    # the break buttons: only for a local run (`mtlsdemo run` passes it), on loopback
    allow_break: bool = False
    mesh: MeshConfig | None = None
    # where the buttons are off: the command that breaks this mesh from a shell
    # ("{scenario}" in it is replaced), shown by the buttons instead (compose)
    break_command: str = ""
    # Host names besides loopback, IP literals and the --listen host that the page
    # may be reached by (a Service or Ingress name): anything else is refused
    allowed_hosts: tuple[str, ...] = ()
    # the Workload API agents' admins (`run --workload-api`; one per trust domain with
    # `--domains 2`): their SVIDs' countdowns and rotations, watched once a sidecar says
    # its identity comes from an agent
    agent_admins: tuple[str, ...] = ()


def admin_url(text: str) -> str:
    """HOST:PORT or a URL -> the admin's base URL (no trailing slash)."""
    text = text.strip().rstrip("/")
    if not text:
        raise ValueError("empty address")
    if "://" not in text:
        text = "http://" + text
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"{text!r}: only http(s) URLs")
    return text


def metrics_url(text: str) -> str:
    """HOST:PORT or a URL; a bare HOST:PORT means its /metrics."""
    url = admin_url(text)
    host_part = url.split("://", 1)[1]
    return url if "/" in host_part else url + "/metrics"
