"""`mtlsdemo illustrate`: one whole mutual MTD/1 handshake and its first records, every
byte labelled, as a self-contained HTML page (no network, nothing to fetch).

The field boundaries are the encoder's own (``messages.layout``: the parts it joined),
never a second parser. With ``--seed N`` everything is fixed — the throwaway CA and
identities (ECDSA keys derived from the seed, RFC 6979 deterministic signatures), the clock and
every random the handshake draws — so two runs write the same bytes, and the page can
show the session secrets (nobody's real keys) with a command that recomputes a record.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, mlkem, x25519

from mtlsdemo.endpoint.memory import Wire, exchange, run_pair
from mtlsdemo.handshake import (
    Connection,
    HandshakeConfig,
    PeerPolicy,
    ProtocolError,
    TrustStore,
    kx,
)
from mtlsdemo.handshake import messages as m
from mtlsdemo.handshake.config import Credentials
from mtlsdemo.handshake.errors import REASON_BY_CODE
from mtlsdemo.handshake.keyschedule import traffic_keys
from mtlsdemo.handshake.records import HEADER_LEN, TAG_LEN, ContentType, split_view
from mtlsdemo.handshake.signatures import Scheme
from mtlsdemo.handshake.states import STEP_OF
from mtlsdemo.handshake.suites import BY_NAME
from mtlsdemo.pki.ca import CertificateAuthority, create_root_ca
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.identity import ServiceIdentity
from mtlsdemo.pki.issue import issue_leaf
from mtlsdemo.steps import STEP_TITLES
from mtlsdemo.trust.spiffe import DEFAULT_TRUST_DOMAIN, workload_id

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # the page's clock: fixed, so it replays
# the page's titles: the four steps', and the refusal a --break page ends with
TITLES = {**STEP_TITLES, "alert": "the refusal"}
TLS13 = {  # the TLS 1.3 message each MTD/1 message corresponds to
    "ClientHello": "ClientHello (without key_share: MTD/1's server sends the first share)",
    "ServerHello": "ServerHello",
    "Certificate": "Certificate (encrypted in TLS 1.3, in clear here)",
    "ServerKeyShare": "the ServerHello's key_share extension",
    "CertificateRequest": "CertificateRequest",
    "CertificateVerify": "CertificateVerify",
    "ClientKeyExchange": "the ClientHello's key_share (client side), sent later here",
    "Finished": "Finished",
    "NewSessionTicket": "NewSessionTicket",
}
NAMES = {
    m.HandshakeType.CLIENT_HELLO: "ClientHello",
    m.HandshakeType.SERVER_HELLO: "ServerHello",
    m.HandshakeType.CERTIFICATE: "Certificate",
    m.HandshakeType.SERVER_KEY_SHARE: "ServerKeyShare",
    m.HandshakeType.CERTIFICATE_REQUEST: "CertificateRequest",
    m.HandshakeType.CERTIFICATE_VERIFY: "CertificateVerify",
    m.HandshakeType.CLIENT_KEY_EXCHANGE: "ClientKeyExchange",
    m.HandshakeType.FINISHED: "Finished",
    m.HandshakeType.NEW_SESSION_TICKET: "NewSessionTicket",
}
WHAT = {  # each field: what it is and why it is there (docs/protocol.md's words)
    "record.type": "record type: 22 handshake, 23 application data, 21 alert, 24 key update",
    "record.version": "record version, always 0x0100",
    "record.length": "length of what follows in this record",
    "handshake.type": "handshake message type",
    "handshake.length": "length of the message body (24 bits)",
    "client_hello.versions_length": "length of the version list",
    "version": "a protocol version (0x0102 = MTD/1.2)",
    "random": "32 fresh random bytes: they make this session's keys unique (HKDF-Extract's salt)",
    "client_hello.suites_length": "length of the suite list",
    "suite": "a cipher suite: key exchange + AEAD",
    "certificate.count": "how many certificates follow (leaf first)",
    "certificate.length": "length of the next certificate",
    "certificate": "a DER X.509 certificate: its signed part (TBS) and the CA's signature",
    "certificate.status_length": "length of the stapled status (0: none stapled)",
    "certificate.status": "the CA-signed OCSP response for the leaf",
    "server_key_share.group": "the key exchange group (0x001D X25519, 0x11EC X25519MLKEM768)",
    "server_key_share.key_length": "length of the server's ephemeral public key share",
    "server_key_share.mlkem768_encapsulation_key": "the server's ML-KEM-768 encapsulation key",
    "x25519_public_key": "an ephemeral X25519 public key (a fresh one per handshake)",
    "certificate_request.schemes_length": "length of the accepted signature schemes",
    "signature_scheme": "a signature scheme (0x0807 Ed25519, 0x0403 ECDSA P-256, 0x0905 ML-DSA-65)",
    "certificate_verify.signature_length": "length of the signature",
    "certificate_verify.signature": "the signature over the transcript hash: proves the sender "
    "holds its certificate's private key",
    "client_key_exchange.length": "length of the client's key exchange data",
    "client_key_exchange.mlkem768_ciphertext": "the ML-KEM-768 ciphertext only the server opens",
    "client_key_exchange.rsa_oaep_ciphertext": "the pre-master secret, RSA-OAEP-encrypted",
    "finished.verify_data": "HMAC-SHA256 over the transcript with the finished key: both saw "
    "the same handshake and hold the same keys",
    "new_session_ticket.lifetime": "seconds the ticket may be used",
    "new_session_ticket.max_uses": "resumptions the ticket allows",
    "ticket_length": "length of the ticket",
    "ticket": "the ticket, sealed with the server's ticket key (opaque to the client)",
    "ciphertext": "the record's plaintext, AES-GCM-encrypted with the sender's traffic key",
    "tag": "the 16-byte AEAD tag over the header and the ciphertext: any changed byte fails it",
}


# the failures a page can show, in memory: what is changed, and which field of whose
# message the refusing side found wrong (marked on the page)
BREAKS = {
    "foreign-ca": ("the ledger's certificate comes from another CA", "server", "certificate"),
    "expired": (
        "the gateway's clock is 40 days ahead: the ledger's certificate has expired",
        "server",
        "certificate",
    ),
    "wrong-identity": ("the ledger allows another client identity only", "client", "certificate"),
    "wrong-server-name": ("the gateway expects another server identity", "server", "certificate"),
    "no-common-suite": ("the ledger enables no suite the gateway offers", "client", "suite"),
    "tamper": ("one bit of the gateway's first record flipped on the way", "client", "tag"),
}


class IllustrateError(PkiError):
    """A request the page cannot be made for (one line, exit 2)."""


@dataclass(frozen=True)
class IllustrateConfig:
    """`mtlsdemo illustrate`, typed."""

    seed: int = 1
    suite: str = "ECDHE-X25519-AES-256-GCM"
    out: Path = Path("illustrated")
    breaks: str = ""  # a failure to provoke (BREAKS), "" for a clean handshake
    key_type: str = "ecdsa-p256"  # or ml-dsa-65: every identity post-quantum


@dataclass(frozen=True)
class Run:
    """A labelled run of bytes of one record."""

    name: str
    offset: int  # in the record
    data: bytes
    what: str
    opens: str = ""  # the handshake message this run's header starts, for a heading


class SeededEntropy:
    """n -> n bytes, SHA-256 of (seed, label, counter): the same seed, the same bytes."""

    def __init__(self, seed: int, label: str) -> None:
        self.prefix = f"mtlsdemo-illustrate/{seed}/{label}/".encode()
        self.counter = 0
        # every value drawn: the page may show the one that became an ephemeral private
        # key (a real peer never shows it; this one is the seed's)
        self.draws: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self.prefix + str(self.counter).encode()).digest()
            self.counter += 1
        self.draws.append(out[:n])
        return out[:n]


class TickClock:
    """A monotonic clock that advances 1 ms per reading (timings are not shown)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 0.001
        return self.t


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


