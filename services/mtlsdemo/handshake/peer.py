"""Step 2, certificate verification: the peer's chain against our trust store at the
given time, the right EKU for the peer's role, then the peer's identity.

The chain is verified locally: each signature is checked with the issuer's public
key, up to a CA certificate in our trust store. Nothing is asked of the CA online.
The checks run in a fixed order so each failure gets the most specific reason.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from mtlsdemo.handshake.errors import ProtocolError, Reason

EKU_FOR_ROLE = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}
# The default EE policy demands clientAuth of a client verifier; we check the
# EKU for the peer's actual role ourselves (below), then let the verifier do the chain.
_EE_POLICY = ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca()


@dataclass(frozen=True)
class VerifiedChain:
    """The outcome of verifying one chain for one peer role; valid while ``now``
    lies inside every certificate's validity window (root included)."""

    identity: str
    leaf: x509.Certificate
    public_key: object
    chain: tuple[x509.Certificate, ...]
    dns_names: frozenset[str]
    checks: tuple[str, ...]
    valid_from: dt.datetime
    valid_until: dt.datetime


class TrustStore:
    """The CA certificates we trust, and a bounded cache of chains verified against them.

    The cache saves the chain-building and CA-signature work when the same peer
    certificate comes back (every connection between two sidecars presents the
    same one). Only the chain result is cached: the CertificateVerify signature,
    which proves the peer holds the key *now*, is checked on every handshake, and
    so are the time window and the identity policy.
    """

    def __init__(self, cas: tuple[x509.Certificate, ...] | list[x509.Certificate],
                 cache_size: int = 256) -> None:
        self.cas = tuple(cas)
        self.store = Store(list(self.cas))
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, VerifiedChain] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def cached(self, key: tuple, now: dt.datetime) -> VerifiedChain | None:
        hit = self._cache.get(key)
        if hit is None or not hit.valid_from <= now <= hit.valid_until:
            self.misses += 1
            return None
        self._cache.move_to_end(key)
        self.hits += 1
        return hit

    def remember(self, key: tuple, value: VerifiedChain) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = value
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


@dataclass(frozen=True)
class PeerPolicy:
    """Who the peer must be.

    ``allowed_ids``: SPIFFE IDs, exact, or patterns where ``*`` stands for one path
    segment (``spiffe://mtls-demo.local/ns/*/sa/gateway``); empty = any identity the CA issued.
    ``server_name``: for a server peer, a DNS name its certificate must carry.
    """

    allowed_ids: tuple[str, ...] = ()
    server_name: str | None = None

    def allows(self, spiffe_id: str) -> bool:
        if not self.allowed_ids:
            return True
        for pattern in self.allowed_ids:
            if "*" not in pattern:
                if spiffe_id == pattern:
                    return True
            elif len(pattern.split("/")) == len(spiffe_id.split("/")) and all(
                    fnmatch.fnmatchcase(s, p) and ("*" in p or s == p)
                    for s, p in zip(spiffe_id.split("/"), pattern.split("/"), strict=True)):
                return True
        return False


@dataclass
class VerifiedPeer:
    identity: str                    # SPIFFE ID (or subject when there is none)
    leaf: x509.Certificate
    public_key: object
    chain: list[x509.Certificate]
    checks: list[str] = field(default_factory=list)  # what passed, for the trace


def spiffe_id_of(cert: x509.Certificate) -> str:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return cert.subject.rfc4514_string()
    ids = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier)
           if u.startswith("spiffe://")]
    return ids[0] if ids else cert.subject.rfc4514_string()


def can_receive_rsa_key_transport(cert: x509.Certificate) -> bool:
    """RSA-OAEP key transport needs an RSA key certified for keyEncipherment."""
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        return False
    try:
        return bool(cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment)
    except x509.ExtensionNotFound:
        return False


def _aki(cert: x509.Certificate) -> str | None:
    try:
        kid = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None
    return kid.hex() if kid else None


