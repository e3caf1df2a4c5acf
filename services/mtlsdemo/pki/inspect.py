"""Human-readable description of a certificate, like ``openssl x509 -text`` but short."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509

from mtlsdemo.pki.durations import human
from mtlsdemo.pki.files import fingerprint, key_ids, load_certs
from mtlsdemo.pki.identity import san_of
from mtlsdemo.pki.keys import key_type_of
from mtlsdemo.trust import TrustStore, VerificationFailed
from mtlsdemo.trust.spiffe import uri_sans
from mtlsdemo.trust.status import check_status
from mtlsdemo.trust.verify import issued_by


def _ext(cert: x509.Certificate, cls: type) -> object | None:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def describe(path: Path, ca_path: Path | None, now: dt.datetime) -> str:
    certs = load_certs(path)
    cert = certs[0]
    lines = [
        f"file:         {path}" + (f" (+{len(certs) - 1} more in chain)" if len(certs) > 1 else "")
    ]
    lines.append(f"subject:      {cert.subject.rfc4514_string()}")
    lines.append(f"issuer:       {cert.issuer.rfc4514_string()}")
    lines.append(f"serial:       {cert.serial_number:x}")
    uris = uri_sans(cert)
    lines.append(f"uri names:    {', '.join(uris) if uris else '(none)'}")
    san = san_of(cert)
    if san is not None:
        lines.append(
            f"dns names:    {', '.join(san.get_values_for_type(x509.DNSName)) or '(none)'}"
        )
        ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)]
        lines.append(f"ip addresses: {', '.join(ips) or '(none)'}")
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        state = f"NOT YET VALID (starts in {human(start - now)})"
    elif now > end:
        state = f"EXPIRED {human(now - end)} ago"
    else:
        state = f"valid, expires in {human(end - now)}"
    lines.append(f"validity:     {start:%Y-%m-%d %H:%M:%S}Z .. {end:%Y-%m-%d %H:%M:%S}Z ({state})")
    lines.append(f"key:          {key_type_of(cert.public_key())}")
    bc = _ext(cert, x509.BasicConstraints)
    if isinstance(bc, x509.BasicConstraints):
        lines.append(
            f"ca:           {bc.ca}" + (f" (path length {bc.path_length})" if bc.ca else "")
        )
    ku = _ext(cert, x509.KeyUsage)
    if isinstance(ku, x509.KeyUsage):
        uses = [
            n
            for n in ("digital_signature", "key_encipherment", "key_cert_sign", "crl_sign")
            if getattr(ku, n)
        ]
        lines.append(f"key usage:    {', '.join(uses)}")
    eku = _ext(cert, x509.ExtendedKeyUsage)
    if isinstance(eku, x509.ExtendedKeyUsage):
        lines.append(f"ext key use:  {', '.join(o._name for o in eku)}")
    lines.append(f"sha256:       {fingerprint(cert)}")
    ski, aki = key_ids(cert)
    lines.append(f"key id:       {ski or '(none)'}")
    lines.append(f"issuer key id: {aki or '(none)'}  (what unknown_ca errors cite)")
    if ca_path is not None:
        cas = load_certs(ca_path)
        if bc is not None and isinstance(bc, x509.BasicConstraints) and bc.ca:
            trusted = any(c == cert for c in cas)
            lines.append(
                f"chain:        {'is a trusted root in ' if trusted else 'CA not in '}{ca_path}"
            )
        else:
            lines += [f"chain ({role} auth): {v}" for role, v in verdicts(certs, cas, now).items()]
            staple = path.with_suffix(".ocsp")
            if staple.exists():
                lines.append(
                    f"stapled status ({staple.name}): {status_verdict(staple, cert, cas, now)}"
                )
    return "\n".join(lines)


def status_verdict(
    staple: Path, cert: x509.Certificate, cas: list[x509.Certificate], now: dt.datetime
) -> str:
    """What a sidecar would say of the status this identity staples."""
    issuer = next((c for c in cas if issued_by(cert, c)), None)
    if issuer is None:
        return "FAILED: unknown_ca: its issuer is not in the bundle"
    try:
        v = check_status(staple.read_bytes(), cert, issuer, now)
    except VerificationFailed as e:
        return f"FAILED: {e.failure.value}: {e.detail}"
    except OSError as e:
        return f"FAILED: cannot read: {e.strerror}"
    return f"OK (good until {v.next_update:%Y-%m-%d %H:%M:%S}Z, {human(v.next_update - now)} left)"


def verdicts(
    certs: list[x509.Certificate], cas: list[x509.Certificate], now: dt.datetime
) -> dict[str, str]:
    """What a sidecar would say of this chain as a client and as a server peer:
    the same verifier, so `certs inspect` and the handshake never disagree."""
    store = TrustStore(cas, cache_size=0)
    out = {}
    for role in ("client", "server"):
        try:
            verified = store.verify_certificates(certs, role, now)
        except VerificationFailed as e:
            out[role] = f"FAILED: {e.failure.value}: {e.detail}"
        else:
            out[role] = f"OK ({verified.identity})"
    return out
