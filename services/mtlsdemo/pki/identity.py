"""Service identities: SPIFFE IDs and the DNS names a service answers to."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from cryptography import x509

from mtlsdemo.pki.errors import PkiError
from mtlsdemo.trust import spiffe
from mtlsdemo.trust.spiffe import DEFAULT_TRUST_DOMAIN, workload_id

# RFC 1123 label, which is also what Kubernetes requires of a Service name.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_label(value: str, flag: str) -> str:
    if not _DNS_LABEL.match(value):
        raise PkiError(
            f"{flag}: {value!r} is not a valid DNS label "
            "(lowercase letters, digits and '-', 1-63 characters, not starting or ending with '-')"
        )
    return value


def check_trust_domain(value: str) -> str:
    """The verifier's rule (trust/spiffe.py), worded for the flag."""
    try:
        return spiffe.check_trust_domain(value)
    except spiffe.SpiffeIdError as e:
        raise PkiError(f"--trust-domain: {e}") from None


@dataclass(frozen=True)
class ServiceIdentity:
    """Everything that names one service in its certificate."""

    service: str
    namespace: str = "default"
    trust_domain: str = DEFAULT_TRUST_DOMAIN

    @classmethod
    def checked(cls, service: str, namespace: str, trust_domain: str) -> ServiceIdentity:
        return cls(
            check_label(service, "--service"),
            check_label(namespace, "--namespace"),
            check_trust_domain(trust_domain),
        )

    @property
    def spiffe_id(self) -> str:
        return workload_id(self.trust_domain, self.namespace, self.service)

    @property
    def dns_names(self) -> list[str]:
        s, ns = self.service, self.namespace
        return [s, f"{s}.{ns}", f"{s}.{ns}.svc", f"{s}.{ns}.svc.cluster.local", "localhost"]

    @property
    def ip_addresses(self) -> list[ipaddress.IPv4Address]:
        return [ipaddress.IPv4Address("127.0.0.1")]

    def san(self) -> x509.SubjectAlternativeName:
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(self.spiffe_id)]
        names += [x509.DNSName(d) for d in self.dns_names]
        names += [x509.IPAddress(ip) for ip in self.ip_addresses]
        return x509.SubjectAlternativeName(names)


def san_of(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def san_summary(cert: x509.Certificate) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(URIs, DNS names, IPs) of a certificate, for comparing against a request."""
    san = san_of(cert)
    if san is None:
        return frozenset(), frozenset(), frozenset()
    return (
        frozenset(san.get_values_for_type(x509.UniformResourceIdentifier)),
        frozenset(san.get_values_for_type(x509.DNSName)),
        frozenset(str(i) for i in san.get_values_for_type(x509.IPAddress)),
    )
