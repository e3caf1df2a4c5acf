"""The trace's words, apart from the state machine: a structured record of every
message a connection sent or received, and the pure functions that describe
messages, fingerprints and a resumption's re-checks for people."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from mtlsdemo.handshake import messages as m
from mtlsdemo.handshake.keyschedule import sha256
from mtlsdemo.handshake.signatures import Scheme
from mtlsdemo.handshake.suites import BY_CODE, version_name
from mtlsdemo.handshake.tickets import REFUSAL_BY_CODE, SessionFacts
from mtlsdemo.trust.certinfo import certificate_facts


@dataclass
class TraceEntry:
    role: str  # the side that recorded it
    direction: str  # "send" or "recv"
    kind: str  # "handshake", "alert", "record"
    name: str  # message or record name
    size: int  # bytes on the wire for this message (without record header)
    step: str  # hello, certificate_verify, key_exchange, finished, data
    fields: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0  # the injected clock at the time, seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "direction": self.direction,
            "kind": self.kind,
            "name": self.name,
            "size": self.size,
            "step": self.step,
            "fields": self.fields,
            "at": self.at,
        }


def fingerprint(secret: bytes) -> str:
    """8 bytes of SHA-256: enough to see two sides derived the same value, useless
    to an attacker."""
    return sha256(secret)[:8].hex()


def scheme_name(code: int) -> str:
    return Scheme(code).name if code in Scheme._value2member_map_ else f"0x{code:04x}"


def _certificate_fields(der: bytes) -> dict[str, Any]:
    facts = certificate_facts(x509.load_der_x509_certificate(der))
    keys = ("subject", "issuer", "authority_key_id", "names", "key", "not_after")
    return {k: facts[k] for k in keys}


def describe(msg: m.Message) -> dict[str, Any]:
    """The key fields of a message, for the trace: names, not codes."""
    if isinstance(msg, m.ClientHello):
        hello: dict[str, Any] = {
            "versions": [version_name(v) for v in msg.versions],
            "random": msg.random.hex(),
            "suites": [BY_CODE[c].name if c in BY_CODE else f"0x{c:04x}" for c in msg.suites],
        }
        if msg.resume is not None:
            hello["resume"] = {
                "ticket_bytes": len(msg.resume.ticket),
                "x25519_share": msg.resume.share.hex(),
                "binder": msg.resume.binder.hex(),
            }
        return hello
    if isinstance(msg, m.ServerHello):
        server: dict[str, Any] = {
            "version": version_name(msg.version),
            "random": msg.random.hex(),
            "suite": BY_CODE[msg.suite].name if msg.suite in BY_CODE else f"0x{msg.suite:04x}",
        }
        if msg.resumed is not None:
            server["resumed"] = bool(msg.resumed)
            if msg.refusal:
                refusal = REFUSAL_BY_CODE.get(msg.refusal)
                server["ticket_refused"] = refusal.value if refusal else msg.refusal
        return server
    if isinstance(msg, m.NewSessionTicket):
        return {
            "lifetime_s": msg.lifetime,
            "max_uses": msg.max_uses,
            "ticket_bytes": len(msg.ticket),
            "carries": "this server's sealed record of the session: only it can open it",
        }
    if isinstance(msg, m.Certificate):
        out: list[str] = []
        certs: list[dict[str, Any]] = []
        for der in msg.chain:
            try:
                f = _certificate_fields(der)
            except Exception:  # the trace must never fail on a malformed certificate
                out.append("(unparsable)")
                continue
            out.append(f["subject"])
            certs.append(f)
        return {"chain": out, "certificates": certs, "stapled_status_bytes": len(msg.status)}
    if isinstance(msg, m.ServerKeyShare) and msg.group == m.X25519MLKEM768_GROUP:
        return {
            "group": "X25519MLKEM768",
            "public_bytes": len(msg.public),
            "public_head": msg.public[:16].hex(),
            "carries": "the server's ephemeral ML-KEM-768 encapsulation key (1,184 bytes) and "
            "X25519 public key (32), both signed by its CertificateVerify",
        }
    if isinstance(msg, m.ServerKeyShare):
        return {
            "group": "X25519" if msg.group == m.X25519_GROUP else hex(msg.group),
            "public": msg.public.hex(),
            "carries": "the server's ephemeral X25519 public key, signed by its CertificateVerify",
        }
    if isinstance(msg, m.CertificateRequest):
        return {"schemes": [scheme_name(x) for x in msg.schemes]}
    if isinstance(msg, m.CertificateVerify):
        return {"scheme": scheme_name(msg.scheme), "signature_len": len(msg.signature)}
    if isinstance(msg, m.ClientKeyExchange):
        return {"data_len": len(msg.data), "data_head": msg.data[:16].hex()}
    return {"verify_data": msg.verify_data.hex()}


def resume_checks(facts: SessionFacts, at: dt.datetime) -> list[str]:
    """What a resumed handshake re-checked, for the trace and the console."""
    now = int(at.timestamp())
    out = [
        f"resumed from a session ticket issued {now - facts.issued_at}s ago "
        f"(lifetime {facts.lifetime}s, at most {facts.max_uses} uses)",
        "binder and both Finished MACs prove the peer holds the ticket's secret",
        f"identity {facts.peer_identity} allowed by the current policy",
        "its certificate (verified when the ticket was issued) valid until "
        f"{dt.datetime.fromtimestamp(facts.peer_not_after, dt.UTC):%Y-%m-%d %H:%M:%SZ}",
        "trust bundle unchanged since the ticket was issued",
    ]
    if facts.status_until:
        out.append(
            "its stapled status (checked when the ticket was issued) good until "
            f"{dt.datetime.fromtimestamp(facts.status_until, dt.UTC):%Y-%m-%d %H:%M:%SZ}"
        )
    out.append("fresh X25519 shares on both sides: the session keeps forward secrecy")
    return out
