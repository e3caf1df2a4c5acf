"""What a certificate or a stapled status says, as plain facts for people: the
trace's Certificate message, the sidecar's /certificates and /handshakes, the
console. Public data only (never a key).

One formatter per fact: the fingerprint as ``openssl x509 -fingerprint -sha256``
prints it, the serial in hex as /status shows it, key types as "EC secp256r1".
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, rsa
from cryptography.x509 import ocsp

from mtlsdemo.trust.spiffe import display_identity
from mtlsdemo.trust.verify import is_ca, key_identifier


def fingerprint(cert: x509.Certificate) -> str:
    """The one fingerprint format everywhere (inspect, /status, logs): SHA-256,
    uppercase, colon-separated, as `openssl x509 -fingerprint -sha256` prints it."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def key_type(key: object) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, mldsa.MLDSA44PublicKey):
        return "ML-DSA-44 (post-quantum)"
    if isinstance(key, mldsa.MLDSA65PublicKey):
        return "ML-DSA-65 (post-quantum)"
    return type(key).__name__


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)] + [
        str(v) for v in san.get_values_for_type(x509.DNSName)
    ]


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex(":").upper()


def certificate_facts(cert: x509.Certificate) -> dict[str, Any]:
    return {
        "identity": display_identity(cert),
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "names": _names(cert),
        "key": key_type(cert.public_key()),
        "serial": f"{cert.serial_number:x}",
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "is_ca": is_ca(cert),
        "fingerprint_sha256": fingerprint(cert),
        "subject_key_id": _hex(key_identifier(cert, x509.SubjectKeyIdentifier)),
        "authority_key_id": _hex(key_identifier(cert, x509.AuthorityKeyIdentifier)),
    }


@functools.lru_cache(maxsize=64)  # the same few certificates arrive in every handshake
def der_facts(der: bytes) -> dict[str, Any]:
    """certificate_facts of DER bytes as received (perhaps garbage): never raises."""
    try:
        return certificate_facts(x509.load_der_x509_certificate(der))
    except ValueError as e:
        return {"error": f"unparsable certificate ({len(der)} bytes): {e}"}


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat()


@functools.lru_cache(maxsize=64)
def staple_facts(der: bytes) -> dict[str, Any]:
    """What a stapled OCSP response claims (not whether it checks out: the
    verifier decides that, with the CA's key). Never raises."""
    if not der:
        return {"status": "none"}
    try:
        r = ocsp.load_der_ocsp_response(der)
        if r.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            return {"status": r.response_status.name.lower()}
        out: dict[str, Any] = {
            "status": r.certificate_status.name.lower(),
            "serial": f"{r.serial_number:x}",
            "this_update": _iso(r.this_update_utc),
            "next_update": _iso(r.next_update_utc),
            "bytes": len(der),
        }
        if r.certificate_status is ocsp.OCSPCertStatus.REVOKED:
            out["revoked_at"] = _iso(r.revocation_time_utc)
            reason = r.revocation_reason
            out["reason"] = reason.name if reason is not None else "unspecified"
        return out
    except ValueError as e:
        return {"status": "unparsable", "error": str(e), "bytes": len(der)}
