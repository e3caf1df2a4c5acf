"""Which identity a long-running process follows: its identity directory's files
(``material.IdentitySource``) or the SVIDs a Workload API agent pushes
(``workload_api.WorkloadApiSource``); both are an ``IdentityFeed``."""

from __future__ import annotations

from pathlib import Path

from mtlsdemo.pki.material import IdentityFeed, IdentitySource


def identity_feed(directory: Path, workload_api: str | None = None) -> IdentityFeed:
    """The directory's files, or the agent at ``workload_api`` (a Unix socket)."""
    if workload_api:
        from mtlsdemo.pki.workload_api import WorkloadApiSource  # grpc: only in this mode

        return WorkloadApiSource(workload_api)
    return IdentitySource(directory)
