"""Why a native gRPC mTLS connection failed, in MTD/1's words and with who
refused whom.

gRPC reports a failed TLS handshake as UNAVAILABLE with BoringSSL's text ("unable
to get local issuer certificate", "Socket closed"). To explain it, the client
does the handshake again itself with Python's ``ssl`` (a real TLS library; we
only drive it) and the same identity, then:

1. judges the server's certificate with the one verifier (``trust.TrustStore``,
   the sidecar's) and the server name: a refusal here is ours (origin local);
2. if that passes, sends an HTTP/2 preface and reads: in TLS 1.3 a server that
   refuses our certificate says so with an alert *after* the handshake, which
   ``ssl`` raises here (origin remote), e.g. ``TLSV1_ALERT_UNKNOWN_CA``.

A gRPC server cannot report a handshake it refused: it never sees a call, so the
caller is the only one who can name it (docs/operations.md).
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from mtlsdemo.addresses import DEFAULT_PORTS, is_loopback_host
from mtlsdemo.handshake.suites import VERSION_1
from mtlsdemo.pki.material import IdentityMaterial
from mtlsdemo.rpc.ssl_identity import load_identity
from mtlsdemo.trust import TrustStore, VerificationFailed
from mtlsdemo.trust.verify import issued_by

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
_ALERT = re.compile(r"ALERT_([A-Z_]+)")


@dataclass(frozen=True)
class Diagnosis:
    reason: str  # an MTD/1 reason name (docs/protocol.md §6), or "unreachable"
    origin: str  # "local": we refused the server; "remote": the server refused us
    detail: str  # the check's own words (which certificate, which CA, which name)
    todo: str = ""  # what to do about it, for a refusal of ours by the server
    how: str = ""  # how we know, when the server did not say it on the wire

    def sentence(self, server: str) -> str:
        if self.reason == "unreachable":
            return f"cannot reach the {server}: {self.detail}"
        if self.origin == "local":
            return f"you refused the {server}: {self.reason}: {self.detail}"
        because = BECAUSE.get(self.reason, "it could not accept it")
        out = f"the {server} refused your certificate because {because} ({self.reason})"
        out += f": {self.detail}" if self.detail else ""
        out += f". What to do: {self.todo}" if self.todo else ""
        return out + (f". How we know: {self.how}" if self.how else "")


# why a server refuses a client certificate, in plain words, per reason
BECAUSE = {
    "unknown_ca": "it does not trust the CA that issued it",
    "certificate_expired": "it has expired",
    "certificate_not_yet_valid": "it is not valid yet",
    "certificate_required": "it requires one and got none",
    "certificate_revoked": "its CA revoked it",
    "bad_certificate": "it could not use it",
    "identity_mismatch": "your identity is not one it lets call it",
}


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.DNSName) + [
        str(i) for i in san.get_values_for_type(x509.IPAddress)
    ]


def _inferred(
    material: IdentityMaterial,
    server_leaf: x509.Certificate,
    now: dt.datetime,
    identity_dir: Path | None,
) -> Diagnosis:
    their_cas = [c for c in material.cas if issued_by(server_leaf, c)]
    how = (
        "it closed the connection after the TLS handshake without sending a reason, so "
        "we ran its check ourselves, with the CA that issued its own certificate"
    )
    try:
        TrustStore(their_cas or material.cas, cache_size=0).verify_certificates(
            list(material.chain), "client", now
        )
    except VerificationFailed as e:
        reason = e.failure.value
        return Diagnosis(reason, "remote", e.detail, what_to_do(reason, identity_dir), how)
    return Diagnosis(
        "bad_certificate",
        "remote",
        "your certificate verifies against its CA",
        "ask its log (allow-list and revocation are answered as gRPC errors, not here)",
        how,
    )


def _their_alert(e: ssl.SSLError) -> str:
    m = _ALERT.search(e.reason or str(e))
    return m.group(1).lower() if m else "handshake_failure"


def what_to_do(reason: str, identity_dir: Path | None) -> str:
    where = f" ({identity_dir})" if identity_dir else ""
    return {
        "unknown_ca": "use an identity issued by the mesh's CA"
        + (f" ({identity_dir} is not)" if identity_dir else ""),
        "certificate_expired": f"renew your certificate{where} (`mtlsdemo certs bootstrap`)",
        "certificate_required": "present a client certificate",
        "bad_certificate": f"check your certificate{where} (its key usage?)",
        "certificate_revoked": f"re-issue your certificate{where}",
    }.get(reason, "see the server's log")


def diagnose(
    host: str,
    port: int,
    material: IdentityMaterial,
    server_name: str,
    now: dt.datetime,
    identity_dir: Path | None = None,
    timeout: float = 3.0,
) -> Diagnosis | None:
    """What failed in the TLS handshake with host:port, or None if it succeeds
    both ways (the failure was not the handshake's)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # we judge their certificate ourselves, below
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["h2"])
    try:
        load_identity(ctx, material)
    except OSError as e:  # no memfd and no writable temporary directory
        return Diagnosis("unreachable", "local", f"cannot load our own identity to diagnose: {e}")
    try:
        try:
            raw = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            return Diagnosis(
                "unreachable", "local", f"cannot connect to {host}:{port}: {e.strerror or e}"
            )
        with raw, ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            leaf_der = tls.getpeercert(binary_form=True)
            if leaf_der is None:
                return Diagnosis("certificate_required", "local", "the server sent no certificate")
            leaf = x509.load_der_x509_certificate(leaf_der)
            try:
                TrustStore(material.cas, cache_size=0).verify_certificates([leaf], "server", now)
            except VerificationFailed as e:
                bundle = f" (your bundle: {identity_dir / 'ca.crt'})" if identity_dir else ""
                return Diagnosis(e.failure.value, "local", e.detail + bundle)
            names = _names(leaf)
            if server_name not in names:
                return Diagnosis(
                    "identity_mismatch",
                    "local",
                    f"its certificate names {', '.join(names) or 'nothing'} — not "
                    f"{server_name!r} (--server-name)",
                )
            tls.sendall(H2_PREFACE)
            data = tls.recv(1024)
            if data:
                return None
            # gRPC's server (BoringSSL under its TSI layer) closes without flushing the
            # TLS alert: the reason is not on the wire. Infer it the way the server
            # judges us: our chain against the CA that issued the server's certificate.
            return _inferred(material, leaf, now, identity_dir)
    except ssl.SSLError as e:
        if e.reason == "WRONG_VERSION_NUMBER":  # its first bytes were not a TLS record
            return Diagnosis("unreachable", "local", _not_tls(host, port, timeout))
        reason = _their_alert(e)
        return Diagnosis(reason, "remote", "", what_to_do(reason, identity_dir), "its TLS alert")
    except OSError as e:  # reset or timeout while reading: the server hung up on us
        return Diagnosis(
            "bad_certificate",
            "remote",
            "",
            "see the server's log",
            f"it ended the connection ({e})",
        )


