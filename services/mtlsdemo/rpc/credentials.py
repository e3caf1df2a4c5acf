"""mTLS credentials from an identity directory (tls.crt, tls.key, ca.crt).

The server side uses ``grpc.dynamic_ssl_server_credentials``: gRPC asks the
fetcher for the current configuration on every new handshake, so renewed files
are served without a restart, and live connections keep the old ones.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import grpc

from mtlsdemo import telemetry
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.material import IdentityMaterial, files_stamp

log = logging.getLogger(__name__)


class ReloadingServerCredentials:
    """Server credentials whose certificate follows the files on disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._stamp = files_stamp(directory)
        self.material = IdentityMaterial.load(directory)
        telemetry.export_certificate_expiry(self.material)

    def _config(self, m: IdentityMaterial) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(m.key_pem, m.cert_chain_pem)], root_certificates=m.ca_pem)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC before each handshake; None means "keep the current one"."""
        stamp = files_stamp(self.directory)
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
            telemetry.export_certificate_expiry(material)
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
