"""Step 2, certificate verification, for the handshake: the peer's chain through
the one verifier (``mtlsdemo.trust``), then who the peer must be.

This module only adapts: a ``trust.VerificationFailed`` becomes the handshake's
``ProtocolError`` with the same reason name, and the identity policy and the
server name add ``identity_mismatch``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from mtlsdemo.handshake.errors import ProtocolError, Reason
from mtlsdemo.handshake.tickets import Revoked
from mtlsdemo.trust import IdentityPolicy, TrustStore, VerificationFailed
from mtlsdemo.trust.spiffe import display_identity
from mtlsdemo.trust.status import STATUS_POLICIES

__all__ = [
    "PeerPolicy",
    "TrustStore",
    "VerifiedPeer",
    "can_receive_rsa_key_transport",
    "spiffe_id_of",
    "verify_peer",
]

spiffe_id_of = display_identity  # our own leaf's name in events and logs


@dataclass(frozen=True)
class PeerPolicy:
    """Who the peer must be.

    ``allowed_ids``: SPIFFE IDs, exact, or with ``*`` standing for one whole path
    segment (``spiffe://mtls-demo.local/ns/*/sa/gateway``); empty = any identity the
    CA issued. Invalid patterns raise ``trust.PolicyError`` here, at startup.
    ``server_name``: for a server peer, a DNS name its certificate must carry.
    ``revoked``: (issuer name DER, serial) -> why it is revoked, or None (a CRL the
    caller keeps current); None: no CRL, the stapled status alone decides.
    ``authorize``: SPIFFE ID -> why an authorization policy denies it (naming the
    deciding rule), or None; None: no policy beyond ``allowed_ids``.
    """

    allowed_ids: tuple[str, ...] = ()
    server_name: str | None = None
    revoked: Revoked | None = field(default=None, compare=False)
    authorize: Callable[[str], str | None] | None = field(default=None, compare=False)
    policy: IdentityPolicy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "policy", IdentityPolicy.parse(self.allowed_ids))

    def allows(self, spiffe_id: str) -> bool:
        return self.policy.allows(spiffe_id) and (
            self.authorize is None or self.authorize(spiffe_id) is None
        )


@dataclass
class VerifiedPeer:
    identity: str  # the SPIFFE ID
    leaf: x509.Certificate
    subject: str  # the leaf's subject, RFC 4514
    public_key: Any
    chain: list[x509.Certificate]  # the path as built, leaf to trusted root
    checks: list[str] = field(default_factory=list)  # what passed, for the trace
    # a status failure accepted under --require-status soft (counted by the caller)
    status_problem: ProtocolError | None = None
    # the good stapled status's nextUpdate (None: not checked): a ticket lasts no longer
    status_until: dt.datetime | None = None


def can_receive_rsa_key_transport(cert: x509.Certificate) -> bool:
    """RSA-OAEP key transport needs an RSA key certified for keyEncipherment."""
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        return False
    try:
        return bool(cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment)
    except x509.ExtensionNotFound:
        return False


def verify_peer(
    chain_der: Sequence[bytes],
    trust: TrustStore,
    peer_role: str,
    policy: PeerPolicy,
    now: dt.datetime,
    status: bytes = b"",
    require_status: str = "hard",
) -> VerifiedPeer:
    if require_status not in STATUS_POLICIES:
        raise ValueError(f"require_status must be one of {STATUS_POLICIES}, not {require_status!r}")
    try:
        verified, cached = trust.verify(chain_der, peer_role, now)
    except VerificationFailed as e:
        raise ProtocolError(Reason(e.failure.value), e.detail) from None
    checks = list(verified.checks)
    if cached:
        checks.append(
            "(chain result reused from the verification cache; validity window re-checked)"
        )
    try:
        identity = str(verified.identity)
        status_problem = None
        status_until = None
        if require_status == "off":
            checks.append("stapled status: not checked (--require-status off)")
        else:
            # the issuer is the CA the chain was just verified to: only it may speak for the leaf
            issuer = verified.path[1] if len(verified.path) > 1 else verified.path[0]
            try:
                verdict, status_cached = trust.statuses.check(status, verified.leaf, issuer, now)
                status_until = verdict.next_update
                checks.append(
                    verdict.describe()
                    + (
                        " (verdict reused from the status cache; window re-checked)"
                        if status_cached
                        else ""
                    )
                )
            except VerificationFailed as e:
                problem = ProtocolError(Reason(e.failure.value), e.detail, peer_identity=identity)
                if require_status == "hard":
                    raise problem from None
                status_problem = problem
                checks.append(f"stapled status: {e.failure.value}: {e.detail} (accepted: soft)")
        if policy.revoked is not None:
            issuer_der = verified.leaf.issuer.public_bytes()
            try:
                why = policy.revoked(issuer_der, verified.leaf.serial_number)
            except VerificationFailed as e:  # the CRL cannot answer: stale, or required and absent
                raise ProtocolError(
                    Reason(e.failure.value), f"{e.detail} (the CRL)", peer_identity=identity
                ) from None
            if why:
                raise ProtocolError(
                    Reason.CERTIFICATE_REVOKED, f"{why} (the CRL)", peer_identity=identity
                )
            checks.append("CRL: the certificate is not listed")
        if not policy.policy.allows(verified.identity):
            raise ProtocolError(
                Reason.IDENTITY_MISMATCH,
                f"peer {identity} is not allowed (allowed: {', '.join(policy.allowed_ids)})",
                peer_identity=identity,
            )
        checks.append(
            f"identity {identity} " + ("allowed" if policy.allowed_ids else "(any from CA)")
        )
        if policy.authorize is not None:
            denied = policy.authorize(str(verified.identity))
            if denied:
                raise ProtocolError(Reason.IDENTITY_MISMATCH, denied, peer_identity=identity)
            checks.append("authorization policy: the connection is allowed")
        if peer_role == "server" and policy.server_name:
            if dns_key(policy.server_name) not in {dns_key(n) for n in verified.dns_names}:
                raise ProtocolError(
                    Reason.IDENTITY_MISMATCH,
                    f"server certificate does not name {policy.server_name}",
                    peer_identity=identity,
                )
            checks.append(f"server DNS name {policy.server_name}")
        return VerifiedPeer(
            identity,
            verified.leaf,
            verified.subject,
            verified.public_key,
            list(verified.path),
            checks,
            status_problem,
            status_until,
        )
    except ProtocolError as refusal:  # (a name of its own: mypyc types `e` once per function)
        # what passed before the refusal, for the ladder and the journal
        refusal.passed = tuple(checks)
        raise


def dns_key(name: str) -> str:
    """A DNS name as names compare (RFC 4343: case-insensitive; a trailing dot is the
    same absolute name): `Ledger.` and `ledger` are one name."""
    return name.rstrip(".").lower()
