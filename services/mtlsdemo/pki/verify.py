"""Chain verification against a trust store, with cryptography.x509.verification.

The verifier checks the CA's signature locally with the CA public key from the
trust store: nothing is asked of the CA online.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.verification import DNSName, PolicyBuilder, Store, VerificationError

from mtlsdemo.pki.identity import san_of


def verify_for_client_auth(leaf: x509.Certificate, cas: Sequence[x509.Certificate],
                           now: dt.datetime,
                           intermediates: Sequence[x509.Certificate] = ()) -> str | None:
    """None when the chain verifies for TLS client authentication, else why not."""
    verifier = PolicyBuilder().store(Store(list(cas))).time(now).build_client_verifier()
    try:
        verifier.verify(leaf, list(intermediates))
    except VerificationError as e:
        return str(e)
    return None


def verify_for_server_auth(leaf: x509.Certificate, cas: Sequence[x509.Certificate],
                           now: dt.datetime, dns_name: str | None = None,
                           intermediates: Sequence[x509.Certificate] = ()) -> str | None:
    """None when the chain verifies for TLS server authentication as ``dns_name``
    (default: the certificate's first DNS SAN), else why not."""
    if dns_name is None:
        san = san_of(leaf)
        names = san.get_values_for_type(x509.DNSName) if san else []
        if not names:
            return "no DNS name in the certificate to verify a server identity against"
        dns_name = names[0]
    verifier = (PolicyBuilder().store(Store(list(cas))).time(now)
                .build_server_verifier(DNSName(dns_name)))
    try:
        verifier.verify(leaf, list(intermediates))
    except VerificationError as e:
        return str(e)
    return None
