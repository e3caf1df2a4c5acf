"""The root certificate authority: create it once, load and check it after."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.files import load_cert
from mtlsdemo.pki.keys import (
    PrivateKey,
    deterministic,
    generate_key,
    load_private_key,
    public_key_der,
    signing_hash,
)


def random_serial() -> int:
    # 159 random bits: positive, at most 20 octets in DER, and unpredictable (CA/B BR 7.1).
    return secrets.randbits(159) | (1 << 158)


@dataclass(frozen=True)
class CertificateAuthority:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def name(self) -> x509.Name:
        return self.cert.subject


def create_root_ca(
    key_type: str,
    days: float,
    trust_domain: str,
    now: dt.datetime,
    name: str | None = None,
    key: PrivateKey | None = None,
    serial: int | None = None,
) -> CertificateAuthority:
    """``name``: the CA's common name (default "mtlsdemo root CA (<trust domain>)"); an
    impostor for a lesson gets its own (`certs bootstrap --ca-name`), so "issuer … is not
    in the trust store" reads true without comparing key ids. ``key`` and ``serial``:
    given only by `mtlsdemo illustrate`, whose throwaway CA is made from a seed so two
    runs print the same bytes (never for a mesh's CA)."""
    key = key or generate_key(key_type)
    cn = name or f"mtlsdemo root CA ({trust_domain})"
    name_ = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mtlsdemo"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name_)
        .issuer_name(name_)
        .public_key(key.public_key())
        .serial_number(serial or random_serial())
        # Backdate a little so a peer whose clock lags still accepts it.
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        # path_length=0: this root signs leaves only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, signing_hash(key), ecdsa_deterministic=deterministic(key))
    )
    return CertificateAuthority(cert, key)


def load_ca(cert_path: Path, key_path: Path) -> CertificateAuthority:
    return check_ca(load_cert(cert_path), load_private_key(key_path), str(cert_path), str(key_path))


def check_ca(
    cert: x509.Certificate, key: PrivateKey, cert_path: str, key_path: str
) -> CertificateAuthority:
    if public_key_der(key.public_key()) != public_key_der(cert.public_key()):
        raise PkiError(f"{key_path}: private key does not match the CA certificate {cert_path}")
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise PkiError(f"{cert_path}: not a CA certificate (BasicConstraints CA:true missing)")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise PkiError(f"{key_path}: RSA CA key of {key.key_size} bits is too small")
    return CertificateAuthority(cert, key)
