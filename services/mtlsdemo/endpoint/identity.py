"""A handshake config from an identity directory, through the one identity loader
(``pki.material.IdentitySource``): the credentials, the stapled status the directory
holds now, and the bundle to trust. Every in-process MTD/1 peer that is not the
sidecar uses it: the trace, `break`, the tour, the benches, the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtlsdemo.handshake import HandshakeConfig, PeerPolicy, Suite
from mtlsdemo.handshake.config import Credentials
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.material import IdentitySource
from mtlsdemo.trust import TrustStore


def identity_config(
    directory: Path,
    suites: tuple[Suite, ...] | None = None,
    peer_ids: tuple[str, ...] = (),
    server_name: str | None = None,
    require_status: str = "hard",
    trace: bool = False,
    show_secrets: bool = False,
) -> HandshakeConfig:
    """An identity directory through the one loader (tls.ocsp included: the
    certs dir's current revocation state is what gets stapled)."""
    m = IdentitySource(directory).current
    kw: dict[str, Any] = {
        "trace": trace,
        "trace_secrets": show_secrets,
        "peer": PeerPolicy(peer_ids, server_name),
        "require_status": require_status,
    }
    if suites:
        kw["suites"] = suites
    try:
        cred = Credentials.from_parts(m.chain, m.key, m.status)
    except (ValueError, TypeError) as e:
        raise PkiError(f"{directory}: unusable identity ({e})") from None
    return HandshakeConfig(cred, TrustStore(m.cas), **kw)
