"""SPIFFE IDs as the SPIFFE ID and X.509-SVID specifications define them.

A SPIFFE ID is ``spiffe://<trust domain>/<path>``: the scheme exactly ``spiffe``;
the trust domain of lowercase letters, digits, ``.``, ``-`` and ``_``; path
segments of letters, digits, ``.``, ``-`` and ``_``, none empty, none ``.`` or
``..``; no query, fragment, port, userinfo or percent-escape. An X.509-SVID
carries exactly one URI SAN, and it is the SPIFFE ID.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509

_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]+$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
PREFIX = "spiffe://"
TRUST_DOMAIN_MAX = 255  # the SPIFFE ID spec's limit on a trust domain name
# The project's default trust domain: every command's --trust-domain default.
DEFAULT_TRUST_DOMAIN = "mtls-demo.local"


class SpiffeIdError(ValueError):
    """Not a well-formed SPIFFE ID; the message says which rule it breaks."""


def trust_domain_problem(domain: str) -> str | None:
    """Why ``domain`` is not a SPIFFE trust domain, or None: the one rule, used by the
    verifier (``SpiffeId.parse``) and by issuance (``certs bootstrap --trust-domain``)
    alike, so nothing is issued that the verifier would refuse, and the reverse."""
    if not domain:
        return "the trust domain is empty"
    if len(domain) > TRUST_DOMAIN_MAX:
        return f"trust domain is {len(domain)} characters (at most {TRUST_DOMAIN_MAX})"
    if not _TRUST_DOMAIN.match(domain):
        return (
            f"trust domain {domain!r} may hold only lowercase letters, "
            "digits, '.', '-' and '_' (no port, userinfo or uppercase)"
        )
    return None


def check_trust_domain(domain: str) -> str:
    """``domain`` if it is a SPIFFE trust domain; SpiffeIdError saying why not."""
    problem = trust_domain_problem(domain)
    if problem:
        raise SpiffeIdError(problem)
    return domain


def workload_id(trust_domain: str, namespace: str, service: str) -> str:
    """The project's workload SPIFFE ID: ``spiffe://TD/ns/NAMESPACE/sa/SERVICE``
    (Istio's and Linkerd's shape: namespace and service account)."""
    return f"{PREFIX}{trust_domain}/ns/{namespace}/sa/{service}"


@dataclass(frozen=True)
class SpiffeId:
    trust_domain: str
    path: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> SpiffeId:
        if not text.startswith(PREFIX):
            raise SpiffeIdError(f"{text!r}: a SPIFFE ID starts with {PREFIX!r} (lowercase)")
        rest = text[len(PREFIX) :]
        domain, slash, path = rest.partition("/")
        problem = trust_domain_problem(domain)
        if problem:
            raise SpiffeIdError(f"{text!r}: {problem}")
        if not slash:
            return cls(domain, ())
        segments = tuple(path.split("/"))
        for seg in segments:
            if seg == "":
                raise SpiffeIdError(f"{text!r}: empty path segment (a '//' or a trailing '/')")
            if seg in (".", ".."):
                raise SpiffeIdError(f"{text!r}: path segment {seg!r} is not allowed")
            if not _SEGMENT.match(seg):
                raise SpiffeIdError(
                    f"{text!r}: path segment {seg!r} may hold only letters, digits, "
                    "'.', '-' and '_' (no query, fragment or percent-escape)"
                )
        return cls(domain, segments)

    def __str__(self) -> str:
        return PREFIX + self.trust_domain + "".join("/" + s for s in self.path)


def uri_sans(cert: x509.Certificate) -> list[str]:
    """Every URI in the certificate's subjectAltName, SPIFFE or not, any case."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def svid_identity(cert: x509.Certificate) -> SpiffeId:
    """The SPIFFE ID of an X.509-SVID: its one URI SAN, well formed. Raises
    SpiffeIdError naming what is wrong (no URI, several URIs, a malformed one)."""
    uris = uri_sans(cert)
    if len(uris) != 1:
        shown = ", ".join(uris) if uris else "none"
        raise SpiffeIdError(
            f"an SVID carries exactly one URI SAN, this one has {len(uris)} ({shown})"
        )
    return SpiffeId.parse(uris[0])


def display_identity(cert: x509.Certificate) -> str:
    """For logs and status pages: the SPIFFE ID when it is one, else the subject."""
    try:
        return str(svid_identity(cert))
    except SpiffeIdError:
        return cert.subject.rfc4514_string()
