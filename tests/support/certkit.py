"""Hand-built certificate chains for verifier tests: roots, intermediates with
chosen EKUs and path lengths, leaves with chosen SANs — shapes the bootstrap
never issues, which is exactly what a verifier must be tested against."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(Encoding.DER)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make(
    cn: str,
    issuer: Issued | None,
    *,
    ca: bool,
    pathlen: int | None = None,
    eku: list | None = None,
    uris: list[str] | None = None,
    dns: list[str] | None = None,
    start: dt.datetime | None = None,
    days: float = 30,
    eku_critical: bool = False,
    extra: list[tuple[x509.ExtensionType, bool]] | None = None,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = issuer.key if issuer else key
    start = start or NOW - dt.timedelta(days=1)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(
            x509.BasicConstraints(ca=ca, path_length=pathlen if ca else None), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
    else:
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in (uris or [])]
        names += [x509.DNSName(d) for d in (dns or [])]
        if names:
            b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=eku_critical)
    for ext, critical in extra or []:
        b = b.add_extension(ext, critical=critical)
    return Issued(b.sign(signer, hashes.SHA256()), key)


def root(cn: str = "root", pathlen: int | None = 2, **kw: object) -> Issued:
    return make(cn, None, ca=True, pathlen=pathlen, **kw)  # type: ignore[arg-type]


def intermediate(
    cn: str, issuer: Issued, eku: list | None = None, pathlen: int | None = 0, **kw: object
) -> Issued:
    return make(cn, issuer, ca=True, pathlen=pathlen, eku=eku, **kw)  # type: ignore[arg-type]


def leaf(
    issuer: Issued,
    uri: str = "spiffe://mtls-demo.local/ns/default/sa/gateway",
    eku: list | None = None,
    uris: list[str] | None = None,
    **kw: object,
) -> Issued:
    return make(
        "leaf",
        issuer,
        ca=False,
        eku=[SERVER, CLIENT] if eku is None else eku,
        uris=[uri] if uris is None else uris,
        **kw,
    )  # type: ignore[arg-type]
