"""Certificate signing requests: make one (key stays local), sign one with the CA."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from mtlsdemo.pki import revocation as rv
from mtlsdemo.pki.ca import load_ca
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.files import cert_pem, load_csr, write_atomic
from mtlsdemo.pki.identity import ServiceIdentity
from mtlsdemo.pki.issue import csr_common_name, sign_csr
from mtlsdemo.pki.keys import generate_key, private_key_pem, signing_hash


def make_csr(identity: ServiceIdentity, key_type: str, key_out: Path, csr_out: Path) -> None:
    """A new key (mode 0600) and a CSR naming the identity (the CA will decide the SANs)."""
    key = generate_key(key_type)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.service)]))
        .add_extension(identity.san(), critical=False)
        .sign(key, signing_hash(key))
    )
    write_atomic(key_out, private_key_pem(key), 0o600)
    write_atomic(csr_out, csr.public_bytes(serialization.Encoding.PEM))


def sign_request(
    csr_path: Path,
    ca_dir: Path,
    out: Path,
    service: str | None,
    namespace: str,
    trust_domain: str,
    days: float,
    now: dt.datetime,
) -> ServiceIdentity:
    csr = load_csr(csr_path)
    name = service or csr_common_name(csr)
    if not name:
        raise PkiError(f"{csr_path}: CSR has no common name; pass --service")
    ident = ServiceIdentity.checked(name, namespace, trust_domain)
    if days <= 0:
        raise PkiError(f"--days: must be positive, got {days}")
    ca = load_ca(ca_dir / "ca.crt", ca_dir / "ca.key")
    cert = sign_csr(ca, csr, ident, now, days, source=str(csr_path))
    # on the CA's record (so `certs revoke --serial` knows it), then the certificate
    # and its good status for stapling (`<out>.ocsp`; `certs refresh-status` only
    # refreshes the bootstrap's identity directories)
    issued_path = ca_dir / "issued.json"
    issued = rv.load_issued(
        issued_path.read_bytes() if issued_path.exists() else None, str(issued_path)
    )
    write_atomic(issued_path, rv.dump_issued([*issued, rv.issued_entry(cert, ident.service)]))
    write_atomic(out, cert_pem(cert))
    write_atomic(out.with_suffix(".ocsp"), rv.build_status(ca, cert, [], now))
    return ident
