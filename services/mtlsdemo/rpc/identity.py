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


def peer_spiffe_id(context: grpc.ServicerContext) -> SpiffeId | None:
    """The caller's SPIFFE ID, read from the peer certificate that gRPC verified
    against our CA and put in the auth context, by the same SVID rules as every
    other path (exactly one URI SAN, well formed); None for a plaintext call or a
    certificate that is not an SVID."""
    cert = peer_certificate(context)
    if cert is None:
        return None
    try:
        return svid_identity(cert)
    except SpiffeIdError:
        return None
