"""One tunnel per accepted TCP connection: the handshake, then bytes both ways in
records, with half-close, backpressure, deadlines and metrics.

Built on asyncio Protocols rather than streams: the hot path is one
``data_received`` -> ``Connection`` -> ``transport.write`` with no extra copies
or task switches (streams cost about 2.5x the throughput here).

Two sides per tunnel: ``app`` (plaintext, 127.0.0.1) and ``net`` (MTD/1 to the
peer sidecar). Inbound tunnels start from the net side and dial the app after
the handshake; outbound tunnels start from the app side, hold its bytes (by not
reading) until the handshake with the remote sidecar completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from typing import Protocol

from mtlsdemo.endpoint import world
from mtlsdemo.handshake import (
    DataReceived,
    Event,
    HandshakeComplete,
    HandshakeConfig,
    HandshakeResult,
    PeerClosed,
    ProtocolError,
    Reason,
)
from mtlsdemo.handshake.errors import ALERT_CODES
from mtlsdemo.handshake.records import HEADER_LEN, TAG_LEN, ContentType, plaintext_record
from mtlsdemo.handshake.states import ALERT_FATAL, Role
from mtlsdemo.sidecar.config import SidecarConfig
from mtlsdemo.sidecar.keylog import KeyLog
from mtlsdemo.sidecar.observer import Observer
from mtlsdemo.sidecar.outcome import outcome_of

log = logging.getLogger(__name__)
WRITE_HIGH_WATER = 512 * 1024  # pause the other side's reads above this much unsent data
MAX_HELD = 64 * 1024  # app bytes held while the handshake is still running
# inbound bytes a connection waiting for a slot may send: its ClientHello (< 1.5 KiB; a
# resumption ticket adds ~0.3). More before any answer is no MTD/1 client: refused. The
# bound is what keeps an unauthenticated waiting connection at a few KiB (the audit's
# F2: holding a whole first read kept ~132 kB each)
WAITING_BUFFER = 4096
RECORD_OVERHEAD = HEADER_LEN + TAG_LEN


KEEPALIVE = (30, 10, 3)  # idle seconds, probe interval, probes: a vanished peer is gone in ~60 s


def keepalive(transport: asyncio.BaseTransport) -> None:
    """TCP keepalive on the peer connection: a tunnel whose peer vanished without a
    FIN or RST (a host gone, a stateful middlebox that forgot us) is closed rather
    than held half-open for ever."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    idle, interval, count = KEEPALIVE
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not Linux
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)


class TunnelHost(Protocol):
    """What a tunnel needs from the sidecar that runs it (and nothing more)."""

    config: SidecarConfig
    observer: Observer
    tunnels: set[Tunnel]
    # inbound: the local port of each connection to the app -> the verified peer, so
    # the app behind us can ask who is calling (GET /app-peer, for per-call policy)
    app_peers: dict[int, str]
    keylog: KeyLog | None

    def connect_app(self, tunnel: Tunnel) -> None: ...

    def handshake_slot_freed(self) -> None: ...

    def admit_inbound(self, tunnel: Tunnel, source: str) -> bool | None: ...

    def source_began(self, tunnel: Tunnel, address: str) -> None: ...

    def source_done(self, tunnel: Tunnel, address: str, began: bool) -> None: ...

    def waiting_closed(self, tunnel: Tunnel) -> None: ...


