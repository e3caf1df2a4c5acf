"""Every extension the bootstrap promises, checked by parsing what it wrote."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.files import LOCK_FILE, load_cert
from mtlsdemo.pki.keys import KEY_TYPES, load_private_key


def ext(cert: x509.Certificate, cls: type):
    return cert.extensions.get_extension_for_class(cls)


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dirs = {}
    for kt in KEY_TYPES:
        out = tmp_path_factory.mktemp(kt)
        bootstrap(
            BootstrapRequest(
                out=out,
                services=("gateway", "ledger", "cli"),
                key_type=kt,
                namespace="payments",
                trust_domain="example.test",
            )
        )
        dirs[kt] = out
    return dirs


def test_root_ca_extensions(issued: dict[str, Path]) -> None:
    ca = load_cert(issued["ecdsa-p256"] / "ca" / "ca.crt")
    bc = ext(ca, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ext(ca, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    ski = ext(ca, x509.SubjectKeyIdentifier).value
    assert ski.digest == x509.SubjectKeyIdentifier.from_public_key(ca.public_key()).digest
    assert ca.issuer == ca.subject
    ca.verify_directly_issued_by(ca)  # self-signed


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_leaf_extensions(issued: dict[str, Path], key_type: str) -> None:
    out = issued[key_type]
    ca = load_cert(out / "ca" / "ca.crt")
    for service in ("gateway", "ledger", "cli"):
        cert = load_cert(out / service / "tls.crt")
        san = ext(cert, x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
            f"spiffe://example.test/ns/payments/sa/{service}"
        ]
        assert san.get_values_for_type(x509.DNSName) == [
            service,
            f"{service}.payments",
            f"{service}.payments.svc",
            f"{service}.payments.svc.cluster.local",
            "localhost",
        ]
        assert san.get_values_for_type(x509.IPAddress) == [ipaddress.IPv4Address("127.0.0.1")]
        eku = ext(cert, x509.ExtendedKeyUsage).value
        assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        ku = ext(cert, x509.KeyUsage)
        assert ku.critical and ku.value.digital_signature
        assert ku.value.key_encipherment == key_type.startswith("rsa")
        assert not ku.value.key_cert_sign
        bc = ext(cert, x509.BasicConstraints)
        assert bc.critical and bc.value.ca is False
        aki = ext(cert, x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == ext(ca, x509.SubjectKeyIdentifier).value.digest
        assert (
            ext(cert, x509.SubjectKeyIdentifier).value.digest
            == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
        )
        assert cert.serial_number.bit_length() == 159
        cert.verify_directly_issued_by(ca)
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert 29.9 < lifetime.total_seconds() / 86400 < 30.1


def test_key_types_are_what_was_asked(issued: dict[str, Path]) -> None:
    kinds = {
        "ecdsa-p256": ec.EllipticCurvePublicKey,
        "ed25519": ed25519.Ed25519PublicKey,
        "rsa-2048": rsa.RSAPublicKey,
        "rsa-3072": rsa.RSAPublicKey,
    }
    for kt, cls in kinds.items():
        key = load_cert(issued[kt] / "gateway" / "tls.crt").public_key()
        assert isinstance(key, cls)
        if kt.startswith("rsa"):
            assert key.key_size == int(kt.split("-")[1])


def test_serials_are_unique(issued: dict[str, Path]) -> None:
    serials = {
        load_cert(d / s / "tls.crt").serial_number
        for d in issued.values()
        for s in ("gateway", "ledger", "cli")
    }
    assert len(serials) == 3 * len(issued)


def test_private_keys_are_0600_and_load(issued: dict[str, Path]) -> None:
    out = issued["ecdsa-p256"]
    for key in [
        out / "ca" / "ca.key",
        *(out / s / "tls.key" for s in ("gateway", "ledger", "cli")),
    ]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        load_private_key(key)
    for crt in out.rglob("*.crt"):
        assert stat.S_IMODE(crt.stat().st_mode) == 0o644


def test_no_temp_files_left_behind(issued: dict[str, Path]) -> None:
    # write_atomic's temp files start with a dot; the directory's lock file stays
    leftovers = [p for d in issued.values() for p in d.rglob(".*") if p.name != LOCK_FILE]
    assert leftovers == []
