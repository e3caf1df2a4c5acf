"""The sidecar's identity, re-read when its files change (hot reload).

New handshakes use the newest good material; live tunnels keep the config they
started with. A broken or mismatched new file is refused and counted, and the
previous material stays in use.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from mtlsdemo import telemetry
from mtlsdemo.handshake import HandshakeConfig, PeerPolicy
from mtlsdemo.handshake.config import Credentials
from mtlsdemo.handshake.peer import TrustStore
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.material import IdentityMaterial, files_stamp
from mtlsdemo.sidecar.config import SidecarConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    material: IdentityMaterial
    credentials: Credentials
    trust: TrustStore
    generation: int
    loaded_at: dt.datetime


class IdentityWatcher:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._stamp = files_stamp(directory)
        self.current = self._load(0)
        self.last_error: str | None = None

    def _load(self, generation: int) -> Loaded:
        m = IdentityMaterial.load(self.directory)
        try:
            cred = Credentials.from_pem(m.cert_chain_pem, m.key_pem)
            trust = TrustStore(m.cas)
        except (ValueError, TypeError) as e:
            raise PkiError(f"{self.directory}: unusable identity ({e})") from None
        telemetry.export_certificate_expiry(m)
        return Loaded(m, cred, trust, generation, dt.datetime.now(dt.UTC))

    def check(self) -> bool:
        """Reload if the files changed; True when new material was taken."""
        stamp = files_stamp(self.directory)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            fresh = self._load(self.current.generation + 1)
        except PkiError as e:
            telemetry.CERT_RELOADS.labels("failure").inc()
            self.last_error = str(e)
            log.error("certificate reload rejected, keeping %s (serial %x): %s",
                      self.current.material.identity, self.current.material.leaf.serial_number, e)
            return False
        self.current = fresh
        self.last_error = None
        telemetry.CERT_RELOADS.labels("success").inc()
        log.info("certificate reloaded: %s serial %x, expires %s", fresh.material.identity,
                 fresh.material.leaf.serial_number, fresh.material.leaf.not_valid_after_utc)
        return True

    def ready(self, now: dt.datetime | None = None) -> tuple[bool, str]:
        now = now or dt.datetime.now(dt.UTC)
        leaf = self.current.material.leaf
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            return False, f"certificate not valid now (valid {leaf.not_valid_before_utc} .. {leaf.not_valid_after_utc})"
        for ca in self.current.material.cas:
            if not ca.not_valid_before_utc <= now <= ca.not_valid_after_utc:
                return False, f"CA {ca.subject.rfc4514_string()} not valid now"
        return True, "certificates loaded and valid"


def server_config(loaded: Loaded, cfg: SidecarConfig) -> HandshakeConfig:
    return HandshakeConfig(
        loaded.credentials, loaded.trust, PeerPolicy(allowed_ids=cfg.allowed_ids),
        suites=cfg.suites, server_preference=cfg.server_preference,
        key_update_records=cfg.key_update_records, key_update_bytes=cfg.key_update_bytes)


def client_config(loaded: Loaded, cfg: SidecarConfig, peer_identity: str) -> HandshakeConfig:
    return HandshakeConfig(
        loaded.credentials, loaded.trust, PeerPolicy(allowed_ids=(peer_identity,)),
        suites=cfg.suites, key_update_records=cfg.key_update_records,
        key_update_bytes=cfg.key_update_bytes)
