"""Who is calling: the SPIFFE ID in the peer certificate of a gRPC call."""

from __future__ import annotations

import grpc
from cryptography import x509

from mtlsdemo.trust.spiffe import SpiffeId, SpiffeIdError, svid_identity


def peer_certificate(context: grpc.ServicerContext) -> x509.Certificate | None:
    """The caller's leaf as gRPC verified it; None for a plaintext call."""
    pems = context.auth_context().get("x509_pem_cert")
    if not pems:
        return None
    try:
        return x509.load_pem_x509_certificate(pems[0])
    except ValueError:
        return None


def svid_of(cert: x509.Certificate | None) -> SpiffeId | None:
    """The SPIFFE ID of an already parsed peer certificate, or None."""
    if cert is None:
        return None
    try:
        return svid_identity(cert)
    except SpiffeIdError:
        return None
