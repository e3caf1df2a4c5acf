"""The one chain verifier: path validation with ``cryptography.x509.verification``
against a bundle of trusted roots, with the EKU of the peer's role checked on the
leaf and on every intermediate, a depth limit, and the SVID rules on top.

Path building uses every certificate the peer sent (leaf first, the rest in any
order, extra unrelated ones ignored) and every root in the bundle (several during
a CA rollover). Each signature is checked locally with the issuer's public key:
nothing is asked of a CA online. A failure names one reason from ``Failure``.

Federation (SPIFFE): with bundles of other trust domains, the anchors are chosen
by the trust domain the peer's SPIFFE ID names, before any path is built: a peer
of domain B is verified against B's bundle only, never against ours, so B's CA
cannot speak for our names nor ours for B's (what an "alias" that adds B's root to
our bundle would allow).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from mtlsdemo.trust.failures import Failure, VerificationFailed
from mtlsdemo.trust.spiffe import SpiffeId, SpiffeIdError, svid_identity
from mtlsdemo.trust.status import StatusCache

DEFAULT_MAX_DEPTH = 4  # leaf + up to 3 CAs: our PKI uses 1 (root, pathlen 0)
EKU_FOR_ROLE = {
    "server": ExtendedKeyUsageOID.SERVER_AUTH,
    "client": ExtendedKeyUsageOID.CLIENT_AUTH,
}


@dataclass(frozen=True)
class VerifiedChain:
    """A chain verified for one peer role; valid while ``now`` lies inside
    ``valid_from .. valid_until`` (every certificate of the path, root included)."""

    identity: SpiffeId
    leaf: x509.Certificate
    subject: str  # the leaf's subject, RFC 4514 (formatted once, for messages and results)
    public_key: Any
    path: tuple[x509.Certificate, ...]  # leaf .. trusted root, as built
    dns_names: frozenset[str]
    checks: tuple[str, ...]  # what passed, in order, for the trace
    valid_from: dt.datetime
    valid_until: dt.datetime


EkuCheck = Callable[[object, x509.Certificate, "x509.ExtendedKeyUsage | None"], None]


def _eku_validator(role: str, required: bool) -> EkuCheck:
    wanted = EKU_FOR_ROLE[role]

    def check(_policy: object, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
        if eku is None:
            if required:
                raise ValueError(
                    f"{cert.subject.rfc4514_string()} lacks the {wanted._name} "
                    f"extended key usage a {role} needs"
                )
            return
        if wanted not in eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
            what = "CA" if is_ca(cert) else ""
            raise ValueError(
                f"{what + ' ' if what else ''}{cert.subject.rfc4514_string()} lacks the "
                f"{wanted._name} extended key usage a {role} needs"
            )

    return check


def _policies(role: str) -> tuple[ExtensionPolicy, ExtensionPolicy]:
    # cryptography's client verifier demands clientAuth of every certificate; we
    # replace that with the EKU of the peer's actual role: required on the leaf,
    # and, where an intermediate restricts its EKUs, present there too.
    ca = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _eku_validator(role, required=False)
    )
    # (may_be_present: the validator is called even when the extension is absent,
    # so a missing EKU gets the same plain message as a wrong one)
    ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _eku_validator(role, required=True)
    )
    return ca, ee


_POLICIES = {role: _policies(role) for role in EKU_FOR_ROLE}


def _validity(cert: x509.Certificate, now: dt.datetime, what: str) -> None:
    if now < cert.not_valid_before_utc:
        raise VerificationFailed(
            Failure.CERTIFICATE_NOT_YET_VALID,
            f"{what} {cert.subject.rfc4514_string()} valid from "
            f"{cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}",
        )
    if now > cert.not_valid_after_utc:
        raise VerificationFailed(
            Failure.CERTIFICATE_EXPIRED,
            f"{what} {cert.subject.rfc4514_string()} expired "
            f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
        )


def key_identifier(
    cert: x509.Certificate, cls: type[x509.AuthorityKeyIdentifier | x509.SubjectKeyIdentifier]
) -> bytes | None:
    """The certificate's own (subject) or its issuer's (authority) key id."""
    try:
        value = cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None
    if isinstance(value, x509.AuthorityKeyIdentifier):
        return value.key_identifier
    return value.digest


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Name and key identifier match (two CAs can share a name after a re-bootstrap)."""
    if cert.issuer != ca.subject:
        return False
    aki, ski = (
        key_identifier(cert, x509.AuthorityKeyIdentifier),
        key_identifier(ca, x509.SubjectKeyIdentifier),
    )
    return aki is None or ski is None or aki == ski


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _trust_domain_of(leaf: x509.Certificate) -> str | None:
    try:
        return svid_identity(leaf).trust_domain
    except SpiffeIdError:
        return None


