"""Handshake messages: layouts, encoding and strict decoding (see docs/protocol.md).

Framing of every handshake message: type (u8) | length (u24) | body.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from mtlsdemo.handshake.codec import Reader, u8, u16, u24
from mtlsdemo.handshake.errors import ProtocolError, Reason

RANDOM_LEN = 32
MAX_CHAIN = 4  # leaf + up to 3 issuers
MAX_CERT_BYTES = 8192  # one DER certificate
MAX_STATUS_BYTES = 4096  # one stapled OCSP response (ours are ~300 bytes)
X25519_GROUP = 0x001D
X25519MLKEM768_GROUP = 0x11EC  # the TLS code point of the same hybrid
BINDER_LEN = 32
MAX_TICKET_BYTES = 1024  # ours are ~250 bytes
X25519_SHARE_LEN = 32
MLKEM768_CIPHERTEXT_LEN = 1088

# Every encoder below writes its message as named parts, in wire order: the body is
# their bytes joined, and the layout (``layout``) their names and offsets. One source
# for the bytes and for what each byte is: the Wireshark dissector's field names are
# these names under ``mtd.`` (a test compares offsets), the byte view labels these runs.
Part = tuple[str, bytes]


def _join(parts: list[Part]) -> bytes:
    return b"".join(p for _, p in parts)


def _u16s(name: str, values: tuple[int, ...]) -> list[Part]:
    return [(name, u16(v)) for v in values]


class HandshakeType(IntEnum):
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    NEW_SESSION_TICKET = 4  # MTD/1.1: server -> client, before its Finished
    CERTIFICATE = 11
    SERVER_KEY_SHARE = 12
    CERTIFICATE_REQUEST = 13
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20


@dataclass(frozen=True)
class ResumeOffer:
    """MTD/1.1: a ticket, a fresh X25519 share, and the binder (an HMAC under the
    ticket's secret over the ClientHello up to the binder itself)."""

    ticket: bytes
    share: bytes
    binder: bytes = bytes(BINDER_LEN)

    def parts(self) -> list[Part]:
        return [
            ("ticket_length", u16(len(self.ticket))),
            ("ticket", self.ticket),
            ("resume.x25519_share_length", u8(len(self.share))),
            ("resume.x25519_share", self.share),
            ("resume.binder", self.binder),
        ]

    def body(self) -> bytes:
        return _join(self.parts())

    @classmethod
    def parse(cls, r: Reader) -> ResumeOffer:
        ticket = r.vec16()
        if not ticket or len(ticket) > MAX_TICKET_BYTES:
            raise ProtocolError(
                Reason.DECODE_ERROR, f"ticket of {len(ticket)} bytes (limit {MAX_TICKET_BYTES})"
            )
        return cls(ticket, r.vec8(), r.fixed(BINDER_LEN))


@dataclass(frozen=True)
class ClientHello:
    versions: tuple[int, ...]
    random: bytes
    suites: tuple[int, ...]
    resume: ResumeOffer | None = None  # MTD/1.1 only, and only with a ticket for this server
    type = HandshakeType.CLIENT_HELLO

    def parts(self) -> list[Part]:
        return [
            ("client_hello.versions_length", u8(2 * len(self.versions))),
            *_u16s("version", self.versions),
            ("random", self.random),
            ("client_hello.suites_length", u8(2 * len(self.suites))),
            *_u16s("suite", self.suites),
            *(self.resume.parts() if self.resume else []),
        ]

    def body(self) -> bytes:
        return _join(self.parts())

    @classmethod
    def parse(cls, r: Reader) -> ClientHello:
        versions = _u16_list(r.vec8(), "ClientHello.versions")
        random = r.fixed(RANDOM_LEN)
        suites = _u16_list(r.vec8(), "ClientHello.suites")
        if not versions or not suites:
            raise ProtocolError(Reason.DECODE_ERROR, "ClientHello: empty version or suite list")
        resume = ResumeOffer.parse(r) if r.remaining else None
        return cls(versions, random, suites, resume)


def binder_input(encoded_hello: bytes) -> bytes:
    """What the binder covers: the whole ClientHello message but the binder."""
    return encoded_hello[:-BINDER_LEN]


@dataclass(frozen=True)
class ServerHello:
    version: int
    random: bytes
    suite: int
    # MTD/1.1 only: 1 = resuming the offered ticket, 0 = full handshake; and when
    # an offered ticket was refused, why (tickets.REFUSAL_CODES; 0 = none offered)
    resumed: int | None = None
    refusal: int = 0
    type = HandshakeType.SERVER_HELLO

    def parts(self) -> list[Part]:
        tail: list[Part] = (
            []
            if self.resumed is None
            else [
                ("server_hello.resumed", u8(self.resumed)),
                ("server_hello.refusal", u8(self.refusal)),
            ]
        )
        return [
            ("version", u16(self.version)),
            ("random", self.random),
            ("suite", u16(self.suite)),
            *tail,
        ]

    def body(self) -> bytes:
        return _join(self.parts())

    @classmethod
    def parse(cls, r: Reader) -> ServerHello:
        version, random, suite = r.u16(), r.fixed(RANDOM_LEN), r.u16()
        if not r.remaining:
            return cls(version, random, suite)
        resumed, refusal = r.u8(), r.u8()
        if resumed > 1:
            raise ProtocolError(Reason.DECODE_ERROR, f"ServerHello: resumed flag {resumed}")
        return cls(version, random, suite, resumed, refusal)


@dataclass(frozen=True)
class NewSessionTicket:
    lifetime: int  # seconds
    max_uses: int
    ticket: bytes  # opaque to the client
    type = HandshakeType.NEW_SESSION_TICKET

    def parts(self) -> list[Part]:
        return [
            ("new_session_ticket.lifetime", self.lifetime.to_bytes(4, "big")),
            ("new_session_ticket.max_uses", self.max_uses.to_bytes(4, "big")),
            ("ticket_length", u16(len(self.ticket))),
            ("ticket", self.ticket),
        ]

    def body(self) -> bytes:
        return _join(self.parts())

    @classmethod
    def parse(cls, r: Reader) -> NewSessionTicket:
        lifetime = int.from_bytes(r.fixed(4), "big")
        max_uses = int.from_bytes(r.fixed(4), "big")
        ticket = r.vec16()
        if not ticket or len(ticket) > MAX_TICKET_BYTES:
            raise ProtocolError(
                Reason.DECODE_ERROR, f"ticket of {len(ticket)} bytes (limit {MAX_TICKET_BYTES})"
            )
        return cls(lifetime, max_uses, ticket)


@dataclass(frozen=True)
class Certificate:
    chain: tuple[bytes, ...]  # DER, leaf first
    status: bytes = b""  # the leaf's stapled OCSP response (DER); empty: none
    type = HandshakeType.CERTIFICATE

    def parts(self) -> list[Part]:
        out: list[Part] = [("certificate.count", u8(len(self.chain)))]
        for der in self.chain:
            out += [("certificate.length", u24(len(der))), ("certificate", der)]
        out.append(("certificate.status_length", u24(len(self.status))))
        if self.status:
            out.append(("certificate.status", self.status))
        return out

    def body(self) -> bytes:
        return _join(self.parts())

    @classmethod
    def parse(cls, r: Reader) -> Certificate:
        n = r.u8()
        if n > MAX_CHAIN:
            raise ProtocolError(
                Reason.BAD_CERTIFICATE, f"chain of {n} certificates exceeds {MAX_CHAIN}"
            )
        chain = []
        for _ in range(n):
            der = r.vec24()
            if not der or len(der) > MAX_CERT_BYTES:
                raise ProtocolError(
                    Reason.BAD_CERTIFICATE,
                    f"certificate of {len(der)} bytes (limit {MAX_CERT_BYTES})",
                )
            chain.append(der)
        status = r.vec24()
        if len(status) > MAX_STATUS_BYTES:
            raise ProtocolError(
                Reason.STATUS_INVALID,
                f"stapled status of {len(status)} bytes (limit {MAX_STATUS_BYTES})",
            )
        return cls(tuple(chain), status)


@dataclass(frozen=True)
class ServerKeyShare:
    group: int
    public: bytes
    type = HandshakeType.SERVER_KEY_SHARE

    def parts(self) -> list[Part]:
        # the hybrid share (1,216 bytes) needs a 16-bit length; X25519's keeps its 8-bit
        # one, so MTD/1 peers without the hybrid see the same bytes as before
        group: Part = ("server_key_share.group", u16(self.group))
        if self.group == X25519MLKEM768_GROUP:
            ek = len(self.public) - X25519_SHARE_LEN
            return [
                group,
                ("server_key_share.key_length", u16(len(self.public))),
                ("server_key_share.mlkem768_encapsulation_key", self.public[:ek]),
                ("x25519_public_key", self.public[ek:]),
            ]
        return [
            group,
            ("server_key_share.key_length", u8(len(self.public))),
            ("x25519_public_key", self.public),
        ]

    def body(self) -> bytes:
        return _join(self.parts())

    @classmethod
    def parse(cls, r: Reader) -> ServerKeyShare:
        group = r.u16()
        return cls(group, r.vec16() if group == X25519MLKEM768_GROUP else r.vec8())


@dataclass(frozen=True)
class CertificateRequest:
    schemes: tuple[int, ...]  # signature schemes the server accepts
    type = HandshakeType.CERTIFICATE_REQUEST

    def parts(self) -> list[Part]:
        return [
            ("certificate_request.schemes_length", u8(2 * len(self.schemes))),
            *_u16s("signature_scheme", self.schemes),
        ]

    def body(self) -> bytes:
        return _join(self.parts())

    @classmethod
    def parse(cls, r: Reader) -> CertificateRequest:
        schemes = _u16_list(r.vec8(), "CertificateRequest.schemes")
        if not schemes:
            raise ProtocolError(Reason.DECODE_ERROR, "CertificateRequest: no signature schemes")
        return cls(schemes)


@dataclass(frozen=True)
class CertificateVerify:
    scheme: int
    signature: bytes
    type = HandshakeType.CERTIFICATE_VERIFY

    def parts(self) -> list[Part]:
        return [
            ("signature_scheme", u16(self.scheme)),
            ("certificate_verify.signature_length", u16(len(self.signature))),
            ("certificate_verify.signature", self.signature),
        ]

    def body(self) -> bytes:
        return _join(self.parts())

    @classmethod
    def parse(cls, r: Reader) -> CertificateVerify:
        return cls(r.u16(), r.vec16())


@dataclass(frozen=True)
class ClientKeyExchange:
    # X25519 public key; hybrid: ML-KEM-768 ciphertext || X25519 public key; or the
    # RSA-OAEP ciphertext of the pre-master secret
    data: bytes
    type = HandshakeType.CLIENT_KEY_EXCHANGE

    def parts(self, kx: str = "") -> list[Part]:
        """``kx``: the suite's key exchange ("hybrid", "x25519", "rsa"), which says how
        the data splits; unknown (""), it is told by length."""
        length: Part = ("client_key_exchange.length", u16(len(self.data)))
        hybrid = MLKEM768_CIPHERTEXT_LEN + X25519_SHARE_LEN
        if kx == "hybrid" or (not kx and len(self.data) == hybrid):
            ct = len(self.data) - X25519_SHARE_LEN
            return [
                length,
                ("client_key_exchange.mlkem768_ciphertext", self.data[:ct]),
                ("x25519_public_key", self.data[ct:]),
            ]
        if kx == "x25519" or (not kx and len(self.data) == X25519_SHARE_LEN):
            return [length, ("x25519_public_key", self.data)]
        return [length, ("client_key_exchange.rsa_oaep_ciphertext", self.data)]

    def body(self) -> bytes:
        return _join(self.parts())

    @classmethod
    def parse(cls, r: Reader) -> ClientKeyExchange:
        return cls(r.vec16())


@dataclass(frozen=True)
class Finished:
    verify_data: bytes
    type = HandshakeType.FINISHED

    def parts(self) -> list[Part]:
        return [("finished.verify_data", self.verify_data)]

    def body(self) -> bytes:
        return self.verify_data

    @classmethod
    def parse(cls, r: Reader) -> Finished:
        return cls(r.fixed(32))


Message = (
    ClientHello
    | ServerHello
    | Certificate
    | ServerKeyShare
    | CertificateRequest
    | CertificateVerify
    | ClientKeyExchange
    | Finished
    | NewSessionTicket
)
PARSERS: dict[int, type[Message]] = {
    HandshakeType.CLIENT_HELLO: ClientHello,
    HandshakeType.SERVER_HELLO: ServerHello,
    HandshakeType.CERTIFICATE: Certificate,
    HandshakeType.SERVER_KEY_SHARE: ServerKeyShare,
    HandshakeType.CERTIFICATE_REQUEST: CertificateRequest,
    HandshakeType.CERTIFICATE_VERIFY: CertificateVerify,
    HandshakeType.CLIENT_KEY_EXCHANGE: ClientKeyExchange,
    HandshakeType.FINISHED: Finished,
    HandshakeType.NEW_SESSION_TICKET: NewSessionTicket,
}


def _u16_list(raw: bytes, what: str) -> tuple[int, ...]:
    if len(raw) % 2:
        raise ProtocolError(Reason.DECODE_ERROR, f"{what}: odd length {len(raw)}")
    return struct.unpack(f">{len(raw) // 2}H", raw)


def encode(msg: Message) -> bytes:
    body = msg.body()
    return u8(int(msg.type)) + u24(len(body)) + body


def layout(msg: Message) -> list[tuple[str, int, int]]:
    """What each byte of ``encode(msg)`` is: (name, offset, length) in wire order, from
    the same parts the encoder joined."""
    out = [("handshake.type", 0, 1), ("handshake.length", 1, 3)]
    pos = 4
    for name, part in msg.parts():
        out.append((name, pos, len(part)))
        pos += len(part)
    return out


def decode(msg_type: int, body: bytes) -> Message:
    cls = PARSERS.get(msg_type)
    if cls is None:
        raise ProtocolError(Reason.UNEXPECTED_MESSAGE, f"unknown handshake message type {msg_type}")
    r = Reader(body, cls.__name__)
    msg: Message = cls.parse(r)
    r.end()
    return msg


class MessageBuffer:
    """Reassembles handshake messages from record payloads (a message may span
    records; a record may hold several messages). Yields (type, raw bytes)."""

    def __init__(self, max_message: int) -> None:
        self.buf = bytearray()
        self.max_message = max_message

    def feed(self, data: bytes | memoryview) -> list[tuple[int, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= 4:
            length = int.from_bytes(self.buf[1:4], "big")
            if length > self.max_message:
                raise ProtocolError(
                    Reason.RECORD_OVERFLOW,
                    f"handshake message of {length} bytes (limit {self.max_message})",
                )
            if len(self.buf) < 4 + length:
                break
            raw = bytes(self.buf[: 4 + length])
            del self.buf[: 4 + length]
            out.append((raw[0], raw))
        return out

    @property
    def pending(self) -> int:
        return len(self.buf)
