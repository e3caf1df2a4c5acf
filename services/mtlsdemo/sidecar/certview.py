"""/certificates: this sidecar's identity as public facts — its chain, the CAs it
trusts, its stapled status — and where a CA rollover stands, read from the trust
bundle alone (no access to the CA's state is needed, or given)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mtlsdemo.pki.material import IdentityMaterial
from mtlsdemo.trust.certinfo import certificate_facts, staple_facts
from mtlsdemo.trust.verify import issued_by


def rollover_stage(material: IdentityMaterial) -> dict[str, str]:
    """The stages of `certs rotate-ca` as a peer sees them: one CA; two trusted and
    the old one signing (prepare); two trusted and the new one signing (switch)."""
    cas = sorted(material.cas, key=lambda c: c.not_valid_before_utc)
    if len(cas) < 2:
        return {"stage": "steady", "text": "one CA trusted, and it signed this identity"}
    signer = next((c for c in cas if issued_by(material.leaf, c)), None)
    if signer is cas[-1]:
        return {
            "stage": "switch",
            "text": f"{len(cas)} CAs trusted; the newest signed this identity "
            "(finish retires the old one)",
        }
    return {
        "stage": "prepare",
        "text": f"{len(cas)} CAs trusted; an older one still signed this identity "
        "(switch re-issues it under the new CA)",
    }


def certificates_view(
    material: IdentityMaterial, generation: int, loaded_at: dt.datetime
) -> dict[str, Any]:
    return {
        "identity": material.identity,
        "chain": [certificate_facts(c) for c in material.chain],
        "trust_bundle": [certificate_facts(c) for c in material.cas],
        "stapled_status": staple_facts(material.status),
        "rollover": rollover_stage(material),
        "reload_generation": generation,
        "loaded_at": loaded_at.isoformat(),
        "problems": list(material.problems),
    }
