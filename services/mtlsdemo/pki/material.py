"""An identity directory (tls.crt, tls.key, ca.crt: a mounted kubernetes.io/tls
Secret or the bootstrap's output), loaded as one checked snapshot, and a cheap
way to tell when its files changed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.files import load_certs
from mtlsdemo.pki.keys import load_private_key, public_key_der
from mtlsdemo.trust.spiffe import display_identity

FILES = ("tls.crt", "tls.key", "ca.crt")


def files_stamp(directory: Path) -> tuple:
    """(inode, mtime, size) of each identity file, following symlinks, so the
    ``..data`` symlink swap of a Kubernetes Secret volume shows up as a change."""
    out = []
    for f in FILES:
        try:
            st = os.stat(directory / f)
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


@dataclass(frozen=True)
class IdentityMaterial:
    """One consistent snapshot of an identity directory, checked before use."""

    cert_chain_pem: bytes
    key_pem: bytes
    ca_pem: bytes
    leaf: x509.Certificate
    cas: tuple[x509.Certificate, ...]

    @property
    def identity(self) -> str:
        return display_identity(self.leaf)

    @property
    def ca_fingerprints(self) -> list[str]:
        return [c.fingerprint(hashes.SHA256()).hex() for c in self.cas]

    @classmethod
    def load(cls, directory: Path) -> IdentityMaterial:
        crt, key, ca = (directory / f for f in FILES)
        chain = load_certs(crt)
        cas = load_certs(ca)
        priv = load_private_key(key)
        if public_key_der(priv.public_key()) != public_key_der(chain[0].public_key()):
            raise PkiError(f"{key}: does not match {crt}")
        # Read the bytes once more only after every check passed: what we hand
        # on is exactly what we checked (the files may change under us).
        return cls(crt.read_bytes(), key.read_bytes(), ca.read_bytes(), chain[0], tuple(cas))
