"""Who is calling: the SPIFFE ID in the peer certificate of a gRPC call."""

from __future__ import annotations

import grpc
from cryptography import x509

from mtlsdemo.pki.identity import spiffe_ids_of


def peer_spiffe_id(context: grpc.ServicerContext) -> str | None:
    """The caller's SPIFFE ID, read from the verified peer certificate that gRPC
    put in the auth context; None for a plaintext call or a certificate without one."""
    auth = context.auth_context()
    pems = auth.get("x509_pem_cert")
    if not pems:
        return None
    cert = x509.load_pem_x509_certificate(pems[0])
    ids = spiffe_ids_of(cert)
    # An SVID carries exactly one SPIFFE ID; anything else is not an identity we can trust.
    return ids[0] if len(ids) == 1 else None
