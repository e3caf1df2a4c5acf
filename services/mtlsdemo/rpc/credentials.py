"""mTLS credentials from an identity directory (tls.crt, tls.key, ca.crt).

The server side uses ``grpc.dynamic_ssl_server_credentials``: gRPC asks the
fetcher for the current configuration on every new handshake, so renewed files
are served without a restart, and live connections keep the old ones.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from mtlsdemo.pki.material import IdentityFeed, IdentityMaterial, IdentitySource


class ReloadingServerCredentials:
    """Server credentials whose certificate follows the files on disk (or the SVIDs
    a Workload API agent pushes)."""

    def __init__(self, source: IdentityFeed) -> None:
        self.source = source

    @property
    def material(self) -> IdentityMaterial:
        return self.source.current

    @staticmethod
    def _config(m: IdentityMaterial) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(m.key_pem, m.cert_chain_pem)], root_certificates=m.ca_pem
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC before each handshake; None means "keep the current one"."""
        fresh = self.source.check()
        return None if fresh is None else self._config(fresh)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._config(self.material), self.fetch, require_client_authentication=True
        )


def channel_credentials(material: IdentityMaterial) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca_pem,
        private_key=material.key_pem,
        certificate_chain=material.cert_chain_pem,
    )


def secure_channel(
    target: str,
    identity: Path | IdentityMaterial,
    server_name: str,
    options: list[tuple[str, object]] | None = None,
) -> grpc.Channel:
    """A channel that presents our certificate and verifies the server's against
    our CA *and* that it is ``server_name`` (a DNS SAN of the server's certificate).
    ``identity``: a directory (read once, checked) or a snapshot already checked."""
    material = IdentitySource(identity).current if isinstance(identity, Path) else identity
    opts = [("grpc.ssl_target_name_override", server_name), *(options or [])]
    return grpc.secure_channel(target, channel_credentials(material), options=opts)
