"""Issuing leaf certificates for service identities, from a key or a CSR."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtlsdemo.pki.ca import CertificateAuthority, random_serial
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.identity import ServiceIdentity
from mtlsdemo.pki.keys import AnyPublicKey, PublicKey, deterministic, signing_hash


def issue_leaf(
    ca: CertificateAuthority,
    public_key: AnyPublicKey,
    identity: ServiceIdentity,
    now: dt.datetime,
    days: float,
    not_before: dt.datetime | None = None,
    serial: int | None = None,  # `mtlsdemo illustrate` only: a seeded, reproducible leaf
) -> x509.Certificate:
    """A leaf for both TLS roles: each service is a server to some peers and a
    client to others, so it carries serverAuth and clientAuth. Its notAfter never
    passes the CA's: a leaf that outlived its issuer would fail anyway."""
    if not isinstance(public_key, PublicKey):
        raise PkiError(f"unsupported public key type {type(public_key).__name__}")
    start = not_before if not_before is not None else now - dt.timedelta(minutes=5)
    rsa_key = isinstance(public_key, rsa.RSAPublicKey)
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mtlsdemo"),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, identity.namespace),
                    x509.NameAttribute(NameOID.COMMON_NAME, identity.service),
                ]
            )
        )
        .issuer_name(ca.name)
        .public_key(public_key)
        .serial_number(serial or random_serial())
        .not_valid_before(start)
        .not_valid_after(min(now + dt.timedelta(days=days), ca.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                # RSA keys may also carry a pre-master secret (RSA key transport).
                key_encipherment=rsa_key,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        # SPIFFE X.509-SVID: the URI SAN is the identity; subject is informational.
        .add_extension(identity.san(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    return builder.sign(ca.key, signing_hash(ca.key), ecdsa_deterministic=deterministic(ca.key))


def sign_csr(
    ca: CertificateAuthority,
    csr: x509.CertificateSigningRequest,
    identity: ServiceIdentity,
    now: dt.datetime,
    days: float,
    source: str = "CSR",
) -> x509.Certificate:
    """Sign a CSR. The CA, not the requester, decides the names: only the CSR's
    public key is used, after its self-signature proves possession of the key."""
    if not csr.is_signature_valid:
        raise PkiError(f"{source}: CSR signature is invalid (proof of possession failed)")
    return issue_leaf(ca, csr.public_key(), identity, now, days)


def csr_common_name(csr: x509.CertificateSigningRequest) -> str | None:
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else None


def write_identity_dir(
    out: Path,
    ca: CertificateAuthority,
    identity: ServiceIdentity,
    *,
    bundle_pem: bytes,
    at: dt.datetime,
    days: float = 30,
    not_before: dt.datetime | None = None,
    key_type: str = "ecdsa-p256",
    status_at: dt.datetime | None = None,
) -> Path:
    """An identity directory outside the bootstrap (a test's, a `break` scenario's):
    a new key, a leaf issued as if ``at`` were now, the bundle to trust and the CA's
    good status for the leaf (signed at ``status_at``, default ``at``)."""
    from mtlsdemo.pki.files import cert_pem, write_atomic, writing
    from mtlsdemo.pki.keys import generate_key, private_key_pem
    from mtlsdemo.pki.revocation import build_status

    key = generate_key(key_type)
    cert = issue_leaf(ca, key.public_key(), identity, at, days, not_before=not_before)
    with writing([out]):
        write_atomic(out / "tls.key", private_key_pem(key), 0o600)
        write_atomic(out / "tls.crt", cert_pem(cert))
        write_atomic(out / "ca.crt", bundle_pem)
        write_atomic(out / "tls.ocsp", build_status(ca, cert, [], status_at or at))
    return out
