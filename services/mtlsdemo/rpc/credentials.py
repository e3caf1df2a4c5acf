"""mTLS credentials from an identity directory (tls.crt, tls.key, ca.crt).

The server side uses ``grpc.dynamic_ssl_server_credentials``: gRPC asks the
fetcher for the current configuration on every new handshake, so renewed files
are served without a restart, and live connections keep the old ones.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509

from mtlsdemo import telemetry
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.files import load_certs
from mtlsdemo.pki.identity import spiffe_ids_of
from mtlsdemo.pki.keys import load_private_key, public_key_der

log = logging.getLogger(__name__)
FILES = ("tls.crt", "tls.key", "ca.crt")


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
        ids = spiffe_ids_of(self.leaf)
        return ids[0] if ids else self.leaf.subject.rfc4514_string()

    @classmethod
    def load(cls, directory: Path) -> IdentityMaterial:
        crt, key, ca = (directory / f for f in FILES)
        chain = load_certs(crt)
        cas = load_certs(ca)
        priv = load_private_key(key)
        if public_key_der(priv.public_key()) != public_key_der(chain[0].public_key()):
            raise PkiError(f"{key}: does not match {crt}")
        return cls(crt.read_bytes(), key.read_bytes(), ca.read_bytes(), chain[0], tuple(cas))

    def export_expiry(self) -> None:
        telemetry.CERT_EXPIRY.labels(self.identity, "leaf").set(
            self.leaf.not_valid_after_utc.timestamp())
        for ca in self.cas:
            telemetry.CERT_EXPIRY.labels(ca.subject.rfc4514_string(), "ca").set(
                ca.not_valid_after_utc.timestamp())


def _stamp(directory: Path) -> tuple:
    # stat() follows symlinks, so the ..data symlink swap of a Kubernetes Secret
    # volume shows up as a new inode/mtime on the resolved files.
    out = []
    for f in FILES:
        try:
            st = os.stat(directory / f)
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


class ReloadingServerCredentials:
    """Server credentials whose certificate follows the files on disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._stamp = _stamp(directory)
        self.material = IdentityMaterial.load(directory)
        self.material.export_expiry()

    def _config(self, m: IdentityMaterial) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(m.key_pem, m.cert_chain_pem)], root_certificates=m.ca_pem)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC before each handshake; None means "keep the current one"."""
        stamp = _stamp(self.directory)
        if stamp == self._stamp:
            return None
        with self._lock:
            if stamp == self._stamp:
                return None
            self._stamp = stamp
            try:
                material = IdentityMaterial.load(self.directory)
            except PkiError as e:
                telemetry.CERT_RELOADS.labels("failure").inc()
                log.error("certificate reload rejected, keeping the previous one: %s", e)
                return None
            self.material = material
            material.export_expiry()
            telemetry.CERT_RELOADS.labels("success").inc()
            log.info("certificate reloaded: %s, serial %x, expires %s", material.identity,
                     material.leaf.serial_number, material.leaf.not_valid_after_utc)
            return self._config(material)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._config(self.material), self.fetch, require_client_authentication=True)


def channel_credentials(directory: Path) -> grpc.ChannelCredentials:
    m = IdentityMaterial.load(directory)
    return grpc.ssl_channel_credentials(
        root_certificates=m.ca_pem, private_key=m.key_pem, certificate_chain=m.cert_chain_pem)


def secure_channel(target: str, directory: Path, server_name: str,
                   options: list[tuple[str, object]] | None = None) -> grpc.Channel:
    """A channel that presents our certificate and verifies the server's against
    our CA *and* that it is ``server_name`` (a DNS SAN of the server's certificate)."""
    opts = [("grpc.ssl_target_name_override", server_name), *(options or [])]
    return grpc.secure_channel(target, channel_credentials(directory), options=opts)
