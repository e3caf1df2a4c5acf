"""Revocation, checked locally: a stapled OCSP response (RFC 6960) and a CRL
(RFC 5280), both signed by the CA that issued the certificate.

Step 2 of the classic explanation has the client "ask the CA" about the server's
certificate. Nothing here asks anyone: the CA's current opinion arrives signed
(stapled to the handshake by the peer itself, or as a CRL file the service
reloads), and is checked with the CA's public key from the trust store, like the
chain. A stapled "good" stays acceptable until its ``nextUpdate`` (plus the
skew): that window is the revocation latency of the stapled path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, padding, rsa
from cryptography.x509 import ocsp

from mtlsdemo.trust.failures import Failure, VerificationFailed

DEFAULT_SKEW = dt.timedelta(minutes=5)  # the same slack the CA gives notBefore
# the longest status window a peer believes: a staple valid for years would outlive
# any revocation (certs refuses to sign a longer --status-window; the default is 1 h)
MAX_STATUS_WINDOW = dt.timedelta(days=7)
STATUS_POLICIES = ("hard", "soft", "off")  # refuse / accept and count / do not look
_CRL_PEM = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.S)


def _z(t: dt.datetime) -> str:
    return f"{t:%Y-%m-%dT%H:%M:%SZ}"


def _signed_by(
    key: object, signature: bytes, data: bytes, algo: hashes.HashAlgorithm | None
) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey) and algo is None:
            return False  # a pre-hash scheme with no hash named
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algo))  # type: ignore[arg-type]
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algo)  # type: ignore[arg-type]
        elif isinstance(key, mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey):
            key.verify(signature, data)  # pure ML-DSA: no pre-hash (RFC 9881)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _cn(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


@dataclass(frozen=True)
class StatusVerdict:
    """A stapled response that checked out: what the trace shows in step 2."""

    serial: int
    signer: str
    this_update: dt.datetime
    next_update: dt.datetime

    def describe(self) -> str:
        return (
            f"stapled status: good for serial {self.serial:x}, signed by {self.signer} "
            f"(checked locally with its public key), valid {_z(self.this_update)} .. "
            f"{_z(self.next_update)}"
        )


def check_status(
    der: bytes,
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    now: dt.datetime,
    skew: dt.timedelta = DEFAULT_SKEW,
) -> StatusVerdict:
    """Check a stapled OCSP response for ``leaf`` issued by ``issuer`` (the CA the
    chain was verified to). Raises VerificationFailed with one of the status
    failures; returns the verdict when the status is good and current."""
    serial = f"{leaf.serial_number:x}"
    if not der:
        raise VerificationFailed(
            Failure.STATUS_MISSING, f"no stapled status for certificate serial {serial}"
        )
    try:
        resp = ocsp.load_der_ocsp_response(der)
        if resp.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise VerificationFailed(
                Failure.STATUS_INVALID,
                f"stapled status is an OCSP error response ({resp.response_status.name})",
            )
        algo = resp.signature_hash_algorithm
        tbs, signature = resp.tbs_response_bytes, resp.signature
        resp_serial, cert_status = resp.serial_number, resp.certificate_status
        this_update, next_update = resp.this_update_utc, resp.next_update_utc
        cert_id = (resp.hash_algorithm, resp.issuer_name_hash, resp.issuer_key_hash)
    except VerificationFailed:
        raise
    except Exception as e:  # lazily parsed fields fail at first access, with anything
        raise VerificationFailed(
            Failure.STATUS_INVALID, f"stapled status is not an OCSP response ({e})"
        ) from None
    for what, h in (("CertID", cert_id[0]), ("signature", algo)):
        if isinstance(h, hashes.SHA1):  # collisions are practical: never trust it here
            raise VerificationFailed(
                Failure.STATUS_INVALID,
                f"stapled status for serial {serial} uses SHA-1 in its {what}",
            )
    if not _signed_by(issuer.public_key(), signature, tbs, algo):
        raise VerificationFailed(
            Failure.STATUS_INVALID,
            f"stapled status for serial {serial} is not signed by its issuer {_cn(issuer)}",
        )
    want = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, cert_id[0]).build()
    if resp_serial != leaf.serial_number or (want.issuer_name_hash, want.issuer_key_hash) != (
        cert_id[1],
        cert_id[2],
    ):
        raise VerificationFailed(
            Failure.STATUS_INVALID,
            f"stapled status is for serial {resp_serial:x}"
            + (" of another issuer" if resp_serial == leaf.serial_number else "")
            + f", not this certificate (serial {serial}, issuer {_cn(issuer)})",
        )
    if cert_status is ocsp.OCSPCertStatus.REVOKED:
        when = resp.revocation_time_utc
        why = resp.revocation_reason
        raise VerificationFailed(
            Failure.CERTIFICATE_REVOKED,
            f"certificate serial {serial} was revoked at {_z(when) if when else '?'}"
            f" ({why.name if why else 'unspecified'}), says {_cn(issuer)}",
        )
    if cert_status is not ocsp.OCSPCertStatus.GOOD:
        raise VerificationFailed(
            Failure.STATUS_INVALID, f"stapled status for serial {serial} is {cert_status.name}"
        )
    if next_update is None:
        raise VerificationFailed(
            Failure.STATUS_INVALID, f"stapled status for serial {serial} has no nextUpdate"
        )
    if next_update - this_update > MAX_STATUS_WINDOW:
        raise VerificationFailed(
            Failure.STATUS_INVALID,
            f"stapled status for serial {serial} is valid for {next_update - this_update}, "
            f"longer than the {MAX_STATUS_WINDOW.days} days a status may be believed",
        )
    if this_update > now + skew:
        raise VerificationFailed(
            Failure.STATUS_INVALID,
            f"stapled status for serial {serial} is from the future (thisUpdate "
            f"{_z(this_update)}, now {_z(now)})",
        )
    if now > next_update + skew:
        raise VerificationFailed(
            Failure.STATUS_STALE,
            f"stapled status for serial {serial} expired at {_z(next_update)} "
            f"(now {_z(now)}); the holder has not refreshed it",
        )
    return StatusVerdict(leaf.serial_number, _cn(issuer), this_update, next_update)


class StatusCache:
    """Good verdicts, reused while ``now`` stays inside their window: a peer staples
    the same response to every handshake for up to an hour, and checking it costs a
    signature verification. Failures are never cached (they are re-judged, and a
    revocation arrives as a new response, hence a new key)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._verdicts: OrderedDict[tuple[bytes, int, bytes], StatusVerdict] = OrderedDict()
        self.hits = 0

    def check(
        self,
        der: bytes,
        leaf: x509.Certificate,
        issuer: x509.Certificate,
        now: dt.datetime,
        skew: dt.timedelta = DEFAULT_SKEW,
    ) -> tuple[StatusVerdict, bool]:
        """The verdict of check_status, and whether it came from the cache."""
        key = (der, leaf.serial_number, issuer.fingerprint(hashes.SHA256()))
        hit = self._verdicts.get(key) if self.size > 0 else None
        if hit is not None and hit.this_update - skew <= now <= hit.next_update + skew:
            self._verdicts.move_to_end(key)
            self.hits += 1
            return hit, True
        verdict = check_status(der, leaf, issuer, now, skew)
        if self.size > 0:
            self._verdicts[key] = verdict
            if len(self._verdicts) > self.size:
                self._verdicts.popitem(last=False)
        return verdict, False


