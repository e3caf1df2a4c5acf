"""The server's handlers: what it does with each client message."""

from __future__ import annotations

from mtlsdemo.handshake import kx
from mtlsdemo.handshake import messages as m
from mtlsdemo.handshake.client_side import ClientSide
from mtlsdemo.handshake.errors import (
    ProtocolError,
    Reason,
)
from mtlsdemo.handshake.events import (
    Event,
)
from mtlsdemo.handshake.keyschedule import KeySchedule
from mtlsdemo.handshake.records import (
    Protector,
)
from mtlsdemo.handshake.signatures import SUPPORTED_SCHEMES
from mtlsdemo.handshake.states import (
    State,
)
from mtlsdemo.handshake.suites import (
    BY_CODE,
    DOWNGRADE_SENTINEL,
    HYBRID_SUITES,
    VERSION_1_1,
    VERSION_1_2,
    KeyExchange,
    version_name,
)

T = m.HandshakeType


class ServerSide(ClientSide):
    """The server role: its flight after the ClientHello, then the client's.

    One inheritance chain (ConnectionCore -> Resumption -> ClientSide -> ServerSide ->
    Connection), not a diamond: mypyc, the compiler issue 25 uses, compiles single
    inheritance only. The roles share nothing through it but the core."""

    def _on_server_client_hello(self, msg: m.ClientHello, _th: bytes, _sig: bytes) -> None:
        t0 = self.clock()
        flight_start = len(self._out)
        self._client_random = msg.random
        self._sig_transcript.update(msg.random)
        common = [v for v in self.config.versions if v in msg.versions]
        if not common:
            raise ProtocolError(
                Reason.UNSUPPORTED_VERSION,
                "no common version: client offers "
                + ", ".join(version_name(v) for v in msg.versions)
                + "; this side accepts "
                + ", ".join(version_name(v) for v in self.config.versions)
                + (
                    " (older versions only when enabled: --versions)"
                    if max(msg.versions, default=0) < min(self.config.versions)
                    else ""
                ),
            )
        self.version = max(common)
        if VERSION_1_2 in self.config.versions and self.version < VERSION_1_2:
            # the downgrade mark (suites.py): a 1.2 client refuses an offer cut on the path
            self._random = self._server_random = self._random[:-8] + DOWNGRADE_SENTINEL
        cred = self.config.credentials
        # the hybrid suites only with 1.2: below it the downgrade mark protects nothing,
        # and a hybrid below 1.2 would be stripped to X25519 by whoever breaks X25519
        ours = [
            s
            for s in self.config.suites
            if cred.supports(s) and (self.version >= VERSION_1_2 or s not in HYBRID_SUITES)
        ]
        offered = [BY_CODE[c] for c in msg.suites if c in BY_CODE]
        if self.config.server_preference:
            chosen = next((s for s in ours if s in offered), None)
        else:
            chosen = next((s for s in offered if s in ours), None)
        if chosen is None:
            unusable = [s.name for s in offered if s in self.config.suites and s not in ours]
            why = (
                f"; {', '.join(unusable)} needs an RSA key with keyEncipherment and this "
                f"server's key is {cred.scheme.name.split('_')[0]}"
                if unusable
                else ""
            )
            names = [BY_CODE[c].name if c in BY_CODE else f"0x{c:04x}" for c in msg.suites]
            raise ProtocolError(
                Reason.NO_COMMON_SUITE,
                f"none of the client's suites is enabled here (client: {', '.join(names)}; "
                f"server: {', '.join(s.name for s in ours)}){why}",
            )
        if msg.resume is None:
            self.resumption = "full (no ticket offered)"
        else:
            if self.version < VERSION_1_1:
                raise ProtocolError(
                    Reason.ILLEGAL_PARAMETER, "a resumption offer in an MTD/1.0 ClientHello"
                )
            usable = [s for s in offered if s in ours]
            opened = self._try_resume(msg, usable)
            if opened is not None:
                self._server_resume(msg, opened)
                self._phase("hello", t0)
                self._merge_handshake_records(flight_start)
                return
        self.suite = chosen
        if self.version >= VERSION_1_1:
            hello = m.ServerHello(self.version, self._random, chosen.code, 0, self._refusal_code)
        else:
            hello = m.ServerHello(self.version, self._random, chosen.code)
        self._send_handshake([hello])
        t0 = self._phase("hello", t0)
        flight: list[m.Message] = [m.Certificate(cred.chain_der, cred.status)]
        if chosen.kx is KeyExchange.ECDHE_X25519:
            self._x25519, public = kx.x25519_keypair(self.entropy)
            flight.append(m.ServerKeyShare(m.X25519_GROUP, public))
        elif chosen.kx is KeyExchange.X25519_MLKEM768:
            self._mlkem, ek = kx.mlkem768_keypair(self.entropy)
            self._x25519, public = kx.x25519_keypair(self.entropy)
            flight.append(m.ServerKeyShare(m.X25519MLKEM768_GROUP, ek + public))
        flight.append(m.CertificateRequest(tuple(int(s) for s in SUPPORTED_SCHEMES)))
        self._send_handshake(flight)
        t0 = self._phase("key_exchange", t0)
        self._send_handshake([self._certificate_verify("server")])
        self._phase("certificate_verify", t0)
        self._merge_handshake_records(flight_start)
        self._move(State.WAIT_CERTIFICATE)

    def _on_server_certificate(self, msg: m.Certificate, _th: bytes, _sig: bytes) -> None:
        t0 = self.clock()
        self._judge_peer(msg, "client")
        self._phase("certificate_verify", t0)
        self._move(State.WAIT_CLIENT_KEY_EXCHANGE)

    def _on_server_client_key_exchange(
        self, msg: m.ClientKeyExchange, _th: bytes, _sig: bytes
    ) -> None:
        t0 = self.clock()
        assert self.suite is not None
        if self.suite.kx is KeyExchange.ECDHE_X25519:
            shared = kx.x25519_shared(self._x25519, msg.data)
            self._x25519 = None  # ephemeral: forget it as soon as it has served
        elif self.suite.kx is KeyExchange.X25519_MLKEM768:
            if len(msg.data) != kx.MLKEM768_CT_LEN + kx.X25519_LEN:
                raise ProtocolError(
                    Reason.ILLEGAL_PARAMETER,
                    f"hybrid ClientKeyExchange of {len(msg.data)} bytes (must be "
                    f"{kx.MLKEM768_CT_LEN} ML-KEM-768 ciphertext + {kx.X25519_LEN} X25519)",
                )
            ct, public = msg.data[: kx.MLKEM768_CT_LEN], msg.data[kx.MLKEM768_CT_LEN :]
            shared = kx.hybrid_secret(
                kx.mlkem768_decapsulate(self._mlkem, ct), kx.x25519_shared(self._x25519, public)
            )
            self._mlkem = self._x25519 = None  # ephemeral: both forgotten once used
        else:
            shared, ok = kx.rsa_oaep_decrypt(self.config.credentials.key, msg.data, self.entropy)  # type: ignore[arg-type]
            # Deliberately no error here: a bad ciphertext surfaces as bad_finished.
            if self.config.trace:
                self.trace[-1].fields["decrypted"] = (
                    "ok" if ok else "failed; continuing with a random secret"
                )
        self._ks = KeySchedule(shared, self._client_random, self._server_random)
        if self.config.trace:  # kept only for the trace's key-schedule entry
            self._shared_for_trace = shared
        self._phase("key_exchange", t0)
        self._move(State.WAIT_CERTIFICATE_VERIFY)

    def _on_server_certificate_verify(
        self, msg: m.CertificateVerify, _th: bytes, sig: bytes
    ) -> None:
        t0 = self.clock()
        self._check_certificate_verify(msg, sig)
        self._phase("certificate_verify", t0)
        self._move(State.WAIT_FINISHED)

    def _on_server_finished(self, msg: m.Finished, th: bytes, _sig: bytes) -> list[Event]:
        t0 = self.clock()
        assert self._ks is not None and self.suite is not None
        if not self._ks.check_finished("client", th, msg.verify_data):
            raise ProtocolError(
                Reason.BAD_FINISHED, "client Finished does not match our transcript"
            )
        if self._hs.pending:
            raise ProtocolError(Reason.UNEXPECTED_MESSAGE, "handshake bytes after Finished")
        th_cf = self._transcript.copy().finalize()
        if self.resumed and self._opened is not None and self.config.tickets is not None:
            self.config.tickets.count_use(self._opened)  # a completed resumption, not a replay
        if not self.resumed or self.version >= VERSION_1_2:
            # our Finished answers the client's (full: after a ticket, which it covers;
            # MTD/1.1 resumed: ours went first)
            flight_start = len(self._out)
            if not self.resumed:
                self._issue_ticket()
            fin = self._ks.finished_mac("server", self._transcript.copy().finalize())
            self._send_handshake([m.Finished(fin)])
            self._merge_handshake_records(flight_start)
        self._send = Protector(
            self.suite, self._ks.traffic_secret("server", th_cf), self.config.limits.max_seq
        )
        self._recv = Protector(
            self.suite, self._ks.traffic_secret("client", th_cf), self.config.limits.max_seq
        )
        self._trace_keys(self._shared_for_trace, th_cf)
        self._shared_for_trace = b""
        self._phase("finished", t0)
        return self._complete()
