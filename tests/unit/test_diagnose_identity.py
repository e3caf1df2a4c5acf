"""The native-gRPC diagnosis loads our identity without a temporary directory: it
runs when a call has already failed, in pods whose root is read-only and that may
have no writable /tmp (the smoke Job did not) — a traceback there hid the reason."""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

import pytest
from mtlsdemo.pki.material import IdentityMaterial
from mtlsdemo.rpc.ssl_identity import load_identity
from support.identities import now


def material(d: Path) -> IdentityMaterial:
    read = [(d / n).read_bytes() for n in ("tls.crt", "tls.key", "ca.crt")]
    return IdentityMaterial.from_bytes(*read, d, now())


def test_identity_loads_with_no_usable_temporary_directory(
    pki_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_temp(*_a: object, **_k: object) -> None:
        raise FileNotFoundError("No usable temporary directory found")

    for name in ("TemporaryDirectory", "mkdtemp", "mkstemp", "NamedTemporaryFile"):
        monkeypatch.setattr(tempfile, name, no_temp)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    load_identity(ctx, material(pki_dir / "cli"))  # raises if the pair did not load


def test_a_key_that_is_not_the_certificates_is_refused_by_ssl(pki_dir: Path) -> None:
    m = material(pki_dir / "cli")
    other = material(pki_dir / "gateway")
    mixed = IdentityMaterial(**{**m.__dict__, "key_pem": other.key_pem})
    with pytest.raises(ssl.SSLError):
        load_identity(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), mixed)