@dataclass(frozen=True)
class Revoked:
    serial: int
    when: dt.datetime
    reason: str
    issuer: str

    def describe(self) -> str:
        return (
            f"certificate serial {self.serial:x} was revoked at {_z(self.when)} "
            f"({self.reason}) by {self.issuer}"
        )


def pem_crls(pem: bytes) -> tuple[list[x509.CertificateRevocationList], int]:
    """The CRLs that parse in a PEM bundle, and how many blocks there were."""
    blocks = _CRL_PEM.findall(pem)
    crls = []
    for block in blocks:
        with contextlib.suppress(ValueError):
            crls.append(x509.load_pem_x509_crl(block))
    return crls, len(blocks)


def crl_number(crl: x509.CertificateRevocationList) -> int:
    """Its cRLNumber, -1 without one (CRLs written before mtlsdemo set it)."""
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return -1


class RevocationLists:
    """The CRLs in force (one per CA of the bundle), each verified against the CA
    that signed it; a CRL with a trusted name and a bad signature is refused, one
    from a CA we do not trust is ignored."""

    def __init__(self, crls: Sequence[x509.CertificateRevocationList]) -> None:
        self.crls = tuple(crls)
        # issuer names encoded once: sidecars ask on every handshake (lookup_serial)
        self._issuers = tuple(crl.issuer.public_bytes() for crl in self.crls)

    @classmethod
    def parse(
        cls, pem: bytes, cas: Iterable[x509.Certificate], source: str = "CRL"
    ) -> RevocationLists:
        blocks = _CRL_PEM.findall(pem)
        if not blocks:
            raise ValueError(f"{source}: no PEM CRL found")
        crls, anchors = [], list(cas)
        for block in blocks:
            try:
                crl = x509.load_pem_x509_crl(block)
            except ValueError as e:
                raise ValueError(f"{source}: not a valid CRL ({e})") from None
            named = [ca for ca in anchors if ca.subject == crl.issuer]
            if not named:
                # a CRL from a CA we do not trust cannot revoke anything we accept
                # (during a rollover the file may name a CA our bundle lacks yet)
                continue
            if not any(crl.is_signature_valid(ca.public_key()) for ca in named):  # type: ignore[arg-type]
                raise ValueError(
                    f"{source}: CRL from {crl.issuer.rfc4514_string()} does not verify with "
                    "the trusted CA's key"
                )
            crls.append(crl)
        return cls(crls)

    def lookup(self, cert: x509.Certificate) -> Revoked | None:
        return self.lookup_serial(cert.issuer.public_bytes(), cert.serial_number)

    def lookup_serial(self, issuer_der: bytes, serial: int) -> Revoked | None:
        """The revocation of the certificate with this issuer (DER name) and serial."""
        for crl, issuer in zip(self.crls, self._issuers, strict=True):
            if issuer != issuer_der:
                continue
            entry = crl.get_revoked_certificate_by_serial_number(serial)
            if entry is None:
                continue
            reason = "unspecified"
            with contextlib.suppress(x509.ExtensionNotFound):
                reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
            return Revoked(
                serial,
                entry.revocation_date_utc,
                reason,
                crl.issuer.rfc4514_string(),
            )
        return None

    def crl_of(self, issuer_der: bytes) -> x509.CertificateRevocationList | None:
        """The CRL in force for the issuer with this DER name, if any."""
        for crl, issuer in zip(self.crls, self._issuers, strict=True):
            if issuer == issuer_der:
                return crl
        return None

    def high_water(self) -> dict[bytes, tuple[int, dt.datetime]]:
        """Per issuer (DER name): the (cRLNumber, thisUpdate) in force, the mark a
        later CRL must not fall below."""
        return {
            issuer: (crl_number(crl), crl.last_update_utc)
            for crl, issuer in zip(self.crls, self._issuers, strict=True)
        }

    def rollback_from(self, held: RevocationLists) -> str | None:
        """Why these lists are older than ``held`` (the lists in force, kept across
        restarts: an old, validly signed CRL put back would un-revoke), or None.
        Compared per issuer by cRLNumber, then thisUpdate."""
        seen = held.high_water()
        for crl, issuer in zip(self.crls, self._issuers, strict=True):
            if issuer not in seen:
                continue
            number, this_update = seen[issuer]
            if (crl_number(crl), crl.last_update_utc) < (number, this_update):
                return (
                    f"CRL from {crl.issuer.rfc4514_string()} number {crl_number(crl)} "
                    f"(thisUpdate {_z(crl.last_update_utc)}) is older than one already "
                    f"seen, number {number} (thisUpdate {_z(this_update)})"
                )
        return None

    def keeping(
        self, held: RevocationLists, trusted: Iterable[x509.Certificate]
    ) -> tuple[RevocationLists, list[str]]:
        """These lists plus the held CRL of every still-trusted issuer this file
        no longer carries (a rollover's file with only the new CA's CRL must not
        forget the old CA's revocations); the names of those kept."""
        names = {ca.subject for ca in trusted}
        mine = set(self._issuers)
        kept = [
            crl
            for crl, issuer in zip(held.crls, held._issuers, strict=True)
            if issuer not in mine and crl.issuer in names
        ]
        return RevocationLists((*self.crls, *kept)), [c.issuer.rfc4514_string() for c in kept]

    @property
    def revoked_count(self) -> int:
        return sum(len(crl) for crl in self.crls)

    @property
    def oldest_this_update(self) -> dt.datetime:
        return min(crl.last_update_utc for crl in self.crls)

    @property
    def earliest_next_update(self) -> dt.datetime | None:
        nexts = [crl.next_update_utc for crl in self.crls if crl.next_update_utc is not None]
        return min(nexts) if nexts else None