def _not_tls(host: str, port: int, timeout: float) -> str:
    """What answers on a port that does not speak TLS: an MTD/1 sidecar answers any
    bytes with an MTD/1 alert record (its version in the header)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"\x16\x03\x01\x00\x00")  # an empty TLS handshake record
            first = s.recv(16)
    except OSError:
        first = b""
    if first[:1] == b"\x15" and first[1:3] == VERSION_1.to_bytes(2, "big"):
        if is_loopback_host(host) and port == DEFAULT_PORTS["ledger"]:
            # the usual mix-up on a `make run` mesh: --transport mtd would then fail
            # with identity_mismatch (that sidecar is the ledger's)
            return (
                f"{host}:{port} is `mtlsdemo run`'s ledger sidecar (MTD/1), not the gateway: "
                f"the gateway's public port is 127.0.0.1:{DEFAULT_PORTS['gateway']} "
                "(--gateway-addr)"
            )
        return (
            f"{host}:{port} answers in MTD/1, not TLS: the gateway is behind its sidecar (a "
            "run with --gateway-transport mtd); call it with --transport mtd (or export "
            "MTLSDEMO_TRANSPORT=mtd)"
        )
    return f"{host}:{port} does not answer in TLS (the wrong port?)"


# grpcio's words in an UNAVAILABLE's details (lower case): a refused TLS handshake
# (wrong certificate, CA or name), or a connection that failed or broke
TLS_REFUSAL = ("handshake", "ssl", "tsi_", "hostname", "certificate")
CONNECTION_FAILURE = ("failed to connect", "socket closed", "connection reset")


def is_tls_refusal(details: str | None) -> bool:
    """A refused TLS handshake: the same attempt would be refused again."""
    text = (details or "").lower()
    return any(s in text for s in TLS_REFUSAL)


def is_transport_failure(details: str | None) -> bool:
    """An UNAVAILABLE that came from the connection, not from the application."""
    text = (details or "").lower()
    return is_tls_refusal(text) or any(s in text for s in CONNECTION_FAILURE)