class TrustStore:
    """The trusted roots (a bundle: several during a CA rollover), the rules a peer
    must satisfy, and a bounded cache of chains verified against them.

    The cache saves the chain-building and signature work when the same peer
    chain comes back; only the chain result is cached, and it is used only while
    ``now`` is inside every certificate's window. Proof of key possession and the
    identity policy are the caller's, on every connection.
    """

    def __init__(
        self,
        cas: Sequence[x509.Certificate],
        *,
        trust_domain: str | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        cache_size: int = 256,
        federated: dict[str, tuple[x509.Certificate, ...]] | None = None,
    ) -> None:
        if not cas:
            raise ValueError("a trust store needs at least one CA certificate")
        self.cas = tuple(cas)
        self.trust_domain = trust_domain
        self.max_depth = max_depth
        self.store = Store(list(self.cas))
        # other trust domains' bundles (federation), each its own store
        self.federated: dict[str, tuple[x509.Certificate, ...]] = {}
        self._stores: dict[str, Store] = {}
        for td, bundle_cas in sorted((federated or {}).items()):
            if td == trust_domain or not bundle_cas:
                continue  # our own domain's anchors are ``cas``; an empty bundle trusts none
            self.federated[td] = tuple(bundle_cas)
            self._stores[td] = Store(list(bundle_cas))
        # which bundles these are: session tickets remember it, and a change refuses them
        bundle = hashes.Hash(hashes.SHA256())
        for ca in self.cas:
            der = ca.public_bytes(serialization.Encoding.DER)
            bundle.update(len(der).to_bytes(4, "big") + der)
        for td, bundle_cas in self.federated.items():
            bundle.update(b"\0" + td.encode())
            for ca in bundle_cas:
                der = ca.public_bytes(serialization.Encoding.DER)
                bundle.update(len(der).to_bytes(4, "big") + der)
        self.fingerprint = bundle.finalize()
        self.cache_size = cache_size
        # stapled statuses checked against these roots (trust/status.py)
        self.statuses = StatusCache(cache_size)
        self._cache: OrderedDict[tuple[str, tuple[bytes, ...]], VerifiedChain] = OrderedDict()
        self.hits = 0
        self.misses = 0

    # ------------------------------------------------------------------ cache
    def _cached(self, key: tuple[str, tuple[bytes, ...]], now: dt.datetime) -> VerifiedChain | None:
        hit = self._cache.get(key)
        if hit is None or not hit.valid_from <= now <= hit.valid_until:
            self.misses += 1
            return None
        self._cache.move_to_end(key)
        self.hits += 1
        return hit

    def _remember(self, key: tuple[str, tuple[bytes, ...]], value: VerifiedChain) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = value
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    # ------------------------------------------------------------------ verify
    def verify(
        self, chain_der: Sequence[bytes], role: str, now: dt.datetime
    ) -> tuple[VerifiedChain, bool]:
        """Verify a peer's chain (DER, leaf first) for ``role`` ("client" or
        "server") at ``now``. Returns the result and whether it came from the cache."""
        if not chain_der:
            raise VerificationFailed(
                Failure.CERTIFICATE_REQUIRED, f"the {role} sent no certificate"
            )
        key = (role, tuple(chain_der))
        hit = self._cached(key, now)
        if hit is not None:
            return hit, True
        try:
            certs = [x509.load_der_x509_certificate(d) for d in chain_der]
            result = self.verify_certificates(certs, role, now)
        except VerificationFailed:
            raise
        except Exception as e:
            # cryptography parses some fields lazily: a malformed certificate can
            # surface at any field access, with whatever the parser raises.
            raise VerificationFailed(
                Failure.BAD_CERTIFICATE, f"malformed certificate: {type(e).__name__}: {e}"
            ) from None
        self._remember(key, result)
        return result, False

    def verify_certificates(
        self, certs: Sequence[x509.Certificate], role: str, now: dt.datetime
    ) -> VerifiedChain:
        """The same verification on parsed certificates (``certs inspect``)."""
        if not certs:
            raise VerificationFailed(
                Failure.CERTIFICATE_REQUIRED, f"the {role} sent no certificate"
            )
        leaf, others = certs[0], list(certs[1:])
        subject = leaf.subject.rfc4514_string()
        checks = [f"parsed {len(certs)} certificate(s), leaf {subject}"]
        if is_ca(leaf):
            raise VerificationFailed(
                Failure.BAD_CERTIFICATE, f"{subject} is a CA certificate, not a leaf"
            )
        _validity(leaf, now, "certificate")
        if len(certs) > self.max_depth:
            raise VerificationFailed(
                Failure.BAD_CERTIFICATE,
                f"{len(certs)} certificates sent, more than the limit of {self.max_depth}",
            )
        anchors, store = self._anchors_for(leaf, subject)
        ca_policy, ee_policy = _POLICIES[role]
        verifier = (
            PolicyBuilder()
            .store(store)
            .time(now)
            .max_chain_depth(self.max_depth - 1)
            .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
            .build_client_verifier()
        )
        try:
            built = verifier.verify(leaf, others)
        except VerificationError as e:
            raise self._explain(leaf, others, role, now, str(e), anchors) from None
        path = tuple(built.chain)
        root = path[-1]
        checks.append(f"validity at {now:%Y-%m-%dT%H:%M:%SZ}: every certificate of the path")
        checks.append(f"extended key usage {EKU_FOR_ROLE[role]._name} (leaf and intermediates)")
        checks.append(
            f"chain signature verified up to trusted root {root.subject.rfc4514_string()} "
            "(locally, with the CA public key from the trust store)"
        )
        try:
            identity = svid_identity(leaf)
        except SpiffeIdError as e:
            raise VerificationFailed(Failure.BAD_CERTIFICATE, f"{subject}: {e}") from None
        if (
            self.trust_domain is not None
            and identity.trust_domain != self.trust_domain
            and identity.trust_domain not in self.federated
        ):
            raise VerificationFailed(
                Failure.BAD_CERTIFICATE, f"{identity} is outside trust domain {self.trust_domain}"
            )
        checks.append(f"one SPIFFE ID, well formed: {identity}")
        if identity.trust_domain in self.federated:
            checks.append(
                f"federated: trust domain {identity.trust_domain} verified against its own "
                "bundle, not ours"
            )
        try:
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = frozenset(san.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            dns = frozenset()
        return VerifiedChain(
            identity=identity,
            leaf=leaf,
            subject=subject,
            public_key=leaf.public_key(),
            path=path,
            dns_names=dns,
            checks=tuple(checks),
            valid_from=max(c.not_valid_before_utc for c in path),
            valid_until=min(c.not_valid_after_utc for c in path),
        )

    def _anchors_for(
        self, leaf: x509.Certificate, subject: str
    ) -> tuple[tuple[x509.Certificate, ...], Store]:
        """The roots a leaf may lead to: with federated bundles, those of the trust
        domain its SPIFFE ID names (ours for ours), chosen before any path is built."""
        if not self.federated:
            return self.cas, self.store
        try:
            td = svid_identity(leaf).trust_domain
        except SpiffeIdError as e:
            raise VerificationFailed(Failure.BAD_CERTIFICATE, f"{subject}: {e}") from None
        if td == self.trust_domain:
            return self.cas, self.store
        if td in self._stores:
            return self.federated[td], self._stores[td]
        raise VerificationFailed(
            Failure.UNKNOWN_CA,
            f"no trust bundle for trust domain {td} (ours: {self.trust_domain}; federated "
            f"with: {', '.join(sorted(self.federated))})",
        )

    def _explain(
        self,
        leaf: x509.Certificate,
        others: list[x509.Certificate],
        role: str,
        now: dt.datetime,
        text: str,
        anchors: tuple[x509.Certificate, ...],
    ) -> VerificationFailed:
        """The most specific reason for a path that does not build."""
        subject = leaf.subject.rfc4514_string()
        # Walk up from the leaf through what the peer sent, by issuer name and key id,
        # until a trusted root issued the current certificate (or the walk stops).
        walked, current, anchor = [leaf], leaf, None
        while anchor is None:
            anchor = next((ca for ca in anchors if issued_by(current, ca) or current == ca), None)
            if anchor is not None:
                break
            parent = next((c for c in others if c not in walked and issued_by(current, c)), None)
            if parent is None:
                break
            walked.append(parent)
            current = parent
        if anchor is None:
            aki = key_identifier(current, x509.AuthorityKeyIdentifier)
            td = _trust_domain_of(leaf)
            where = "the trust store" if anchors is self.cas else f"trust domain {td}'s bundle"
            said = (
                f"issuer {current.issuer.rfc4514_string()} (key id "
                f"{aki.hex(':').upper() if aki else 'none'}) is not in {where}"
            )
            if (
                self.trust_domain is not None
                and td is not None
                and td != self.trust_domain
                and td not in self.federated
            ):
                # a peer of another trust domain: the missing piece is that domain's bundle
                federated = ", ".join(sorted(self.federated)) or "none"
                said = (
                    f"no trust bundle for trust domain {td} (ours: {self.trust_domain}; "
                    f"federated with: {federated}): {said}"
                )
            return VerificationFailed(Failure.UNKNOWN_CA, said)
        # the path exists: say which certificate on it is out of its window
        for cert in [anchor, *walked[1:]]:
            try:
                _validity(cert, now, "CA" if is_ca(cert) else "certificate")
            except VerificationFailed as e:
                return e
        if "extension validator failed" in text:  # ours: say it plainly
            said = text.split("ValueError: ", 1)[-1].split(" (encountered processing", 1)[0]
            return VerificationFailed(Failure.BAD_CERTIFICATE, said)
        missing = re.search(r"([0-9.]+): Certificate is missing required extension", text)
        if missing:
            ext = x509.ObjectIdentifier(missing.group(1))._name
            return VerificationFailed(
                Failure.BAD_CERTIFICATE,
                f"{subject} has no {ext} extension"
                + (
                    " (an SVID carries exactly one URI SAN, its SPIFFE ID)"
                    if ext == "subjectAltName"
                    else ""
                ),
            )
        return VerificationFailed(
            Failure.BAD_CERTIFICATE, f"chain of {subject} does not verify: {text}"
        )
