"""Certificate directories for tests, issued by the project's own CA code (the same
files `certs bootstrap` writes), and the workload IDs the local mesh uses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mtlsdemo.pki.ca import CertificateAuthority, load_ca
from mtlsdemo.pki.files import cert_pem
from mtlsdemo.pki.identity import ServiceIdentity
from mtlsdemo.pki.issue import write_identity_dir
from mtlsdemo.trust.spiffe import DEFAULT_TRUST_DOMAIN, workload_id

GATEWAY_ID = workload_id(DEFAULT_TRUST_DOMAIN, "default", "gateway")
LEDGER_ID = workload_id(DEFAULT_TRUST_DOMAIN, "default", "ledger")
CLI_ID = workload_id(DEFAULT_TRUST_DOMAIN, "default", "cli")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_identity_dir(
    out: Path,
    ca: CertificateAuthority,
    service: str,
    *,
    at: dt.datetime | None = None,
    days: float = 30,
    key_type: str = "ecdsa-p256",
) -> Path:
    """An identity directory with a leaf issued as if ``at`` were now (past: expired),
    and its stapled status."""
    # the CA's good status for it, signed now, as the bootstrap writes it
    return write_identity_dir(
        out,
        ca,
        ServiceIdentity(service),
        bundle_pem=cert_pem(ca.cert),
        at=at or now(),
        days=days,
        key_type=key_type,
        status_at=now(),
    )


def ca_of(pki: Path) -> CertificateAuthority:
    return load_ca(pki / "ca" / "ca.crt", pki / "ca" / "ca.key")
