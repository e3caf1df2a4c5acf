"""Session resumption (MTD/1.1, tickets.py): the client's offer, the server's
opening and re-checking of a ticket and its short flight, issuing a ticket after
a full handshake, keeping one on the client."""

from __future__ import annotations

from cryptography.hazmat.primitives import constant_time

from mtlsdemo.handshake import kx
from mtlsdemo.handshake import messages as m
from mtlsdemo.handshake.core import ConnectionCore
from mtlsdemo.handshake.errors import (
    ProtocolError,
    Reason,
)
from mtlsdemo.handshake.keyschedule import KeySchedule, binder, sha256
from mtlsdemo.handshake.states import (
    State,
)
from mtlsdemo.handshake.suites import BY_CODE, VERSION_1_1, VERSION_1_2, Suite
from mtlsdemo.handshake.tickets import (
    REFUSAL_CODES,
    ClientTicket,
    Opened,
    SessionFacts,
    TicketRefused,
)

T = m.HandshakeType


class Resumption(ConnectionCore):
    """The resumption steps of both roles."""

    def _resume_offer(self) -> m.ResumeOffer | None:
        """Client: the newest ticket for this peer that still passes every check."""
        cache, peer = self.config.ticket_cache, self.config.ticket_peer
        if cache is None or max(self.config.versions) < VERSION_1_1:
            return None
        if self.config.peer.server_name:
            self.resumption = "full (a server-name check needs the certificate)"
            return None
        while (ticket := cache.take(peer)) is not None:
            try:
                ticket.facts.recheck(
                    self.now,
                    self.config.trust.fingerprint,
                    self.config.credentials.fingerprint,
                    self.config.peer.allows,
                    self._available_suites(),
                    self.config.peer.revoked,
                    self.config.credentials.identity,
                )
            except TicketRefused as e:
                cache.drop(peer, ticket)
                self.resumption = f"full: ticket not offered: {e}"
                self.resume_refusal = e.refusal.value
                continue
            self._ticket = ticket
            self._x25519, public = kx.x25519_keypair(self.entropy)
            return m.ResumeOffer(ticket.ticket, public)
        if not self.resumption:
            self.resumption = "full (no ticket held for this peer)"
        return None

    def _try_resume(self, hello: m.ClientHello, usable: list[Suite]) -> Opened | None:
        """Server: open and re-check an offered ticket; None (and the reason kept)
        when it cannot be used. A bad binder is fatal: the hello was altered or the
        client does not hold the ticket's secret."""
        tickets = self.config.tickets
        assert hello.resume is not None
        if tickets is None:
            self.resumption = "full: this server does not resume sessions"
            return None
        try:
            opened = tickets.open(hello.resume.ticket)
            # the binder first: only who holds the ticket's secret learns why it would be
            # refused (the ticket itself travels in clear; its holder could otherwise ask
            # "is this client still allowed, expired, revoked?")
            want = binder(opened.psk, sha256(m.binder_input(self._last_raw)))
            if not constant_time.bytes_eq(want, hello.resume.binder):
                raise ProtocolError(
                    Reason.BAD_FINISHED,
                    "resumption binder does not match: the ClientHello was altered, or the "
                    "client does not hold the ticket's secret",
                )
            opened.facts.recheck(
                self.now,
                self.config.trust.fingerprint,
                self.config.credentials.fingerprint,
                self.config.peer.allows,
                tuple(s.code for s in usable),
                self.config.peer.revoked,
                self.config.credentials.identity,
            )
            tickets.check_use(opened)  # used up: refused (nothing is counted yet)
            self._opened = opened  # its use is counted when the client's Finished verifies
        except TicketRefused as e:
            self.resumption = f"full: ticket refused: {e}"
            self.resume_refusal = e.refusal.value
            self._refusal_code = REFUSAL_CODES[e.refusal]  # told in our ServerHello
            return None
        return opened

    def _server_resume(self, hello: m.ClientHello, opened: Opened) -> None:
        """Server: ServerHello (resumed), ServerKeyShare (MTD/1.1: and our Finished);
        then wait for the client's Finished. No certificates, no signatures."""
        assert hello.resume is not None
        self.suite = BY_CODE[opened.facts.suite]
        self.resumed = True
        self.resumption = "resumed"
        self._resumed_facts = opened.facts
        priv, public = kx.x25519_keypair(self.entropy)
        shared = kx.x25519_shared(priv, hello.resume.share)
        self._ks = KeySchedule(shared + opened.psk, self._client_random, self._server_random)
        if self.config.trace:  # kept only for the trace's key-schedule entry
            self._shared_for_trace = shared + opened.psk
        self._send_handshake(
            [
                m.ServerHello(self.version, self._random, self.suite.code, 1, 0),
                m.ServerKeyShare(m.X25519_GROUP, public),
            ]
        )
        if self.version < VERSION_1_2:  # MTD/1.1: our Finished first (1.2: after the client's)
            fin = self._ks.finished_mac("server", self._transcript.copy().finalize())
            self._send_handshake([m.Finished(fin)])
        self._move(State.WAIT_FINISHED)

    def _issue_ticket(self) -> None:
        """Server, full MTD/1.1 handshake: a NewSessionTicket before our Finished
        (so the Finished covers it)."""
        tickets, peer = self.config.tickets, self.peer
        if tickets is None or self.version < VERSION_1_1 or peer is None or self.suite is None:
            return
        assert self._ks is not None
        psk = self._ks.resumption_psk(self._transcript.copy().finalize())
        facts = self._facts_of_peer(tickets.lifetime, tickets.max_uses)
        ticket = tickets.seal(psk, facts, self.now, self.entropy)
        self._send_handshake([m.NewSessionTicket(tickets.lifetime, tickets.max_uses, ticket)])
        self.ticket_issued = True

    def _facts_of_peer(self, lifetime: int, max_uses: int) -> SessionFacts:
        peer = self.peer
        assert peer is not None and self.suite is not None
        return SessionFacts(
            peer_identity=peer.identity,
            peer_subject=peer.subject,
            peer_not_after=int(peer.leaf.not_valid_after_utc.timestamp()),
            status_until=int(peer.status_until.timestamp()) if peer.status_until else 0,
            trust=self.config.trust.fingerprint,
            own=self.config.credentials.fingerprint,
            suite=self.suite.code,
            issued_at=int(self.now.timestamp()),
            lifetime=lifetime,
            max_uses=max_uses,
            peer_issuer=peer.leaf.issuer.public_bytes(),
            peer_serial=peer.leaf.serial_number,
            own_identity=self.config.credentials.identity,
        )

    def _keep_ticket(self) -> None:
        """Client, after the server's Finished verified (it covers the ticket)."""
        nst, cache = self._nst, self.config.ticket_cache
        if nst is None or cache is None or self._ks is None:
            return
        psk = self._ks.resumption_psk(self._th_cf)
        facts = self._facts_of_peer(nst.lifetime, nst.max_uses)
        cache.put(self.config.ticket_peer, ClientTicket(nst.ticket, psk, facts))
