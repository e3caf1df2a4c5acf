"""Session resumption (MTD/1.1): the server's sealed tickets and the client's cache.

A server that completes a full handshake sends a NewSessionTicket: the resumption
secret and what it verified about the client (identity, certificate expiry,
stapled status window, the trust bundle it verified against), sealed with
AES-256-GCM under a ticket key only it holds. The client keeps the ticket with
the same secret, derived on its side. Later the client offers the ticket with a
fresh X25519 share and a binder (an HMAC under the secret over its ClientHello);
the server opens it, re-checks everything that can have changed since, and
either resumes (no certificates, no signatures: a fresh ECDHE keeps forward
secrecy) or refuses with a named reason and falls back to a full handshake.

Semantics (docs/protocol.md §9): a ticket is good for ``lifetime`` seconds after
issue and for ``max_uses`` resumptions (bounded replay: the server counts uses
per ticket id; a ticket it no longer tracks is refused). Ticket keys rotate
every ``lifetime``; a retired key opens tickets until the last one it sealed
expires. Keys live in memory only: a restarted server refuses every old ticket.

Sans-I/O like the rest of the core: wall time and randomness are passed in.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mtlsdemo.handshake.codec import Reader, u16, vec8, vec16
from mtlsdemo.handshake.errors import ProtocolError
from mtlsdemo.handshake.kx import Entropy
from mtlsdemo.trust.failures import VerificationFailed

KEY_ID_LEN = 4
NONCE_LEN = 12
TICKET_ID_LEN = 16
DEFAULT_LIFETIME = 3600  # seconds
DEFAULT_MAX_USES = 256
MAX_TRACKED = 65_536  # ticket ids whose uses a server counts; older ones are refused


class Refusal(StrEnum):
    """Why a ticket was not used: the full handshake that follows says the rest."""

    UNKNOWN_KEY = "ticket_unknown_key"  # sealed by another server, or a key long retired
    MALFORMED = "ticket_malformed"
    EXPIRED = "ticket_expired"  # older than its lifetime
    REPLAYED = "ticket_replayed"  # used max_uses times already, or no longer tracked
    PEER_NOT_ALLOWED = "ticket_peer_not_allowed"  # identity since removed from the allow-list
    CERTIFICATE_EXPIRED = "ticket_certificate_expired"  # the certificate it was issued for
    STATUS_STALE = "ticket_status_stale"  # the stapled status it relied on has run out
    TRUST_CHANGED = "ticket_trust_changed"  # the trust bundle changed (e.g. CA rollover)
    SUITE = "ticket_suite_unavailable"  # its suite is no longer offered or enabled
    # our own certificate or stapled status changed since (renewed, revoked, re-stapled):
    # the peer must see the new one, in a full handshake
    CREDENTIALS_CHANGED = "ticket_credentials_changed"
    # the peer's certificate is on the CRL now (revoked after the full handshake)
    PEER_REVOKED = "ticket_peer_revoked"
    # this side is another workload now (its identity reloaded under a new SPIFFE ID):
    # a ticket belongs to the identity that issued or received it, never to the process
    IDENTITY_CHANGED = "ticket_identity_changed"


# one byte each in ServerHello, so the client learns why its ticket was refused
REFUSAL_CODES = {r: i for i, r in enumerate(Refusal, start=1)}
REFUSAL_BY_CODE = {i: r for r, i in REFUSAL_CODES.items()}


# "is this certificate (issuer name DER, serial) revoked?": a reason, or None. Passed in
# (the sidecar reads its CRL file), so the core stays sans-I/O.
Revoked = Callable[[bytes, int], "str | None"]


class TicketRefused(Exception):
    def __init__(self, refusal: Refusal, detail: str) -> None:
        super().__init__(f"{refusal.value}: {detail}")
        self.refusal = refusal
        self.detail = detail


def _ts(t: dt.datetime) -> int:
    return int(t.timestamp())


@dataclass(frozen=True)
class SessionFacts:
    """What the issuing side verified about its peer, and when: carried by the
    ticket (server) or kept beside it (client), re-checked on resumption."""

    peer_identity: str
    peer_subject: str
    peer_not_after: int  # unix seconds
    status_until: int  # the peer's stapled status's nextUpdate; 0: not checked
    trust: bytes  # the trust bundle's fingerprint when the peer was verified
    own: bytes  # our own credentials' fingerprint (chain and staple) at the time
    suite: int
    issued_at: int  # unix seconds
    lifetime: int
    max_uses: int
    # the peer certificate's issuer (DER name) and serial: a revocation ends its tickets
    peer_issuer: bytes = b""
    peer_serial: int = 0
    # our own SPIFFE ID when the ticket was made (issue 31 item 6): ticket keys outlive
    # identity reloads, so the ticket itself says whose it is
    own_identity: str = ""

    def recheck(
        self,
        now: dt.datetime,
        trust: bytes,
        own: bytes,
        allows: Callable[[str], bool],
        suites: tuple[int, ...],
        revoked: Revoked | None = None,
        own_identity: str = "",
    ) -> None:
        """Everything that can change since the full handshake; raises TicketRefused."""
        t = _ts(now)
        age = t - self.issued_at
        if age > self.lifetime or age < -300:  # (a clock far behind the issuer: refuse too)
            raise TicketRefused(Refusal.EXPIRED, f"issued {age}s ago, lifetime {self.lifetime}s")
        if own_identity != self.own_identity:
            raise TicketRefused(
                Refusal.IDENTITY_CHANGED,
                f"the ticket belongs to {self.own_identity or 'no identity'}; this side is "
                f"{own_identity or 'no identity'} now",
            )
        if trust != self.trust:
            raise TicketRefused(
                Refusal.TRUST_CHANGED,
                "the trust bundle changed since the ticket was issued (CA rollover?)",
            )
        if own != self.own:
            raise TicketRefused(
                Refusal.CREDENTIALS_CHANGED,
                "this side's certificate or stapled status changed since the ticket was "
                "issued: the peer must verify the new one",
            )
        if not allows(self.peer_identity):
            raise TicketRefused(
                Refusal.PEER_NOT_ALLOWED,
                f"{self.peer_identity} is not allowed by the current policy",
            )
        if revoked is not None:
            try:
                why = revoked(self.peer_issuer, self.peer_serial)
            except VerificationFailed as e:
                # the CRL cannot answer now: the full handshake refuses by that name
                raise TicketRefused(Refusal.PEER_REVOKED, f"{e.detail} (the CRL)") from None
            if why:
                raise TicketRefused(Refusal.PEER_REVOKED, f"{why} (the CRL)")
        if t >= self.peer_not_after:
            raise TicketRefused(
                Refusal.CERTIFICATE_EXPIRED,
                f"the peer's certificate expired {t - self.peer_not_after}s ago",
            )
        if self.status_until and t >= self.status_until:
            raise TicketRefused(
                Refusal.STATUS_STALE,
                "the stapled status the ticket relied on has passed its nextUpdate",
            )
        if self.suite not in suites:
            raise TicketRefused(Refusal.SUITE, f"suite 0x{self.suite:04x} is not available")

    def encode(self) -> bytes:
        return (
            vec16(self.peer_identity.encode())
            + vec16(self.peer_subject.encode())
            + self.peer_not_after.to_bytes(8, "big")
            + self.status_until.to_bytes(8, "big")
            + vec8(self.trust)
            + vec8(self.own)
            + u16(self.suite)
            + self.issued_at.to_bytes(8, "big")
            + self.lifetime.to_bytes(4, "big")
            + self.max_uses.to_bytes(4, "big")
            + vec16(self.peer_issuer)
            + vec8(
                self.peer_serial.to_bytes(max(1, (self.peer_serial.bit_length() + 7) // 8), "big")
            )
            + vec16(self.own_identity.encode())
        )

    @classmethod
    def decode(cls, r: Reader) -> SessionFacts:
        return cls(
            r.vec16().decode(),
            r.vec16().decode(),
            int.from_bytes(r.fixed(8), "big"),
            int.from_bytes(r.fixed(8), "big"),
            r.vec8(),
            r.vec8(),
            r.u16(),
            int.from_bytes(r.fixed(8), "big"),
            int.from_bytes(r.fixed(4), "big"),
            int.from_bytes(r.fixed(4), "big"),
            r.vec16(),
            int.from_bytes(r.vec8(), "big"),
            r.vec16().decode(),
        )


@dataclass(frozen=True)
class Opened:
    ticket_id: bytes
    psk: bytes
    facts: SessionFacts


class TicketKeys:
    """The server's side: seal, open, rotate, count uses. One per server process,
    shared by its connections (and kept across identity reloads)."""

    def __init__(
        self,
        lifetime: int = DEFAULT_LIFETIME,
        max_uses: int = DEFAULT_MAX_USES,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        if lifetime < 1 or max_uses < 1:
            raise ValueError("ticket lifetime and max uses must be at least 1")
        self.lifetime = lifetime
        self.max_uses = max_uses
        self.max_tracked = max_tracked
        self._keys: list[tuple[bytes, AESGCM, int]] = []  # (id, cipher, created), newest first
        self._uses: OrderedDict[bytes, int] = OrderedDict()  # ticket id -> uses so far
        self.rotations = 0

    def _current(self, now: int, entropy: Entropy) -> tuple[bytes, AESGCM]:
        if not self._keys or now - self._keys[0][2] >= self.lifetime:
            self._keys.insert(0, (entropy(KEY_ID_LEN), AESGCM(entropy(32)), now))
            self.rotations += 1
        # a retired key still opens what it sealed until that expires: lifetime after retiring
        self._keys = [
            k for i, k in enumerate(self._keys) if i == 0 or now - k[2] < 2 * self.lifetime
        ]
        return self._keys[0][0], self._keys[0][1]

    def seal(self, psk: bytes, facts: SessionFacts, now: dt.datetime, entropy: Entropy) -> bytes:
        key_id, aead = self._current(_ts(now), entropy)
        ticket_id = entropy(TICKET_ID_LEN)
        nonce = entropy(NONCE_LEN)
        plain = ticket_id + vec8(psk) + facts.encode()
        self._uses[ticket_id] = 0
        while len(self._uses) > self.max_tracked:
            self._uses.popitem(last=False)
        return key_id + nonce + aead.encrypt(nonce, plain, key_id)

    def open(self, ticket: bytes) -> Opened:
        key_id, nonce, sealed = (
            ticket[:KEY_ID_LEN],
            ticket[KEY_ID_LEN : KEY_ID_LEN + NONCE_LEN],
            ticket[KEY_ID_LEN + NONCE_LEN :],
        )
        aead = next((a for k, a, _ in self._keys if k == key_id), None)
        if aead is None:
            raise TicketRefused(Refusal.UNKNOWN_KEY, "no ticket key of this server opens it")
        try:
            plain = aead.decrypt(nonce, sealed, key_id)
        except (InvalidTag, ValueError):
            raise TicketRefused(Refusal.MALFORMED, "the ticket fails authentication") from None
        r = Reader(plain, "ticket")
        try:
            ticket_id = r.fixed(TICKET_ID_LEN)
            psk = r.vec8()
            facts = SessionFacts.decode(r)
            r.end()
        except (ProtocolError, UnicodeDecodeError):
            raise TicketRefused(Refusal.MALFORMED, "the ticket's contents do not parse") from None
        return Opened(ticket_id, psk, facts)

    def check_use(self, opened: Opened) -> int:
        """The uses so far; raises if the ticket is used up or forgotten. Counts nothing:
        a use is counted only by ``count_use``, once the resumption completed."""
        uses = self._uses.get(opened.ticket_id)
        if uses is None:
            raise TicketRefused(Refusal.REPLAYED, "this server no longer tracks the ticket's uses")
        if uses >= opened.facts.max_uses:
            raise TicketRefused(
                Refusal.REPLAYED, f"already used {uses} times (limit {opened.facts.max_uses})"
            )
        return uses

    def count_use(self, opened: Opened) -> int:
        """Count one completed resumption (the client's Finished verified). A replayed
        ClientHello, which passes the binder but can never finish, uses nothing up."""
        uses = self._uses.get(opened.ticket_id)
        if uses is None:  # forgotten meanwhile: nothing left to count against
            return 0
        self._uses[opened.ticket_id] = uses + 1
        return uses + 1


@dataclass
class ClientTicket:
    ticket: bytes
    psk: bytes
    facts: SessionFacts
    uses: int = 0


class TicketCache:
    """The client's side: the newest tickets per peer (a route's remote and the
    identity it expects), each offered until it is used up or refused."""

    def __init__(self, per_peer: int = 4) -> None:
        self.per_peer = per_peer
        self._tickets: dict[str, list[ClientTicket]] = {}

    def put(self, peer: str, ticket: ClientTicket) -> None:
        kept = self._tickets.setdefault(peer, [])
        kept.insert(0, ticket)
        del kept[self.per_peer :]

    def take(self, peer: str) -> ClientTicket | None:
        """The newest ticket with uses left (its use counted), or None."""
        kept = self._tickets.get(peer, [])
        while kept:
            t = kept[0]
            if t.uses < t.facts.max_uses:
                t.uses += 1
                return t
            kept.pop(0)
        return None

    def drop(self, peer: str, ticket: ClientTicket) -> None:
        kept = self._tickets.get(peer, [])
        if ticket in kept:
            kept.remove(ticket)

    def clear(self) -> None:
        """Forget every ticket: the next handshake to each server is a full one."""
        self._tickets.clear()

    def __len__(self) -> int:
        return sum(len(v) for v in self._tickets.values())


__all__ = [
    "ClientTicket",
    "Opened",
    "Refusal",
    "SessionFacts",
    "TicketCache",
    "TicketKeys",
    "TicketRefused",
]