class Tunnel:
    def __init__(
        self,
        sidecar: TunnelHost,
        role: Role,
        config: HandshakeConfig,
        label: str,
        local_identity: str,
        admitted: bool = True,
    ) -> None:
        """``admitted=False``: over the pending-handshake cap, the tunnel waits
        (``admit``) without handshake work: an inbound one buffers what arrives (a
        ClientHello), an outbound one is not dialled yet."""
        self.sidecar = sidecar
        self.observer = sidecar.observer
        self.role = role  # "server" (inbound) or "client" (outbound)
        self.label = label  # route or listener, for logs
        self.conn = world.connection(role, config)
        self.local_identity = local_identity
        self.app: asyncio.Transport | None = None
        self.net: asyncio.Transport | None = None
        self.peer_address = "?"
        self.established_at: float | None = None
        self.started = time.perf_counter()
        self.closed = False
        self._pending_app: list[bytes] = []  # inbound: data decrypted before the app connected
        self._pending_net: list[bytes] = []  # outbound: app bytes read before the handshake ended
        self._eof_held = False  # ... and the app's EOF, if it came that early
        self._app_eof = False  # the app finished sending (close_notify sent)
        self._peer_eof = False  # the peer finished sending (close_notify seen)
        self._deadline: asyncio.TimerHandle | None = None
        self._counted = (0, 0, 0, 0)
        self._key_updates = 0  # key generations counted so far (KeyUpdated events included)
        self._handshake_open = False
        self.waiting = not admitted
        self._waiting_in: list[bytes] = []  # inbound, while waiting: the peer's first bytes
        self._waiting_bytes = 0  # ... their length, at most WAITING_BUFFER
        self.source: str | None = None  # inbound: counted against its address until done
        self._app_port: int | None = None  # inbound: our port on the app connection
        if admitted:
            self._begin()
        # the deadline counts from the accept, waiting included
        self._deadline = asyncio.get_running_loop().call_later(
            sidecar.config.handshake_timeout, self._timeout
        )
        sidecar.tunnels.add(self)

    def _begin(self) -> None:
        if self.source is not None:
            self.sidecar.source_began(self, self.source)
        self._handshake_open = True
        self.waiting = False
        self.observer.handshake_started(self.role)

    def admit(self) -> bool:
        """A handshake slot is free: start (False if the tunnel closed meanwhile)."""
        if self.closed or not self.waiting:
            return False
        self._begin()
        if self._waiting_in and self.net is not None:
            held, self._waiting_in = self._waiting_in, []
            for data in held:
                self.net_data(data)
        return True

    # ------------------------------------------------------------------ handshake
    def _timeout(self) -> None:
        if self.conn.handshake_done or self.closed:
            return
        waited = (
            "for a handshake slot (--max-pending-handshakes)"
            if self.waiting
            else f"for {self.conn.waiting_for}"
        )
        err = self.conn.fail(
            Reason.HANDSHAKE_TIMEOUT,
            f"no progress in {self.sidecar.config.handshake_timeout:g}s while waiting {waited}",
        )
        self._flush_net()
        self._handshake_failed(err)

    def shed(self, why: str) -> None:
        """End this connection to make room (admission.py): an ``overloaded`` alert,
        counted as a refusal, the reason saying why this one."""
        if self.closed:
            return
        err = self.conn.fail(Reason.OVERLOADED, why)
        self._flush_net()
        self._handshake_failed(err)

    def _handshake_done(self, result: HandshakeResult) -> None:
        self._close_handshake()
        if self.sidecar.keylog is not None and self.conn.secrets is not None:
            self.sidecar.keylog.write(self.conn.secrets)
        self.established_at = time.perf_counter()
        self.observer.handshake(
            outcome_of(
                self.conn, self.label, self.local_identity, self.peer_address, result.duration
            )
        )

    def _handshake_failed(self, e: ProtocolError) -> None:
        self._close_handshake()
        duration = time.perf_counter() - self.started
        self.observer.handshake(
            outcome_of(self.conn, self.label, self.local_identity, self.peer_address, duration, e)
        )
        self.close(abort_app=True)

    def _close_handshake(self) -> None:
        if self.source is not None:
            self.sidecar.source_done(self, self.source, began=self._handshake_open)
            self.source = None
        if self._handshake_open:
            self._handshake_open = False
            self.observer.handshake_ended(self.role)
            self.sidecar.handshake_slot_freed()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    # ------------------------------------------------------------------ net side
    def net_connected(self, transport: asyncio.Transport) -> None:
        self.net = transport
        keepalive(transport)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.peer_address = f"{peer[0]}:{peer[1]}" if peer else "?"
        if self.role == "server":
            verdict = self.sidecar.admit_inbound(self, peer[0] if peer else "?")
            if verdict is None:
                transport.write(overloaded_alert())
                self.waiting = False  # never queued
                self.close()
                return
            self.source = peer[0] if peer else "?"
            if verdict:
                self._begin()
        if self.role == "client":
            self.conn.start()
            self._flush_net()

    def net_data(self, data: bytes) -> None:
        if self.closed:
            return
        if self.waiting:  # not our turn yet: keep the first bytes (a ClientHello)
            held = self._waiting_bytes + len(data)
            if held > WAITING_BUFFER:
                err = self.conn.fail(
                    Reason.RECORD_OVERFLOW,
                    f"{held} bytes sent while waiting for a handshake slot, before any "
                    f"answer (a ClientHello is at most {WAITING_BUFFER})",
                )
                self._waiting_in.clear()
                self._flush_net()
                self._handshake_failed(err)
                return
            self._waiting_in.append(data)
            self._waiting_bytes = held
            return
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as e:
            self._deliver(e.events)
            self._flush_net()  # the alert
            self._session_failed(e)
            return
        self._flush_net()
        self._deliver(events)

    def _deliver(self, events: list[Event]) -> None:
        chunks = []
        for ev in events:
            if type(ev) is DataReceived:
                chunks.append(ev.data)
            elif type(ev) is HandshakeComplete:
                self._handshake_done(ev.result)
                self._on_established()
            elif type(ev) is PeerClosed:
                self._peer_eof = True
        if chunks:
            if self.app is None:
                self._pending_app.extend(chunks)
            else:
                self.app.writelines(chunks)
        if self._peer_eof and self.app is not None:
            self._half_close_app()

    def net_eof(self) -> bool:
        """TCP EOF from the peer. Clean only after its close_notify."""
        if self.closed:
            return False
        try:
            self.conn.receive_data(b"")
        except ProtocolError as e:
            self._session_failed(e)
            return False
        if self.app is not None:
            self._half_close_app()
        return True  # keep our sending half open: the app may still have bytes for the peer

    def net_lost(self) -> None:
        if not self.closed:
            if not self.conn.handshake_done and self._handshake_open:
                self._handshake_failed(self.conn.fail(Reason.TRUNCATED, "peer connection lost"))
            else:
                self.close(abort_app=not self._peer_eof)

    def net_pause(self) -> None:
        log.debug("%s: peer side full, pausing the app side", self.label)
        if self.app is not None:
            self.app.pause_reading()

    def net_resume(self) -> None:
        log.debug("%s: peer side drained, resuming the app side", self.label)
        if self.app is not None and self.conn.handshake_done:
            self.app.resume_reading()

    def _flush_net(self) -> None:
        parts = self.conn.data_to_send_parts()
        if parts and self.net is not None and not self.net.is_closing():
            self.net.writelines(parts)  # one vectored write: headers and ciphertexts as made

    # ------------------------------------------------------------------ app side
    def app_connected(self, transport: asyncio.Transport) -> None:
        self.app = transport
        if self.role == "server" and self.conn.peer_identity:
            sock = transport.get_extra_info("sockname")
            if sock:
                self._app_port = int(sock[1])
                self.sidecar.app_peers[self._app_port] = self.conn.peer_identity
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        # Outbound: no plaintext leaves before the peer is verified; early bytes are
        # held (bounded, see app_data). Not pause_reading() here: uvloop ignores a
        # pause made inside connection_made and then loses track of later ones.
        if self._pending_app:
            transport.writelines(self._pending_app)
            self._pending_app.clear()
        if self._peer_eof:
            self._half_close_app()
        if self.net is not None and self.role == "server":
            self.net.resume_reading()

    def app_data(self, data: bytes) -> None:
        if self.closed or self._app_eof:
            return
        if self.established_at is None:
            # Outbound, before the peer is verified: hold the bytes, and stop
            # reading once a record's worth or more is waiting.
            self._pending_net.append(data)
            if sum(map(len, self._pending_net)) > MAX_HELD and self.app is not None:
                self.app.pause_reading()
            return
        try:
            self.conn.send_data(data)
        except ProtocolError as e:  # sequence exhausted
            self._flush_net()
            self._session_failed(e)
            return
        self._flush_net()

    def app_eof(self) -> bool:
        """The app finished sending: close_notify to the peer, keep reading its replies."""
        if self.closed:
            return False
        if self.established_at is None:
            self._eof_held = True  # after the held bytes, once the handshake is done
            return True
        self._app_eof = True
        self.conn.close()
        self._flush_net()
        if self._peer_eof:
            self.close()
            return False
        return True

    def app_lost(self) -> None:
        if not self.closed:
            if self.conn.handshake_done:
                self.conn.close()
                self._flush_net()
            self.close()

    def app_pause(self) -> None:
        if self.net is not None:
            self.net.pause_reading()

    def app_resume(self) -> None:
        if self.net is not None:
            self.net.resume_reading()

    def _half_close_app(self) -> None:
        if self.app is not None and not self.app.is_closing():
            if self._app_eof:
                self.close()
            elif self.app.can_write_eof():
                self.app.write_eof()

    # ------------------------------------------------------------------ lifecycle
    def _on_established(self) -> None:
        if self.role == "client":
            held, self._pending_net = self._pending_net, []
            for data in held:
                self.app_data(data)
            if self._eof_held and not self.app_eof():
                return
            if self.app is not None and not self.closed:
                self.app.resume_reading()
        else:
            assert self.net is not None
            self.net.pause_reading()  # until the app connection exists
            self.sidecar.connect_app(self)

    def app_unavailable(self, error: Exception) -> None:
        log.error(
            "%s: local app %s unreachable (%s); closing session from %s",
            self.label,
            self.sidecar.config.inbound_target,
            error,
            self.conn.peer_identity,
        )
        self.conn.close()
        self._flush_net()
        self.close()

    def _session_failed(self, e: ProtocolError) -> None:
        if self.established_at is None:
            self._handshake_failed(e)
            return
        seconds = time.perf_counter() - self.established_at
        self.observer.session_failed(
            outcome_of(self.conn, self.label, self.local_identity, self.peer_address, seconds, e)
        )
        self.close(abort_app=True)

    def count(self) -> None:
        """Hand this tunnel's record and key-update counts since the last call to
        the observer (once a second and at close)."""
        generations = self.conn.send_generation + self.conn.receive_generation
        now = self.conn.counters
        rs, bs, rr, br = (a - b for a, b in zip(now, self._counted, strict=True))
        if rs or rr or generations != self._key_updates:
            self.observer.traffic(rs, bs, rr, br, generations - self._key_updates, RECORD_OVERHEAD)
        self._counted = now
        self._key_updates = generations

    def graceful_close(self) -> None:
        """Shutdown: close_notify to the peer, then close both sides."""
        if self.closed:
            return
        if self.conn.handshake_done:
            self.conn.close()
            self._flush_net()
        elif self._handshake_open:
            self._handshake_failed(self.conn.fail(Reason.INTERNAL_ERROR, "sidecar shutting down"))
            return
        self.close()

    def close(self, abort_app: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if self._app_port is not None:
            self.sidecar.app_peers.pop(self._app_port, None)
        if self.waiting:  # its place in the waiting room is free at once
            self.sidecar.waiting_closed(self)
        self._close_handshake()
        self.count()
        if self.established_at is not None:
            self.observer.session_closed(self.role, time.perf_counter() - self.established_at)
        if self.net is not None:
            self.net.close()  # flushes what is queued (alert, close_notify) first
        if self.app is not None:
            if abort_app:
                self.app.abort()  # a failed session must not look like a clean end to the app
            else:
                self.app.close()
        self.sidecar.tunnels.discard(self)


class NetSide(asyncio.Protocol):
    """The encrypted side: inbound accepts, or outbound dials."""

    def __init__(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tunnel.net_connected(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.tunnel.net_data(data)

    def eof_received(self) -> bool:
        return self.tunnel.net_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self.tunnel.net_lost()

    def pause_writing(self) -> None:
        self.tunnel.net_pause()

    def resume_writing(self) -> None:
        self.tunnel.net_resume()


class AppSide(asyncio.Protocol):
    """The plaintext side, on 127.0.0.1."""

    def __init__(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tunnel.app_connected(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.tunnel.app_data(data)

    def eof_received(self) -> bool:
        return self.tunnel.app_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self.tunnel.app_lost()

    def pause_writing(self) -> None:
        self.tunnel.app_pause()

    def resume_writing(self) -> None:
        self.tunnel.app_resume()


class Refuse(asyncio.Protocol):
    """A connection turned away before any handshake work (over the pending cap):
    the peer sidecar gets a fatal alert naming the reason, a local app just a close."""

    def __init__(self, reason: Reason | None) -> None:
        self.reason = reason

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses: no isinstance here)
        if self.reason is not None:
            transport.write(refusal_alert(self.reason))  # type: ignore[attr-defined]
        transport.close()


def refusal_alert(reason: Reason) -> bytes:
    return plaintext_record(ContentType.ALERT, bytes((ALERT_FATAL, ALERT_CODES[reason])))


def overloaded_alert() -> bytes:
    return refusal_alert(Reason.OVERLOADED)
