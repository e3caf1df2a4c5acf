"""Test kit for the sans-I/O handshake: identities, configs, and a byte pump."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from mtlsdemo.explain.illustrate import TickClock  # the page's: 1 ms per reading
from mtlsdemo.handshake import (
    Connection,
    DataReceived,
    Event,
    HandshakeComplete,
    HandshakeConfig,
    ProtocolError,
    Reason,
)
from mtlsdemo.handshake import messages as m
from mtlsdemo.handshake.config import Credentials
from mtlsdemo.handshake.peer import TrustStore
from mtlsdemo.handshake.suites import VERSION_1_2
from mtlsdemo.pki.ca import CertificateAuthority, create_root_ca, random_serial
from mtlsdemo.pki.identity import ServiceIdentity
from mtlsdemo.pki.issue import issue_leaf
from mtlsdemo.pki.keys import generate_key, signing_hash

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


class SeededEntropy:
    """Replayable randomness: SHA-256 of (seed, counter). Same seed, same bytes."""

    def __init__(self, seed: bytes) -> None:
        self.seed, self.counter = seed, 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self.seed + self.counter.to_bytes(8, "big")).digest()
            self.counter += 1
        return out[:n]


_sessions = itertools.count()


def new(
    role: str, cfg: HandshakeConfig, now: dt.datetime | None = None, seed: bytes | None = None
) -> Connection:
    """A connection on a test clock and seeded randomness. Without a seed, each
    connection gets its own (two sessions never share randoms, as in real life);
    with one, the same seed replays the same bytes."""
    if seed is None:
        seed = f"{role}-{next(_sessions)}".encode()
    return Connection(role, cfg, now=now or NOW, clock=TickClock(), entropy=SeededEntropy(seed))


# CAs by name; some are made to break rules.
CA_SPECS: dict[str, dict] = {
    "short": {"days": 1},  # expires tomorrow
    "future": {"at": NOW + dt.timedelta(days=1)},  # not valid until tomorrow
}


_CAS: dict[str, CertificateAuthority] = {}


def ca(name: str = "main") -> CertificateAuthority:
    # one cache key per name: functools.cache would tell ca() from ca("main")
    return _ca(name)


@functools.cache
def _ca(name: str) -> CertificateAuthority:
    spec = CA_SPECS.get(name, {})
    _CAS[name] = create_root_ca(
        "ecdsa-p256", spec.get("days", 3650), f"{name}.test", spec.get("at", NOW)
    )
    return _CAS[name]


def status(cert: x509.Certificate, revoked: list | None = None, at: dt.datetime = NOW) -> bytes:
    """The good (or revoked) OCSP response its hskit CA signs for ``cert``, valid
    from ``at`` for an hour; b"" for a certificate no hskit CA issued."""
    from mtlsdemo.pki.revocation import build_status
    from mtlsdemo.trust.verify import issued_by

    for authority in _CAS.values():
        if issued_by(cert, authority.cert):
            return build_status(authority, cert, revoked or [], at)
    return b""


@functools.cache
def leaf(
    service: str,
    key_type: str = "ecdsa-p256",
    issuer: str = "main",
    at: dt.datetime = NOW,
    days: float = 30,
) -> tuple[x509.Certificate, object]:
    key = generate_key(key_type)
    return issue_leaf(ca(issuer), key.public_key(), ServiceIdentity(service), at, days), key


def creds(
    cert: x509.Certificate, key: object, chain: tuple = (), staple: bytes | None = None
) -> Credentials:
    """Credentials that staple their CA's good status (as the bootstrap writes it)
    unless ``staple`` says otherwise (b"": none)."""
    der = tuple(c.public_bytes(serialization.Encoding.DER) for c in (cert, *chain))
    from mtlsdemo.handshake.signatures import scheme_for

    return Credentials(
        (cert, *chain), key, der, scheme_for(key), status(cert) if staple is None else staple
    )


def config(
    service: str,
    key_type: str = "ecdsa-p256",
    issuer: str = "main",
    trust: tuple[CertificateAuthority, ...] | None = None,
    credentials: Credentials | None = None,
    **kw,
) -> HandshakeConfig:
    cred = credentials or creds(*leaf(service, key_type, issuer))
    anchors = trust if trust is not None else (ca(issuer),)
    return HandshakeConfig(cred, TrustStore([a.cert for a in anchors]), **kw)


def custom_leaf(
    service: str,
    ekus: list | None,
    is_ca: bool = False,
    issuer: str = "main",
    days: float = 1,
    eku_critical: bool = False,
) -> tuple[x509.Certificate, object]:
    """A leaf with chosen EKUs (None: no EKU extension) or a CA flag, to break rules."""
    authority = ca(issuer)
    key = generate_key("ecdsa-p256")
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(ServiceIdentity(service).san(), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.cert.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ekus is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(ekus), critical=eku_critical)
    return b.sign(authority.key, signing_hash(authority.key)), key


SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH


@dataclass
class Outcome:
    client_events: list[Event] = field(default_factory=list)
    server_events: list[Event] = field(default_factory=list)
    client_error: ProtocolError | None = None
    server_error: ProtocolError | None = None

    def delivered(self, side: str) -> bytes:
        evs = self.client_events if side == "client" else self.server_events
        return b"".join(e.data for e in evs if isinstance(e, DataReceived))

    def completed(self, side: str) -> bool:
        evs = self.client_events if side == "client" else self.server_events
        return any(isinstance(e, HandshakeComplete) for e in evs)


Tamper = Callable[[str, bytes], bytes]  # (direction "c2s"/"s2c", bytes) -> bytes


def pump(
    client: Connection,
    server: Connection,
    tamper: Tamper | None = None,
    client_data: bytes = b"",
    max_rounds: int = 10,
) -> Outcome:
    """Run both sides until quiet or failed, passing every flight through ``tamper``.
    A failing side's alert is still delivered to the other side."""
    out = Outcome()
    if client.state.value == "start":
        client.start()
    sent_app = False
    for _ in range(max_rounds):
        moved = False
        for src, dst, direction in ((client, server, "c2s"), (server, client, "s2c")):
            data = src.data_to_send()
            if tamper and data:
                data = tamper(direction, data)
            if not data:
                continue
            moved = True
            side = "server" if dst is server else "client"
            if (out.server_error if side == "server" else out.client_error) is not None:
                continue
            try:
                evs = dst.receive_data(data)
            except ProtocolError as e:
                evs = e.events
                if side == "server":
                    out.server_error = e
                else:
                    out.client_error = e
            (out.server_events if side == "server" else out.client_events).extend(evs)
        if client_data and not sent_app and client.handshake_done and out.client_error is None:
            client.send_data(client_data)
            sent_app = True
            moved = True
        if not moved:
            break
    return out