KEY_TYPES = ("ecdsa-p256", "ml-dsa-65")


def _key(
    seed: int, label: str, key_type: str = "ecdsa-p256"
) -> ec.EllipticCurvePrivateKey | mldsa.MLDSA65PrivateKey:
    """A key from the seed: ECDSA P-256 (certificates and CertificateVerify are signed
    with RFC 6979 deterministic nonces, so the whole page replays), or ML-DSA-65 from a
    32-byte seed (its signatures are hedged: fresh randomness in each)."""
    if key_type == "ml-dsa-65":
        return mldsa.MLDSA65PrivateKey.from_seed_bytes(SeededEntropy(seed, label)(32))
    scalar = int.from_bytes(SeededEntropy(seed, label)(48), "big") % (P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _serial(seed: int, label: str) -> int:
    return int.from_bytes(SeededEntropy(seed, "serial-" + label)(19), "big") | (1 << 150)


def _ca(seed: int, label: str, name: str, key_type: str = "ecdsa-p256") -> CertificateAuthority:
    return create_root_ca(
        key_type,
        365,
        DEFAULT_TRUST_DOMAIN,
        NOW,
        name=name,
        key=_key(seed, label, key_type),
        serial=_serial(seed, label),
    )


def configs(
    seed: int, suite: str, breaks: str = "", key_type: str = "ecdsa-p256"
) -> tuple[HandshakeConfig, HandshakeConfig]:
    """A throwaway CA and the gateway's and ledger's identities, all from the seed (and
    the one change a break makes)."""
    ca = _ca(seed, "ca", "illustrated root CA (throwaway)", key_type)
    trust = TrustStore([ca.cert])
    out = []
    for service, peer in (("gateway", "ledger"), ("ledger", "gateway")):
        key = _key(seed, service, key_type)
        issuer = (
            _ca(seed, "impostor", "impostor root CA", key_type)
            if (breaks == "foreign-ca" and service == "ledger")
            else ca
        )
        leaf = issue_leaf(
            issuer,
            key.public_key(),
            ServiceIdentity(service),
            NOW,
            30,
            serial=_serial(seed, service),
        )
        der = leaf.public_bytes(serialization.Encoding.DER)
        scheme = Scheme.MLDSA65 if key_type == "ml-dsa-65" else Scheme.ECDSA_SECP256R1_SHA256
        cred = Credentials((leaf,), key, (der,), scheme, b"")
        if (breaks, service) in (("wrong-identity", "ledger"), ("wrong-server-name", "gateway")):
            peer = "someone-else"
        others = tuple(
            x for x in BY_NAME.values() if x.name != suite and x.kx.value == "ECDHE-X25519"
        )
        suites = others if (breaks, service) == ("no-common-suite", "ledger") else (BY_NAME[suite],)
        policy = PeerPolicy(allowed_ids=(workload_id(DEFAULT_TRUST_DOMAIN, "default", peer),))
        out.append(
            HandshakeConfig(
                cred,
                trust,
                policy,
                suites=suites,
                require_status="off",
                keep_secrets=True,
                # throwaway identities: the key schedule's values may be shown
                trace=True,
                trace_secrets=True,
            )
        )
    return out[0], out[1]


def handshake(cfg: IllustrateConfig) -> tuple[Wire, Connection, Connection]:
    if cfg.suite not in BY_NAME:
        raise IllustrateError(f"--suite {cfg.suite}: not a suite (see `mtlsdemo handshake --help`)")
    if BY_NAME[cfg.suite].kx.value == "RSA-OAEP":
        # its identities are RSA keys, and OAEP's padding takes no given randomness
        raise IllustrateError(
            f"--suite {cfg.suite}: the page is drawn for the ECDHE-X25519 and X25519MLKEM768 "
            "suites (RSA key transport needs RSA identities, and OAEP draws its own randomness)"
        )
    if cfg.breaks and cfg.breaks not in BREAKS:
        raise IllustrateError(f"--break {cfg.breaks}: one of {', '.join(BREAKS)}")
    if cfg.key_type not in KEY_TYPES:
        raise IllustrateError(f"--key-type {cfg.key_type}: one of {', '.join(KEY_TYPES)}")
    ccfg, scfg = configs(cfg.seed, cfg.suite, cfg.breaks, cfg.key_type)
    client_now = NOW + dt.timedelta(days=40) if cfg.breaks == "expired" else NOW
    c = Connection(
        "client", ccfg, now=client_now, clock=TickClock(), entropy=SeededEntropy(cfg.seed, "c")
    )
    s = Connection("server", scfg, now=NOW, clock=TickClock(), entropy=SeededEntropy(cfg.seed, "s"))
    wire: Wire = []
    error = run_pair(c, s, wire)
    if error is not None and not cfg.breaks:
        raise IllustrateError(f"illustrate: the handshake failed: {error}")
    if error is None and cfg.breaks == "tamper":
        c.send_data(b"GET /balance/alice")
        sealed = c.data_to_send()
        flipped = sealed[:-1] + bytes((sealed[-1] ^ 0x01,))  # the tag's last bit
        wire.append(("c2s", flipped))
        try:
            s.receive_data(flipped)
        except ProtocolError:
            alert = s.data_to_send()
            if alert:
                wire.append(("s2c", alert))
    elif error is None:
        exchange(c, s, b"GET /balance/alice", b"alice: 12.50", wire)
    return wire, c, s


def records(wire: Wire) -> list[dict[str, Any]]:
    """Every record that crossed, split into labelled runs (records by the core's
    splitter, handshake messages by its message buffer, fields by ``messages.layout``)."""
    out = []
    buffers = {"c2s": m.MessageBuffer(1 << 16), "s2c": m.MessageBuffer(1 << 16)}
    for direction, data in wire:
        for ctype, header, payload in split_view(data)[0]:
            record = header + bytes(payload)
            runs = [
                Run("record.type", 0, record[0:1], WHAT["record.type"]),
                Run("record.version", 1, record[1:3], WHAT["record.version"]),
                Run("record.length", 3, record[3:5], WHAT["record.length"]),
            ]
            names: list[str] = []
            raws: list[bytes] = []
            if ctype == ContentType.HANDSHAKE:
                at = HEADER_LEN
                for msg_type, raw in buffers[direction].feed(payload):
                    names.append(NAMES[m.HandshakeType(msg_type)])
                    raws.append(raw)
                    for name, off, size in m.layout(m.decode(msg_type, raw[4:])):
                        chunk = record[at + off : at + off + size]
                        opens = names[-1] if off == 0 else ""
                        runs.append(Run(name, at + off, chunk, WHAT.get(name, name), opens))
                    at += len(raw)
                if at != len(record):  # the page's handshakes never split a message
                    raise IllustrateError("illustrate: a handshake message spans records")
                step = STEP_OF[m.HandshakeType(record[HEADER_LEN])]
            elif ctype == ContentType.ALERT and len(payload) == 2:  # in clear, before keys
                reason = REASON_BY_CODE.get(record[6])
                said = reason.value if reason else "?"
                runs += [
                    Run("alert.level", 5, record[5:6], "alert level: 2 fatal, 1 warning"),
                    Run("alert.description", 6, record[6:7], f"the reason: {said}"),
                ]
                names.append(f"alert {said} (in clear: a claim)")
                step = "alert"
            else:
                runs += [
                    Run("ciphertext", HEADER_LEN, record[HEADER_LEN:-TAG_LEN], WHAT["ciphertext"]),
                    Run("tag", len(record) - TAG_LEN, record[-TAG_LEN:], WHAT["tag"]),
                ]
                sealed_alert = ctype == ContentType.ALERT
                names.append("alert (sealed)" if sealed_alert else "application data")
                step = "alert" if sealed_alert else "data"
            out.append(
                {
                    "direction": direction,
                    "sender": "client" if direction == "c2s" else "server",
                    "messages": names,
                    "raw_messages": raws,
                    "step": step,
                    "bytes": record,
                    "runs": runs,
                }
            )
    return out


def runs_of(raw: bytes) -> list[list[Any]]:
    """One handshake message (its 4-byte header included) as the byte view's runs:
    [name, offset in the message, size, hex, what], from ``messages.layout``."""
    try:
        layout = m.layout(m.decode(raw[0], raw[4:]))
    except (ProtocolError, ValueError) as e:  # a message the side refused as malformed
        return [["message", 0, len(raw), raw.hex(), f"not decodable: {e}"]]
    return [
        [name, off, size, raw[off : off + size].hex(), WHAT.get(name, name)]
        for name, off, size in layout
    ]


def sent_messages(role: str, ladder: list[tuple[str, str, bytes]]) -> list[dict[str, Any]]:
    """A side's ladder (direction, name, raw) as the byte view's messages: who sent
    each, which occurrence of its type, its runs (the in-memory panel's shape)."""
    other = {"client": "server", "server": "client"}[role]
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for direction, name, raw in ladder:
        sender = role if direction == "send" else other
        n = seen.get((sender, name), 0)
        seen[(sender, name)] = n + 1
        out.append({"sender": sender, "name": name, "n": n, "runs": runs_of(raw)})
    return out


def message_runs(wire: Wire) -> list[dict[str, Any]]:
    """Every handshake message that crossed, as the console's byte view shows it (the
    wire seen from the client's side: what it sent and what it received)."""
    buffers = {"c2s": m.MessageBuffer(1 << 16), "s2c": m.MessageBuffer(1 << 16)}
    ladder = [
        ("send" if way == "c2s" else "recv", m.HandshakeType(t).name, raw)
        for way, data in wire
        for ctype, _h, payload in split_view(data)[0]
        if ctype == ContentType.HANDSHAKE
        for t, raw in buffers[way].feed(payload)
    ]
    return sent_messages("client", ladder)


def recompute(c: Connection, recs: list[dict[str, Any]]) -> list[dict[str, str]]:
    """For the first application record each way: the key, IV and nonce it was sealed
    with, and a command that opens it with `cryptography` and prints its plaintext."""
    assert c.secrets is not None and c.suite is not None
    out = []
    for sender, secret in (("client", c.secrets.client), ("server", c.secrets.server)):
        rec = next(r for r in recs if r["step"] == "data" and r["sender"] == sender)
        key, iv = traffic_keys(secret, c.suite.key_len)
        nonce = iv  # sequence number 0: iv XOR 0
        record: bytes = rec["bytes"]
        aead = c.suite.aead_cls.__name__  # AESGCM or ChaCha20Poly1305: the suite's
        command = (
            f"python3 -c 'from cryptography.hazmat.primitives.ciphers.aead import {aead}; "
            f'print({aead}(bytes.fromhex("{key.hex()}")).decrypt(bytes.fromhex("{nonce.hex()}"), '
            f'bytes.fromhex("{record[HEADER_LEN:].hex()}"), bytes.fromhex("{record[:HEADER_LEN].hex()}")).decode())\''
        )
        out.append(
            {
                "sender": sender,
                "traffic_secret": secret.hex(),
                "key": key.hex(),
                "iv": iv.hex(),
                "nonce": nonce.hex(),
                "command": command,
            }
        )
    return out


LABEL = (  # HKDF-Expand-Label with the "mtd1 " prefix, one block (every value here is <= 32 bytes)
    'label = lambda secret, name, ctx, n: hmac.new(secret, n.to_bytes(2, "big") + '
    'bytes([len(b"mtd1 " + name.encode())]) + b"mtd1 " + name.encode() + bytes([len(ctx)]) '
    '+ ctx + b"\\x01", "sha256").digest()[:n]'
)


def derivations(c: Connection, s: Connection, wire: Wire) -> list[dict[str, str]]:
    """The key schedule step by step (docs/protocol.md §4), each with the command that
    recomputes its value from the values shown before it (Python's hmac and hashlib only)."""
    sched = next(e for e in c.trace if e.name == "KEY_SCHEDULE")
    values = list(sched.fields["secrets"].values())  # shared, master, client, server
    shared, master, client_ts, server_ts = (bytes.fromhex(v) for v in values)
    th = sched.fields["transcript_hash"]
    hello = next(d for way, d in wire if way == "c2s")
    reply = next(d for way, d in wire if way == "s2c")
    client_random = hello[HEADER_LEN + 4 + 1 + hello[HEADER_LEN + 4] :][:32]
    server_random = reply[HEADER_LEN + 4 + 2 :][:32]
    py = "python3 -c 'import hashlib, hmac; "
    return [
        *_shared_secret(c, s, wire, shared),
        {
            "what": "master = HKDF-Extract(salt = client_random || server_random, IKM = shared "
            "secret): one HMAC-SHA256",
            "inputs": f"client_random {client_random.hex()}, server_random {server_random.hex()}, "
            f"shared secret ({'ML-KEM-768 || X25519' if len(shared) > kx.X25519_LEN else 'X25519'}) {shared.hex()}",
            "value": master.hex(),
            "command": py
            + f'print(hmac.new(bytes.fromhex("{client_random.hex()}{server_random.hex()}"), '
            f'bytes.fromhex("{shared.hex()}"), "sha256").hexdigest())\'',
        },
        {
            "what": 'client traffic secret = HKDF-Expand-Label(master, "c ap traffic", transcript '
            "hash through the client's Finished, 32)",
            "inputs": f"master {master.hex()}, transcript hash {th}",
            "value": client_ts.hex(),
            "command": py + LABEL + "; "
            f'print(label(bytes.fromhex("{master.hex()}"), "c ap traffic", bytes.fromhex("{th}"), 32).hex())\'',
        },
        {
            "what": 'server traffic secret = HKDF-Expand-Label(master, "s ap traffic", the same '
            "transcript hash, 32)",
            "inputs": f"master {master.hex()}, transcript hash {th}",
            "value": server_ts.hex(),
            "command": py + LABEL + "; "
            f'print(label(bytes.fromhex("{master.hex()}"), "s ap traffic", bytes.fromhex("{th}"), 32).hex())\'',
        },
    ]


def reproducible(suite: str, key_type: str = "ecdsa-p256") -> bool:
    """Whether the page replays byte for byte: not with ML-KEM (see handshake()), nor
    with ML-DSA identities (cryptography's ML-DSA signatures are hedged)."""
    return BY_NAME[suite].kx.value == "ECDHE-X25519" and key_type == "ecdsa-p256"


def _drawn(entropy: object, n: int, public: Callable[[bytes], bytes], want: bytes) -> bytes | None:
    """The seeded draw of ``n`` bytes whose public key is ``want``."""
    if not isinstance(entropy, SeededEntropy):
        return None
    return next((d for d in entropy.draws if len(d) == n and public(d) == want), None)


def _shared_secret(c: Connection, s: Connection, wire: Wire, shared: bytes) -> list[dict[str, str]]:
    """The shared secret from the keys the seed drew: X25519 from the client's
    ephemeral private key and the server's public share; with the hybrid, ML-KEM-768
    first, decapsulated with the server's key (made from its seed) from the
    ciphertext the client sent."""
    msgs = [
        (t, raw)
        for way, data in wire
        for ctype, _h, payload in split_view(data)[0]
        if ctype == ContentType.HANDSHAKE
        for t, raw in m.MessageBuffer(1 << 16).feed(payload)
    ]
    server = next(m.decode(t, raw[4:]) for t, raw in msgs if t == m.HandshakeType.SERVER_KEY_SHARE)
    client = next(
        m.decode(t, raw[4:]) for t, raw in msgs if t == m.HandshakeType.CLIENT_KEY_EXCHANGE
    )
    assert isinstance(server, m.ServerKeyShare) and isinstance(client, m.ClientKeyExchange)
    x_len = kx.X25519_LEN
    server_x, client_x = server.public[-x_len:], client.data[-x_len:]
    private = _drawn(
        c.entropy,
        x_len,
        lambda d: x25519.X25519PrivateKey.from_private_bytes(d).public_key().public_bytes_raw(),
        client_x,
    )
    if private is None:
        return []
    out = []
    hybrid = len(shared) == kx.MLKEM_SHARED_LEN + x_len
    if hybrid:
        ek, ct = server.public[:-x_len], client.data[:-x_len]
        seed = _drawn(
            s.entropy,
            kx.MLKEM768_SEED_LEN,
            lambda d: mlkem.MLKEM768PrivateKey.from_seed_bytes(d).public_key().public_bytes_raw(),
            ek,
        )
        if seed is None:
            return []
        out.append(
            {
                "what": "ML-KEM-768 shared secret = Decapsulate(the server's decapsulation key, "
                "the ciphertext the client sent); the client got the same 32 bytes when it "
                "encapsulated to the server's encapsulation key (it sent only the ciphertext)",
                "inputs": f"the server's ML-KEM seed {seed.hex()} (drawn from the seed: a real "
                f"server never shows it; the key pair is a function of it), ciphertext "
                f"({len(ct)} bytes, in the ClientKeyExchange above)",
                "value": shared[: kx.MLKEM_SHARED_LEN].hex(),
                "command": "python3 -c 'from cryptography.hazmat.primitives.asymmetric.mlkem "
                "import MLKEM768PrivateKey; "
                f'print(MLKEM768PrivateKey.from_seed_bytes(bytes.fromhex("{seed.hex()}"))'
                f'.decapsulate(bytes.fromhex("{ct.hex()}")).hex())\'',
            }
        )
    out.append(
        {
            "what": "X25519 shared secret = X25519(the client's ephemeral private key, the "
            "server's public key share); the server computes the same from its own private "
            "key and the client's public key, and neither private key crosses the wire"
            + (
                "; the hybrid's input to the key schedule is ML-KEM's 32 bytes, then these"
                if hybrid
                else ""
            ),
            "inputs": f"client private key {private.hex()} (drawn from the seed: a real "
            f"client never shows it), server public key {server_x.hex()}",
            "value": shared[-x_len:].hex(),
            "command": "python3 -c 'from cryptography.hazmat.primitives.asymmetric.x25519 "
            "import X25519PrivateKey, X25519PublicKey; "
            f'print(X25519PrivateKey.from_private_bytes(bytes.fromhex("{private.hex()}"))'
            f'.exchange(X25519PublicKey.from_public_bytes(bytes.fromhex("{server_x.hex()}"))).hex())\'',
        }
    )
    return out


def proofs(recs: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The two checks that bind the transcript: the server's CertificateVerify signature
    (over every message before it, MTD/1.2) and the client's Finished MAC (over every
    message through the client's CertificateVerify), each recomputed from the bytes on
    this page with `cryptography` and hashlib."""
    msgs = [raw for r in recs for raw in r["raw_messages"]]
    kinds = [x[0] for x in msgs]
    cv_server = kinds.index(m.HandshakeType.CERTIFICATE_VERIFY)
    cv_client = kinds.index(m.HandshakeType.CERTIFICATE_VERIFY, cv_server + 1)
    first_cert = msgs[kinds.index(m.HandshakeType.CERTIFICATE)]  # the server's: it goes first
    server_cert = m.decode(first_cert[0], first_cert[4:])
    assert isinstance(server_cert, m.Certificate)
    cv = m.decode(msgs[cv_server][0], msgs[cv_server][4:])
    fin = m.decode(msgs[cv_client + 1][0], msgs[cv_client + 1][4:])
    assert isinstance(cv, m.CertificateVerify) and isinstance(fin, m.Finished)
    before_cv = b"".join(msgs[:cv_server]).hex()
    through_client_cv = b"".join(msgs[: cv_client + 1]).hex()
    mldsa_cv = cv.scheme == Scheme.MLDSA65  # ML-DSA takes the message itself, no hash choice
    algorithm, how = ("", "ML-DSA-65") if mldsa_cv else (", ec.ECDSA(hashes.SHA256())", "ECDSA")
    return [
        {
            "what": f"the server's CertificateVerify: {how} over 64 spaces || \"mtlsdemo MTD/1, server "
            'CertificateVerify" || 0x00 || SHA-256 of every message before it, checked with the '
            "public key of the certificate it sent",
            "value": "valid",
            "command": "python3 -c 'import hashlib; from cryptography import x509; "
            "from cryptography.hazmat.primitives import hashes; "
            "from cryptography.hazmat.primitives.asymmetric import ec; "
            f'key = x509.load_der_x509_certificate(bytes.fromhex("{server_cert.chain[0].hex()}")).public_key(); '
            f'th = hashlib.sha256(bytes.fromhex("{before_cv}")).digest(); '
            f'key.verify(bytes.fromhex("{cv.signature.hex()}"), b" " * 64 + b"mtlsdemo MTD/1, server CertificateVerify\\x00" + th{algorithm}); '
            'print("valid")\'',
        },
        {
            "what": "the client's Finished: HMAC-SHA256(finished key, SHA-256 of every message "
            "through the client's CertificateVerify); the finished key is Expand-Label(master, "
            '"c finished", "", 32) with the master above',
            "value": fin.verify_data.hex(),
            "command_prefix": through_client_cv,
        },
    ]


CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1f2328; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.record { border: 1px solid #d0d7de; border-radius: 8px; padding: .6rem .8rem; margin: 1rem 0; }
.record.c2s { border-left: 6px solid #0969da; } .record.s2c { border-left: 6px solid #8250df; }
.run { display: grid; grid-template-columns: 5rem 17rem 1fr; gap: .6rem; padding: .2rem 0;
       border-top: 1px dashed #eaeef2; }
.run code { font: 12px ui-monospace, monospace; overflow-wrap: anywhere; }
.off { color: #57606a; font: 12px ui-monospace, monospace; } .what { color: #57606a; font-size: 13px; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
.step { font-weight: 600; color: #0a3069; } h3.msg { font-size: 1rem; margin: .8rem 0 .2rem; }
.verdict { border: 2px solid #cf222e; border-radius: 8px; padding: .6rem .8rem; background: #ffebe9; }
.run.failed { background: #ffebe9; } .run.failed b { color: #cf222e; }
@media print { .record { break-inside: avoid; } }
"""


def page(
    cfg: IllustrateConfig,
    recs: list[dict[str, Any]],
    snippets: list[dict[str, str]],
    derived: list[dict[str, str]],
    failed: dict[str, str] | None = None,
) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>MTD/1, every byte — seed {cfg.seed}</title><style>{CSS}</style></head><body>",
        f"<h1>A mutual MTD/1 handshake, every byte (seed {cfg.seed}, {e(cfg.suite)}"
        f"{', ' + e(cfg.key_type) + ' identities' if cfg.key_type != 'ecdsa-p256' else ''}"
        f"{', broken: ' + e(cfg.breaks) if cfg.breaks else ''})</h1>",
        "<p>Made by <code>mtlsdemo illustrate</code> with throwaway identities and seeded "
        + (
            "randomness: the same seed writes the same page, and the secrets below are nobody's. "
            if reproducible(cfg.suite, cfg.key_type)
            else "randomness, and the secrets below are nobody's. <b>Not byte for byte "
            "reproducible</b>: "
            + (
                "the client's ML-KEM encapsulation draws its own randomness (cryptography "
                "takes none), so its ciphertext — and every byte keyed from it — differs from "
                "run to run"
                if BY_NAME[cfg.suite].kx.value != "ECDHE-X25519"
                else ""
            )
            + (
                "; "
                if BY_NAME[cfg.suite].kx.value != "ECDHE-X25519" and cfg.key_type != "ecdsa-p256"
                else ""
            )
            + (
                "ML-DSA signatures are hedged (fresh randomness in each), so the certificates' "
                "and CertificateVerify's signature bytes differ from run to run"
                if cfg.key_type != "ecdsa-p256"
                else ""
            )
            + "; the commands below recompute this page's values. "
        )
        + "Each record is cut where the encoder that put it on the wire joined its parts. "
        "Blue: the client (gateway) sends; purple: the server (ledger) sends.</p>",
    ]
    marked = False  # the first run of the failed field, in the right sender's records
    if failed is not None:
        who = {"client": "the gateway (the client)", "server": "the ledger (the server)"}
        parts.append(
            f'<div class="verdict" data-reason="{e(failed["reason"])}" data-refuser="{failed["refuser"]}">'
            f"<b>✗ {e(failed['reason'])}</b> — {e(failed['what'])}: refused by "
            f"{who[failed['refuser']]}: {e(failed['detail'])}. The field it found wrong is "
            "marked ✗ below; the records stop where the refusal was sent.</div>"
        )
    for n, r in enumerate(recs):
        record: bytes = r["bytes"]
        tls = "; ".join(TLS13.get(x, x) for x in r["messages"])
        parts.append(
            f'<div class="record {r["direction"]}" id="record-{n}" data-size="{len(record)}">'
            f'<div><span class="step">{e(TITLES[r["step"]])}</span> — {r["sender"]} sends '
            f"{e(', '.join(r['messages']))} ({len(record)} bytes); in TLS 1.3: {e(tls)}</div>"
        )
        for run in r["runs"]:
            if run.opens:  # a message starts: its step and its TLS 1.3 counterpart
                step = TITLES[STEP_OF[m.HandshakeType(run.data[0])]]
                parts.append(
                    f'<h3 class="msg">{e(run.opens)} · <span class="step">{e(step)}</span> · '
                    f"TLS 1.3: {e(TLS13.get(run.opens, run.opens))}</h3>"
                )
            bad = (
                failed is not None
                and not marked
                and r["sender"] == failed["sender"]
                and run.name == failed["field"]
            )
            marked = marked or bad
            flag = f' failed" data-failed="{e(failed["reason"])}' if bad and failed else ""
            parts.append(
                f'<div class="run{flag}" data-name="{e(run.name)}" data-offset="{run.offset}" '
                f'data-size="{len(run.data)}"><span class="off">{run.offset}+{len(run.data)}</span>'
                f"<span><b>{'✗ ' if bad else ''}{e(run.name)}</b><br><span class=what>"
                f"{e(run.what)}</span></span><code>{run.data.hex()}</code></div>"
            )
        parts.append("</div>")
    if derived:
        parts.append("<h2>Recompute it yourself: the key schedule and the two proofs</h2>")
    for d in derived:
        parts.append(
            f"<p>{e(d['what'])}{': from ' + e(d['inputs']) if d.get('inputs') else ''} — the handshake has "
            f'<code class="value">{d["value"]}</code>; this prints it again:</p>'
            f'<pre class="recompute derive" data-value="{d["value"]}">{e(d["command"])}</pre>'
        )
    if snippets:
        parts.append("<h2>Recompute it yourself: open the first record each way</h2>")
    for sn in snippets:
        parts.append(
            f"<p>The {sn['sender']}'s traffic secret <code>{sn['traffic_secret']}</code> gives "
            f'(HKDF-Expand-Label "key" and "iv") the key <code>{sn["key"]}</code> and IV '
            f"<code>{sn['iv']}</code>; its first record's nonce is the IV XOR 0 = "
            f"<code>{sn['nonce']}</code>. This prints the record's plaintext:</p>"
            f'<pre class="recompute open" data-sender="{sn["sender"]}">{e(sn["command"])}</pre>'
        )
    data = [
        {
            "size": len(r["bytes"]),
            "runs": [[run.name, run.offset, len(run.data)] for run in r["runs"]],
        }
        for r in recs
    ]
    parts.append(
        f'<script type="application/json" id="runs">{json.dumps(data)}</script></body></html>'
    )
    return "\n".join(parts) + "\n"


def verdict(cfg: IllustrateConfig, c: Connection, s: Connection) -> dict[str, str]:
    """A break's outcome, from the core's own error: the reason, who refused whom, the
    step, and which field of whose message the page marks."""
    what, sender, field_name = BREAKS[cfg.breaks]
    error = c.error if c.error is not None and c.error.origin == "local" else s.error
    if error is None:
        raise IllustrateError(f"--break {cfg.breaks}: nothing was refused (a bug in the page)")
    refuser = "client" if error is c.error else "server"
    return {
        "what": what,
        "reason": error.reason.value,
        "refuser": refuser,
        "detail": error.detail,
        "sender": sender,
        "field": field_name,
    }


def write(cfg: IllustrateConfig) -> Path:
    wire, c, s = handshake(cfg)
    recs = records(wire)
    cfg.out.mkdir(parents=True, exist_ok=True)
    target = cfg.out / "index.html"
    if cfg.breaks:
        target.write_text(page(cfg, recs, [], [], verdict(cfg, c, s)))
        return target
    derived = derivations(c, s, wire)
    master = next(d["value"] for d in derived if d["what"].startswith("master"))
    checks = proofs(recs)
    finished = checks[1]
    finished["command"] = (
        "python3 -c 'import hashlib, hmac; " + LABEL + "; "
        f'key = label(bytes.fromhex("{master}"), "c finished", b"", 32); '
        f'print(hmac.new(key, hashlib.sha256(bytes.fromhex("{finished.pop("command_prefix")}"))'
        '.digest(), "sha256").hexdigest())\''
    )
    target.write_text(page(cfg, recs, recompute(c, recs), derived + checks))
    return target
