"""Whom to trust, and who a peer is: the one chain verifier, the one SPIFFE ID
parser and the one identity policy, used by every path (the MTD/1 handshake and
its sidecar, the native gRPC servers' authorization, ``certs inspect``, the trace).

The lowest layer of the package: it depends on ``cryptography`` only, so both
``pki`` and ``handshake`` use it without depending on each other.
"""

from mtlsdemo.trust.failures import Failure, VerificationFailed
from mtlsdemo.trust.policy import IdentityPolicy, PolicyError
from mtlsdemo.trust.spiffe import SpiffeId, SpiffeIdError, svid_identity
from mtlsdemo.trust.verify import TrustStore, VerifiedChain

__all__ = [
    "Failure",
    "IdentityPolicy",
    "PolicyError",
    "SpiffeId",
    "SpiffeIdError",
    "TrustStore",
    "VerificationFailed",
    "VerifiedChain",
    "svid_identity",
]