def handshake(
    ccfg: HandshakeConfig,
    scfg: HandshakeConfig,
    tamper: Tamper | None = None,
    client_now: dt.datetime | None = None,
    server_now: dt.datetime | None = None,
    client_data: bytes = b"",
) -> tuple[Connection, Connection, Outcome]:
    c = new("client", ccfg, now=client_now)
    s = new("server", scfg, now=server_now)
    return c, s, pump(c, s, tamper, client_data)


def assert_rejected(out: Outcome, rejecting: str, reason: Reason, sealed: bool = False) -> None:
    """``rejecting`` found ``reason`` locally and told the other side, which saw
    the same reason as the peer's: under the session keys ("remote") when ``sealed``,
    else in clear ("remote_unverified": before keys, only a claim); neither side
    delivered application data."""
    local = out.client_error if rejecting == "client" else out.server_error
    remote = out.server_error if rejecting == "client" else out.client_error
    assert local is not None, f"{rejecting} did not fail"
    assert (local.reason, local.origin) == (reason, "local"), local
    assert remote is not None, "the peer was not told"
    told = "remote" if sealed else "remote_unverified"
    assert (remote.reason, remote.origin) == (reason, told), remote
    assert out.delivered("client") == b"" and out.delivered("server") == b""
    assert not out.completed(rejecting)


