"""A trust domain's bundle in the SPIFFE bundle format (a JWK set, the SPIFFE Trust
Domain and Bundle spec §4): each CA an ``x509-svid`` key with its certificate in
``x5c``, plus ``spiffe_sequence`` and ``spiffe_refresh_hint``. The agent serves its
own at ``/bundle`` (the bundle endpoint) and reads its federated peers' the same way."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mtlsdemo.pki.errors import PkiError

REFRESH_HINT = 5  # seconds: a demo's hint (SPIRE's default is minutes)
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _b64u(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwk(cert: x509.Certificate) -> dict[str, Any]:
    """One CA as a JWK: its key's public parameters where JOSE names them (EC, RSA),
    and always the certificate itself (x5c), which is what an X.509 bundle is."""
    key = cert.public_key()
    out: dict[str, Any] = {"use": "x509-svid"}
    if isinstance(key, ec.EllipticCurvePublicKey):
        nums = key.public_numbers()
        out |= {
            "kty": "EC",
            "crv": _CURVES.get(key.curve.name, key.curve.name),
            "x": _b64u(nums.x),
            "y": _b64u(nums.y),
        }
    elif isinstance(key, rsa.RSAPublicKey):
        rn = key.public_numbers()
        out |= {"kty": "RSA", "n": _b64u(rn.n), "e": _b64u(rn.e)}
    else:  # ML-DSA: JOSE has no registered key type yet ("AKP" is a draft)
        out["kty"] = "AKP"
    out["x5c"] = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
    return out


def encode(cas: tuple[x509.Certificate, ...], sequence: int) -> bytes:
    doc = {
        "keys": [_jwk(c) for c in cas],
        "spiffe_sequence": sequence,
        "spiffe_refresh_hint": REFRESH_HINT,
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def decode(data: bytes, where: str) -> tuple[tuple[x509.Certificate, ...], int | None]:
    """The X.509 authorities of a bundle document, and its sequence number."""
    try:
        doc = json.loads(data)
        keys = doc["keys"]
    except (ValueError, KeyError, TypeError) as e:
        raise PkiError(f"{where}: not a SPIFFE bundle (a JWK set with 'keys'): {e}") from None
    cas = []
    for n, k in enumerate(keys):
        if not isinstance(k, dict) or k.get("use") != "x509-svid":
            continue  # JWT authorities, or what this reader does not know: not ours to use
        x5c = k.get("x5c")
        if not isinstance(x5c, list) or len(x5c) != 1:
            raise PkiError(f"{where}: key {n}: an x509-svid key carries exactly one x5c")
        try:
            cas.append(x509.load_der_x509_certificate(base64.b64decode(x5c[0])))
        except ValueError as e:
            raise PkiError(f"{where}: key {n}: x5c is not a certificate ({e})") from None
    if not cas:
        raise PkiError(f"{where}: the bundle holds no X.509 authority")
    seq = doc.get("spiffe_sequence")
    return tuple(cas), seq if isinstance(seq, int) else None


def fetch(source: str, timeout: float = 3.0) -> bytes:
    """A federated domain's bundle: from its bundle endpoint (http(s)://…) or a file."""
    if source.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(source, timeout=timeout) as r:
                return bytes(r.read())
        except (urllib.error.URLError, OSError) as e:
            raise PkiError(f"{source}: bundle endpoint unreachable: {e}") from None
    try:
        return Path(source).read_bytes()
    except OSError as e:
        raise PkiError(f"{source}: cannot read the bundle: {e.strerror}") from None
