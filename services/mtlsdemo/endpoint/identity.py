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
from mtlsdemo.pki.material import IdentityMaterial, IdentitySource
from mtlsdemo.trust import SpiffeIdError, TrustStore, svid_identity


def own_trust_domain(m: IdentityMaterial) -> str | None:
    """Our own trust domain: peers come from it, or from a domain whose bundle we were
    given (federation); None when our own certificate is not an SVID (then any
    well-formed domain is accepted)."""
    try:
        return svid_identity(m.leaf).trust_domain
    except SpiffeIdError:
        return None


def credentials_and_trust(m: IdentityMaterial, directory: Path) -> tuple[Credentials, TrustStore]:
    """The one step from loaded identity files to what a handshake needs: our
    credentials (chain, key, staple) and the trust store, with our own trust domain
    the only one accepted. The sidecar (per reload) and every in-process peer use it."""
    try:
        cred = Credentials.from_parts(m.chain, m.key, m.status)
        trust = TrustStore(m.cas, trust_domain=own_trust_domain(m), federated=dict(m.federated))
    except (ValueError, TypeError) as e:
        raise PkiError(f"{directory}: unusable identity ({e})") from None
    return cred, trust


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
    cred, trust = credentials_and_trust(m, directory)
    return HandshakeConfig(cred, trust, **kw)
