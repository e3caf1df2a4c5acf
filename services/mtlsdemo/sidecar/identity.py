"""The sidecar's identity, re-read when its files change (hot reload).

New handshakes use the newest good material; live tunnels keep the config they
started with. A broken or mismatched new file is refused and counted, and the
previous material stays in use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from mtlsdemo.endpoint.identity import credentials_and_trust
from mtlsdemo.handshake import HandshakeConfig, PeerPolicy
from mtlsdemo.handshake.config import Credentials
from mtlsdemo.handshake.tickets import Revoked, TicketCache, TicketKeys
from mtlsdemo.pki.material import IdentityFeed, IdentityMaterial
from mtlsdemo.sidecar.config import Route, SidecarConfig
from mtlsdemo.trust import TrustStore


@dataclass(frozen=True)
class Loaded:
    material: IdentityMaterial
    credentials: Credentials
    trust: TrustStore
    generation: int
    loaded_at: dt.datetime


class IdentityWatcher:
    """The handshake's view of the one identity source: credentials and a trust
    store (with its verification cache) built once per generation of the files
    (or of the SVIDs a Workload API pushed)."""

    def __init__(self, source: IdentityFeed) -> None:
        self.source = source
        self.current = self._build(self.source.current)

    def _build(self, m: IdentityMaterial) -> Loaded:
        cred, trust = credentials_and_trust(m, self.source.directory)
        return Loaded(m, cred, trust, self.source.generation, self.source.loaded_at)

    @property
    def last_error(self) -> str | None:
        return self.source.last_error

    def check(self) -> bool:
        """Reload if the files changed; True when new material was taken."""
        fresh = self.source.check()
        if fresh is None:
            return False
        self.current = self._build(fresh)
        return True

    def ready(self, now: dt.datetime | None = None) -> tuple[bool, str]:
        now = now or dt.datetime.now(dt.UTC)
        leaf = self.current.material.leaf
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            return (
                False,
                f"certificate not valid now (valid {leaf.not_valid_before_utc} .. {leaf.not_valid_after_utc})",
            )
        for ca in self.current.material.cas:
            if not ca.not_valid_before_utc <= now <= ca.not_valid_after_utc:
                return False, f"CA {ca.subject.rfc4514_string()} not valid now"
        return True, "certificates loaded and valid"


def server_config(
    loaded: Loaded,
    cfg: SidecarConfig,
    tickets: TicketKeys | None = None,
    revoked: Revoked | None = None,
    authorize: Callable[[str], str | None] | None = None,
) -> HandshakeConfig:
    return HandshakeConfig(
        loaded.credentials,
        loaded.trust,
        PeerPolicy(allowed_ids=cfg.allowed_ids, revoked=revoked, authorize=authorize),
        suites=cfg.suites,
        versions=cfg.versions,
        server_preference=cfg.server_preference,
        key_update_records=cfg.key_update_records,
        key_update_bytes=cfg.key_update_bytes,
        require_status=cfg.require_status,
        tickets=tickets,
        keep_secrets=cfg.keylog is not None,
    )


def client_config(
    loaded: Loaded,
    cfg: SidecarConfig,
    route: Route,
    tickets: TicketCache | None = None,
    revoked: Revoked | None = None,
) -> HandshakeConfig:
    return HandshakeConfig(
        loaded.credentials,
        loaded.trust,
        PeerPolicy(allowed_ids=(route.identity,), revoked=revoked),
        suites=cfg.suites,
        versions=cfg.versions,
        key_update_records=cfg.key_update_records,
        key_update_bytes=cfg.key_update_bytes,
        require_status=cfg.require_status,
        ticket_cache=tickets,
        # a ticket is for the server at this address with this identity
        ticket_peer=f"{route.remote[0]}:{route.remote[1]}@{route.identity}",
        keep_secrets=cfg.keylog is not None,
    )