def _ski(cert: x509.Certificate) -> str | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    except x509.ExtensionNotFound:
        return None


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if cert.issuer != ca.subject:
        return False
    aki, ski = _aki(cert), _ski(ca)
    return aki is None or ski is None or aki == ski


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _validity(cert: x509.Certificate, now: dt.datetime, what: str) -> None:
    if now < cert.not_valid_before_utc:
        raise ProtocolError(Reason.CERTIFICATE_NOT_YET_VALID,
                            f"{what} {cert.subject.rfc4514_string()} valid from "
                            f"{cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}")
    if now > cert.not_valid_after_utc:
        raise ProtocolError(Reason.CERTIFICATE_EXPIRED,
                            f"{what} {cert.subject.rfc4514_string()} expired "
                            f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")


def verify_peer(chain_der: Sequence[bytes], trust: TrustStore, peer_role: str,
                policy: PeerPolicy, now: dt.datetime) -> VerifiedPeer:
    if not chain_der:
        raise ProtocolError(Reason.CERTIFICATE_REQUIRED, f"the {peer_role} sent no certificate")
    key = (peer_role, tuple(chain_der))
    verified = trust.cached(key, now)
    if verified is None:
        verified = _verify_chain(chain_der, trust, peer_role, now)
        trust.remember(key, verified)
        checks = list(verified.checks)
    else:
        checks = [*verified.checks, "(chain result reused from the verification cache; "
                  "validity window re-checked)"]
    identity = verified.identity
    if not policy.allows(identity):
        raise ProtocolError(Reason.IDENTITY_MISMATCH,
                            f"peer {identity} is not allowed (allowed: {', '.join(policy.allowed_ids)})",
                            peer_identity=identity)
    checks.append(f"identity {identity} " + ("allowed" if policy.allowed_ids else "(any from CA)"))
    if peer_role == "server" and policy.server_name:
        if policy.server_name not in verified.dns_names:
            raise ProtocolError(Reason.IDENTITY_MISMATCH,
                                f"server certificate does not name {policy.server_name}",
                                peer_identity=identity)
        checks.append(f"server DNS name {policy.server_name}")
    return VerifiedPeer(identity, verified.leaf, verified.public_key, list(verified.chain), checks)


def _verify_chain(chain_der: Sequence[bytes], trust: TrustStore, peer_role: str,
                  now: dt.datetime) -> VerifiedChain:
    # cryptography parses some fields lazily, so a malformed certificate can
    # surface at any field access, as ValueError, InvalidVersion, DuplicateExtension,
    # UnsupportedAlgorithm...: whatever the parser throws at peer-supplied DER
    # means the same thing here.
    try:
        return _verify_parsed(chain_der, trust, peer_role, now)
    except ProtocolError:
        raise
    except Exception as e:
        raise ProtocolError(Reason.BAD_CERTIFICATE,
                            f"malformed certificate: {type(e).__name__}: {e}") from None


def _verify_parsed(chain_der: Sequence[bytes], trust: TrustStore, peer_role: str,
                   now: dt.datetime) -> VerifiedChain:
    chain = [x509.load_der_x509_certificate(d) for d in chain_der]
    leaf = chain[0]
    subject = leaf.subject.rfc4514_string()
    checks = [f"parsed {len(chain)} certificate(s), leaf {subject}"]
    if _is_ca(leaf):
        raise ProtocolError(Reason.BAD_CERTIFICATE, f"{subject} is a CA certificate, not a leaf")
    _validity(leaf, now, "certificate")
    # The roots our chain would end at, matched by key identifier (two CAs can
    # share a name, e.g. after a re-bootstrap; only the key tells them apart).
    # An expired root makes the whole chain expired.
    top = chain[-1]
    anchors = [ca for ca in trust.cas if _issued_by(top, ca) or ca == top]
    if not anchors:
        raise ProtocolError(Reason.UNKNOWN_CA,
                            f"issuer {top.issuer.rfc4514_string()} (key id {_aki(top) or 'none'}) "
                            "is not in the trust store")
    for ca in anchors:
        _validity(ca, now, "CA")
    checks.append(f"validity at {now:%Y-%m-%dT%H:%M:%SZ}: leaf and CA")
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    wanted = EKU_FOR_ROLE[peer_role]
    if eku is None or wanted not in eku:
        raise ProtocolError(Reason.BAD_CERTIFICATE,
                            f"{subject} lacks the {wanted._name} extended key usage a {peer_role} needs")
    checks.append(f"extended key usage {wanted._name}")
    verifier = (PolicyBuilder().store(trust.store).time(now)
                .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
                .build_client_verifier())
    try:
        result = verifier.verify(leaf, chain[1:])
    except VerificationError as e:
        text = str(e)
        reason = Reason.UNKNOWN_CA if "candidates exhausted" in text and "signature" not in text.lower() \
            else Reason.BAD_CERTIFICATE
        raise ProtocolError(reason, f"chain of {subject} does not verify: {text}") from None
    root = result.chain[-1]
    checks.append(f"chain signature verified up to trusted root {root.subject.rfc4514_string()} "
                  "(locally, with the CA public key from the trust store)")
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    ids = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier)
           if u.startswith("spiffe://")]
    if len(ids) != 1:
        raise ProtocolError(Reason.BAD_CERTIFICATE,
                            f"{subject} carries {len(ids)} SPIFFE IDs (an SVID has exactly one)")
    used = list(result.chain)
    return VerifiedChain(
        identity=ids[0], leaf=leaf, public_key=leaf.public_key(), chain=tuple(chain), dns_names=frozenset(
            san.get_values_for_type(x509.DNSName)), checks=tuple(checks),
        valid_from=max(c.not_valid_before_utc for c in used),
        valid_until=min(c.not_valid_after_utc for c in used))
