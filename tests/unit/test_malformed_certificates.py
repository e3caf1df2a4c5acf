"""A certificate the parser refuses is the peer's bad certificate, never our bug: an
invalid X.509 version was reported as internal_error on both sides, so any
unauthenticated peer could inflate the "a bug" counter."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from mtlsdemo.handshake import Reason
from mtlsdemo.handshake.config import Credentials
from support import hskit

VERSION_3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2: X.509 v3


def test_an_invalid_version_is_bad_certificate_not_internal_error() -> None:
    cert, key = hskit.leaf("ledger")
    der = cert.public_bytes(serialization.Encoding.DER)
    assert der.count(VERSION_3) == 1
    bad = der.replace(VERSION_3, bytes.fromhex("a003020105"))  # "v6": no such version
    good = hskit.creds(cert, key)
    creds = Credentials(good.chain, good.key, (bad,), good.scheme, good.status)
    scfg = hskit.config("ledger", credentials=creds)
    _c, _s, out = hskit.handshake(hskit.config("gateway"), scfg)
    assert out.client_error is not None
    assert out.client_error.reason is Reason.BAD_CERTIFICATE, out.client_error
    assert out.client_error.origin == "local"
    assert out.server_error is not None and out.server_error.reason is Reason.BAD_CERTIFICATE