def split_messages(data: bytes) -> list[tuple[int, bytes]]:
    """Plaintext handshake records -> [(record type, message bytes)]; payloads of
    other records are returned whole."""
    out = []
    pos = 0
    hs = b""
    while pos < len(data):
        ctype, length = data[pos], int.from_bytes(data[pos + 3 : pos + 5], "big")
        payload = data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if ctype != 22:
            out.append((ctype, payload))
            continue
        hs += payload
        while len(hs) >= 4 and len(hs) >= 4 + int.from_bytes(hs[1:4], "big"):
            n = 4 + int.from_bytes(hs[1:4], "big")
            out.append((22, hs[:n]))
            hs = hs[n:]
    return out


def join_messages(parts: list[tuple[int, bytes]]) -> bytes:
    out = b""
    for ctype, payload in parts:
        out += bytes((ctype, 1, 0)) + len(payload).to_bytes(2, "big") + payload
    return out


def rewrite(direction: str, index: int, fn: Callable[[bytes], bytes | None]) -> Tamper:
    """Tamper with the ``index``-th flight in ``direction``: fn gets the list of
    messages' bytes and returns new bytes for the whole flight."""
    seen = {"c2s": 0, "s2c": 0}

    def tamper(d: str, data: bytes) -> bytes:
        if d != direction:
            return data
        i = seen[d]
        seen[d] += 1
        if i != index:
            return data
        result = fn(data)
        return data if result is None else result

    return tamper


class SigningPeer:
    """A malicious peer that signs whatever it sends: a tamper that rewrites messages
    of ``role``'s own flight (``rewrite``: message type -> body -> new body) and then
    re-signs ``role``'s CertificateVerify, with its own key, over the transcript as
    rewritten. So every signature is honest and only the receiver's own checks can
    stop it. (Works on the compiled core too: nothing inside it is patched.)"""

    def __init__(self, role: str, key: object, rewrite: dict[int, Callable[[bytes], bytes]]):
        self.role, self.key, self.rewrite = role, key, rewrite
        self.client_random = b""
        self.hello = b""  # the ClientHello as delivered (MTD/1.2 signs it too)
        self.version = 0  # as the ServerHello chose
        self.signed: list[bytes] = []  # every message from ServerHello on, as delivered

    def __call__(self, direction: str, data: bytes) -> bytes:
        from mtlsdemo.handshake.signatures import Scheme, sign, signed_content

        mine = (direction == "c2s") == (self.role == "client")
        out = []
        for ctype, raw in split_messages(data):
            if ctype == 22:
                t = raw[0]
                if t == m.HandshakeType.CLIENT_HELLO:
                    self.client_random = m.decode(t, raw[4:]).random
                    self.hello = raw
                if t == m.HandshakeType.SERVER_HELLO:
                    self.version = m.decode(t, raw[4:]).version
                if mine and t in self.rewrite:
                    body = self.rewrite[t](raw[4:])
                    raw = bytes((t,)) + len(body).to_bytes(3, "big") + body
                if mine and t == m.HandshakeType.CERTIFICATE_VERIFY:
                    cv = m.decode(t, raw[4:])
                    # the signed transcript as the core builds it (core._signed_hash)
                    first = self.hello if self.version >= VERSION_1_2 else self.client_random
                    h = hashlib.sha256(first + b"".join(self.signed)).digest()
                    sig = sign(self.key, Scheme(cv.scheme), signed_content(self.role, h))
                    raw = m.encode(m.CertificateVerify(cv.scheme, sig))
                if t != m.HandshakeType.CLIENT_HELLO:
                    self.signed.append(raw)
            out.append((ctype, raw))
        return join_messages(out)
