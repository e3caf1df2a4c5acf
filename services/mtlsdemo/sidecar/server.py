"""The sidecar process: listeners, routes, reload loop, admin endpoint, shutdown."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import errno
import functools
import json
import logging
import resource
import signal
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from mtlsdemo import __version__, telemetry
from mtlsdemo.handshake import HandshakeConfig, ProtocolError, Reason, build
from mtlsdemo.handshake.suites import VERSION_1_2, version_name
from mtlsdemo.handshake.tickets import TicketCache, TicketKeys
from mtlsdemo.pki.crlfile import CRL_STATE_FILE, CrlFile
from mtlsdemo.pki.feeds import identity_feed
from mtlsdemo.pki.files import fingerprint
from mtlsdemo.pki.keys import key_type_of
from mtlsdemo.policyfile import PolicyFile
from mtlsdemo.sidecar.admin import AdminServer, Encoded, json_response
from mtlsdemo.sidecar.admission import Admission
from mtlsdemo.sidecar.certview import certificates_view
from mtlsdemo.sidecar.config import Route, SidecarConfig, SidecarConfigError
from mtlsdemo.sidecar.edges import Status
from mtlsdemo.sidecar.identity import (
    IdentityWatcher,
    client_config,
    server_config,
)
from mtlsdemo.sidecar.journal import KEEP, MAX_SUBSCRIBERS, Entry, HandshakeJournal
from mtlsdemo.sidecar.keylog import WARNING as KEYLOG_WARNING
from mtlsdemo.sidecar.keylog import KeyLog, KeyLogError
from mtlsdemo.sidecar.observer import Observer
from mtlsdemo.sidecar.outcome import HandshakeOutcome
from mtlsdemo.sidecar.tunnel import AppSide, NetSide, Refuse, Tunnel
from mtlsdemo.trust.authz import Request

log = logging.getLogger(__name__)


class Sidecar:
    def __init__(self, config: SidecarConfig) -> None:
        config.validate()
        self.config = config
        self.identity = IdentityWatcher(identity_feed(config.identity_dir, config.workload_api))
        self.journal = HandshakeJournal(config.name)
        self.status = Status(self.journal)
        self.observer = Observer(self.status)
        self.instance = uuid.uuid4().hex[:12]  # tells a watcher this process restarted
        self.tunnels: set[Tunnel] = set()
        self.app_peers: dict[int, str] = {}  # see TunnelHost.app_peers
        # who starts a handshake, who waits, who is shed: fair across sources
        self.admission: Admission[Tunnel, Route] = Admission(
            config.max_pending_handshakes,
            config.max_waiting_handshakes,
            config.max_handshakes_per_source,
            lambda: self.observer.pending,
        )
        self._handshakes_cache: tuple[tuple[int, int, int, bool], bytes] | None = None
        self._admitting = False
        self.ports: dict[str, int] = {}
        self.started_at = time.time()
        self._servers: list[asyncio.AbstractServer] = []
        self._admin: AdminServer | None = None
        self._reload_task: asyncio.Task[None] | None = None
        self._cfg_generation = -1
        self._server_cfg: HandshakeConfig | None = None
        # per route (two routes may expect one identity at two addresses: each has its
        # own ticket cache entry, never the other server's tickets)
        self._client_cfgs: dict[Route, HandshakeConfig] = {}
        # session resumption: one ticket key set (server) and one ticket cache
        # (client) for the process, kept across identity reloads
        self.ticket_keys = (
            TicketKeys(config.ticket_lifetime, config.ticket_max_uses)
            if config.session_tickets
            else None
        )
        self.ticket_cache = TicketCache() if config.session_tickets else None
        # the CA's CRL, re-read when it changes, verified against our current bundle
        self.crl = (
            CrlFile(
                config.crl,
                lambda: self.identity.current.material.cas,
                required=config.crl_required,
                state=config.crl_state or config.identity_dir / CRL_STATE_FILE,
            )
            if config.crl is not None
            else None
        )
        self._revoked = self.crl.revoked if self.crl is not None else None
        # who may connect to this workload (trust/authz.py, decided at the handshake)
        self.authz = (
            PolicyFile(config.authz_policy, "sidecar", config.authz_methods)
            if config.authz_policy is not None
            else None
        )
        self._authorize = self._authorize_peer if self.authz is not None else None
        # what a dry-run policy would have refused, by (peer, rule): the console shows it
        # beside the edge before the policy is enforced
        self.would_deny: collections.Counter[tuple[str, str]] = collections.Counter()
        self.keylog: KeyLog | None = None
        if config.keylog is not None:
            try:
                self.keylog = KeyLog(config.keylog)
            except KeyLogError as e:
                raise SidecarConfigError(str(e)) from None

    def _authorize_peer(self, peer: str) -> str | None:
        """The policy's answer for a verified peer connecting to this workload (the
        last segment of our own SPIFFE ID): None, or why not, naming the rule."""
        assert self.authz is not None
        workload = self.local_identity.rsplit("/", 1)[-1]
        d = self.authz.decide(Request(peer, workload))
        if d.would_deny:
            self.would_deny[(peer, d.would_deny)] += 1
        return None if d.allowed else d.reason

    # --- configs follow the identity material (hot reload) ---
    def _refresh(self) -> None:
        cur = self.identity.current
        if cur.generation != self._cfg_generation:
            self._cfg_generation = cur.generation
            self._server_cfg = server_config(
                cur, self.config, self.ticket_keys, self._revoked, self._authorize
            )
            self._client_cfgs = {
                r: client_config(cur, self.config, r, self.ticket_cache, self._revoked)
                for r in self.config.routes
            }

    def server_config(self) -> HandshakeConfig:
        self._refresh()
        assert self._server_cfg is not None
        return self._server_cfg

    def client_config(self, route: Route) -> HandshakeConfig:
        self._refresh()
        return self._client_cfgs[route]

    # --- lifecycle ---
    async def _listen(self, factory: Any, host: str, port: int, flag: str) -> asyncio.Server:
        try:
            return await asyncio.get_running_loop().create_server(
                factory, host, port, reuse_address=True, backlog=self.config.listen_backlog
            )
        except OSError as e:
            why = "in use (another sidecar?)" if e.errno == errno.EADDRINUSE else e.strerror
            raise SidecarConfigError(f"{flag} {host}:{port}: cannot listen: {why}") from None

    async def start(self) -> None:
        cfg = self.config
        telemetry.BUILD_INFO.info({"version": __version__, "component": cfg.name, "core": build()})
        if cfg.inbound_listen and cfg.inbound_target:
            host, port = cfg.inbound_listen
            srv = await self._listen(self._inbound, host, port, "--inbound-listen")
            self._servers.append(srv)
            self.ports["inbound"] = srv.sockets[0].getsockname()[1]
            log.info(
                "inbound %s:%d -> app %s:%d; peers allowed: %s",
                host,
                self.ports["inbound"],
                *cfg.inbound_target,
                ", ".join(cfg.allowed_ids) or "any from the CA",
            )
        for i, route in enumerate(cfg.routes):
            factory = functools.partial(self._outbound, route)
            if route.unix is not None:
                srv = await asyncio.get_running_loop().create_unix_server(
                    factory, str(route.unix), backlog=cfg.listen_backlog
                )
            else:
                srv = await self._listen(factory, *route.listen, "--route")
                self.ports[f"route{i}"] = srv.sockets[0].getsockname()[1]
            self._servers.append(srv)
            log.info("route %s", route)
        if cfg.admin_listen:
            self._admin = AdminServer(
                {
                    "/healthz": self._healthz,
                    "/readyz": self._readyz,
                    "/status": self._status,
                    "/certificates": self._certificates,
                    "/handshakes": self._handshakes,
                    "/handshake-bytes": self._handshake_bytes,
                    "/app-peer": self._app_peer,
                },
                streams={"/events": self._events},
                # only a key-logging sidecar (a capture, teaching) lets a local caller
                # end its sessions: their next handshake then lands in the capture
                posts={"/sessions/close": self._close_sessions} if self.keylog else None,
            )
            try:
                self.ports["admin"] = await self._admin.start(*cfg.admin_listen)
            except OSError as e:
                host, port = cfg.admin_listen
                raise SidecarConfigError(
                    f"--admin-listen {host}:{port}: cannot listen: {e.strerror}"
                ) from None
            log.info(
                "admin on http://%s:%d (/metrics /healthz /readyz /status /certificates /app-peer "
                "/handshakes /events)",
                cfg.admin_listen[0],
                self.ports["admin"],
            )
        if self.keylog is not None:
            log.warning(KEYLOG_WARNING.format(path=self.keylog.path))
        if min(cfg.versions) < VERSION_1_2:
            log.warning(
                "OLDER VERSIONS ALLOWED (%s): a handshake with a 1.1 or 1.0 peer is not "
                "covered by 1.2's whole-transcript signatures or downgrade mark; a stolen "
                "RSA server key can rewrite it (docs/protocol.md §7a)",
                ", ".join(version_name(v) for v in cfg.versions),
            )
        if cfg.workload_api and cfg.require_status != "hard":
            log.warning(
                "STATUS CHECKS %s: identities from the Workload API (%s) carry no stapled "
                "status, so a peer's revocation is not checked at the handshake; their "
                "short lifetime is the revocation (the agent stops renewing). "
                "--require-status hard requires staples anyway",
                cfg.require_status.upper(),
                cfg.workload_api,
            )
        self._reload_task = asyncio.create_task(self._reload_loop())
        self._count_task = asyncio.create_task(self._count_loop())
        log.info(
            "identity %s from %s (serial %x, expires %s)",
            self.identity.current.material.identity,
            f"the Workload API at {cfg.workload_api}" if cfg.workload_api else cfg.identity_dir,
            self.identity.current.material.leaf.serial_number,
            self.identity.current.material.leaf.not_valid_after_utc,
        )

    # --- admission: a bounded number of handshakes at once, a bounded wait beyond ---
    def admit_inbound(self, tunnel: Tunnel, source: str) -> bool | None:
        """Where an inbound connection from ``source`` goes, once its address is known:
        True start now, False wait (queued), None refuse ('overloaded')."""
        verdict = self.admission.inbound(tunnel, source)
        if verdict is None:
            self.observer.overloaded(
                "server", "inbound", self.local_identity, source, self.admission.held[source]
            )
        return verdict

    def source_began(self, tunnel: Tunnel, address: str) -> None:
        self.admission.began(tunnel, address)

    def source_done(self, tunnel: Tunnel, address: str, began: bool) -> None:
        self.admission.done(tunnel, address, began)

    def waiting_closed(self, tunnel: Tunnel) -> None:
        # a closed waiter must not hold a place that a live connection is refused for
        self.admission.closed_waiting(tunnel)

    def handshake_slot_freed(self) -> None:
        if self.admission.waiting_count and not self._admitting:
            # later, not inside the tunnel whose handshake just ended
            self._admitting = True
            asyncio.get_running_loop().call_soon(self._admit_waiting)

    def _admit_waiting(self) -> None:
        self._admitting = False
        while (item := self.admission.next_waiter()) is not None:
            tunnel, route = item
            if tunnel.admit() and route is not None:
                asyncio.get_running_loop().create_task(self._dial(tunnel, route))

    @property
    def local_identity(self) -> str:
        return self.identity.current.material.identity

    def _inbound(self) -> asyncio.Protocol:
        # started, queued, or refused once its address is known (admit_inbound): a
        # full sidecar may still shed a connection of the source holding the most
        tunnel = Tunnel(self, "server", self.server_config(), "inbound", self.local_identity, False)
        return NetSide(tunnel)

    def _outbound(self, route: Route) -> asyncio.Protocol:
        label = route.label
        if (
            self.admission.waiting_count >= self.config.max_waiting_handshakes
            and self.observer.pending >= self.config.max_pending_handshakes
        ):
            self.observer.overloaded(
                "client", label, self.local_identity, "?", self.observer.pending
            )
            return Refuse(None)  # the local app: just close
        tunnel = Tunnel(
            self, "client", self.client_config(route), label, self.local_identity, False
        )
        admit = self.admission.outbound(tunnel, route)
        if admit is None:
            tunnel.close()
            return Refuse(None)
        if admit:
            tunnel.admit()
            asyncio.get_running_loop().create_task(self._dial(tunnel, route))
        return AppSide(tunnel)

    async def _dial(self, tunnel: Tunnel, route: Route) -> None:
        try:
            await asyncio.get_running_loop().create_connection(
                lambda: NetSide(tunnel), *route.remote
            )
        except OSError as e:
            log.error("route %s: remote sidecar unreachable: %s", route, e)
            outcome = HandshakeOutcome(
                "client",
                route.label,
                tunnel.local_identity,
                route.identity,
                f"{route.remote[0]}:{route.remote[1]}",
                "none",
                0.0,
                ProtocolError(Reason.UNREACHABLE, str(e)),
                failed_step="hello",
            )
            self.observer.not_dialled(outcome)
            tunnel.close(abort_app=True)

    def connect_app(self, tunnel: Tunnel) -> None:
        async def connect() -> None:
            assert self.config.inbound_target
            try:
                transport, _ = await asyncio.get_running_loop().create_connection(
                    lambda: AppSide(tunnel), *self.config.inbound_target
                )
            except OSError as e:
                tunnel.app_unavailable(e)
                return
            if tunnel.closed:
                transport.close()

        asyncio.get_running_loop().create_task(connect())

    async def _count_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.observer.flush()
            for tunnel in list(self.tunnels):
                tunnel.count()
            # stalled connections holding slots while others wait: shed them
            if self.admission.rebalance():
                self.handshake_slot_freed()

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.reload_interval)
            try:
                # off the loop: reading files may wait on the directory's lock (bounded),
                # and the data path, /healthz and the admin port must not wait with it
                await asyncio.to_thread(self.identity.check)
                if self.authz is not None:  # a new (or bad) policy is seen without a caller
                    await asyncio.to_thread(self.authz.check)
            except Exception:  # keep serving with what we have
                log.exception("certificate reload check failed")

    async def shutdown(self) -> None:
        for srv in self._servers:
            srv.close()
        deadline = time.monotonic() + self.config.drain_timeout
        if self.tunnels:
            log.info(
                "draining %d tunnel(s) for up to %.0fs",
                len(self.tunnels),
                self.config.drain_timeout,
            )
        while self.tunnels and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for tunnel in list(self.tunnels):
            tunnel.graceful_close()
        await asyncio.sleep(0.05)  # let the transports flush close_notify
        if self._reload_task:
            self._reload_task.cancel()
            self._count_task.cancel()
        if self._admin:
            await self._admin.close()

    # --- admin ---
    def _healthz(self, _request: web.Request) -> tuple[int, str, bytes]:
        return 200, "text/plain", b"ok\n"

    def _readyz(self, _request: web.Request) -> tuple[int, str, bytes]:
        ok, why = self.identity.ready()
        return (200 if ok else 503), "text/plain", (why + "\n").encode()

    def status_dict(self) -> dict[str, Any]:
        cur = self.identity.current
        m = cur.material
        now = dt.datetime.now(dt.UTC)
        out: dict[str, Any] = {
            "name": self.config.name,
            "version": __version__,
            "build": build(),  # the handshake core: compiled (mypyc) or interpreted
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "identity": m.identity,
            # where the identity comes from: files (hot reload) or an agent's pushes
            "identity_source": {"workload_api": self.config.workload_api}
            if self.config.workload_api
            else {"identity_dir": str(self.config.identity_dir)},
            "certificate": {
                "serial": f"{m.leaf.serial_number:x}",
                "key_type": key_type_of(m.leaf.public_key()),  # which algorithm, mid-migration
                "not_after": m.leaf.not_valid_after_utc.isoformat(),
                "expires_in_seconds": int((m.leaf.not_valid_after_utc - now).total_seconds()),
                "loaded_at": cur.loaded_at.isoformat(),
                "reload_generation": cur.generation,
                "last_reload_error": self.identity.last_error,
                "stapled_status": {
                    "bytes": len(m.status),
                    "next_update": None
                    if m.status_next_update is None
                    else dt.datetime.fromtimestamp(m.status_next_update, dt.UTC).isoformat(),
                },
            },
            # other trust domains whose peers we verify against their own bundle
            "federated_bundles": {td: [fingerprint(c) for c in cas] for td, cas in m.federated},
            "require_status": self.config.require_status,
            "versions": [version_name(v) for v in self.config.versions],
            "crl": self.crl.status() if self.crl is not None else None,
            "authz_policy": None
            if self.authz is None
            else {
                "file": str(self.authz.path),
                "policies": [p.name for p in self.authz.policies.policies],
                "reloads": self.authz.reloads,
                "last_error": self.authz.last_error,
                # allowed connections a dry-run policy would have refused
                "would_deny": [
                    {"peer": peer, "rule": rule, "count": n}
                    for (peer, rule), n in sorted(self.would_deny.items())
                ],
            },
            # None: off (the default). On, it says so with the file and its reach
            "keylog": None
            if self.keylog is None
            else {
                "path": str(self.keylog.path),
                "sessions": self.keylog.sessions,
                "warning": "keys logged: anyone with the file reads this traffic",
            },
            "ca_fingerprints_sha256": m.ca_fingerprints,
            "inbound": None
            if not self.config.inbound_listen
            else {
                "listen": f"{self.config.inbound_listen[0]}:{self.ports.get('inbound')}",
                "target": ":".join(map(str, self.config.inbound_target or ())),
                "allowed_ids": list(self.config.allowed_ids) or ["(any from the CA)"],
            },
            "routes": [
                {
                    "listen": r.local if r.unix else f"{r.listen[0]}:{self.ports.get(f'route{i}')}",
                    "remote": f"{r.remote[0]}:{r.remote[1]}",
                    "identity": r.identity,
                }
                for i, r in enumerate(self.config.routes)
            ],
            "suites": [s.name for s in self.config.suites],
            "active_sessions": sum(1 for t in self.tunnels if t.established_at is not None),
            "handshakes_in_progress": self.observer.pending,
            "handshakes_waiting": self.admission.waiting_count,
            "handshakes_shed": self.admission.shed_count,
            "handshake_sources": len(self.admission.held),  # addresses short of a handshake
            "verification_cache": {"hits": cur.trust.hits, "misses": cur.trust.misses},
            "limits": {  # each tunnel holds two sockets: about open_files / 2 tunnels
                "open_files": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                "listen_backlog": self.config.listen_backlog,
            },
        }
        out.update(self.status.as_dict())
        return out

    def _close_sessions(self, _request: web.Request) -> tuple[int, str, bytes]:
        """End every established session with close_notify and forget the tickets (the
        apps reconnect, with a new full handshake, on their next call): `mtlsdemo
        capture` starts its window so, because a session's records can be decrypted only
        from its handshake on, and a full handshake shows the certificates."""
        established = [t for t in self.tunnels if t.established_at is not None]
        for t in established:
            t.graceful_close()
        if self.ticket_cache is not None:  # full handshakes next: certificates on the wire
            self.ticket_cache.clear()
        return json_response(200, {"closed": len(established)})

    def _status(self, _request: web.Request) -> tuple[int, str, bytes]:
        return json_response(200, self.status_dict())

    def _certificates(self, _request: web.Request) -> tuple[int, str, bytes]:
        cur = self.identity.current
        return json_response(
            200,
            {
                "name": self.config.name,
                "instance": self.instance,
                **certificates_view(cur.material, cur.generation, cur.loaded_at),
            },
        )

    def _app_peer(self, request: web.Request) -> tuple[int, str, bytes]:
        """Who is behind the app connection from our local ``?port=``: the verified
        peer's SPIFFE ID (public), or 404 — a connection to the app that did not come
        through this sidecar has no identity."""
        try:
            port = int(request.query.get("port", ""))
        except ValueError:
            return 400, "text/plain", b"port is an integer\n"
        peer = self.app_peers.get(port)
        if peer is None:
            return 404, "text/plain", b"no tunnel of this sidecar uses that port\n"
        return 200, "application/json", json.dumps({"port": port, "peer": peer}).encode()

    def _handshakes(self, request: web.Request) -> tuple[int, str, bytes]:
        q = request.query
        try:
            since, limit = int(q.get("since", "0")), int(q.get("limit", str(KEEP)))
        except ValueError:
            return 400, "text/plain", b"since and limit are integers\n"
        failures = q.get("failures") in ("1", "true")
        key = (self.journal.last_id, since, max(0, limit), failures)
        if self._handshakes_cache is None or self._handshakes_cache[0] != key:
            # each entry's JSON is made once and shared, each answer once per journal
            # state: the admin runs on the data path's loop
            entries = self.journal.entries(since, max(0, limit), failures_only=failures)
            head = json.dumps({"name": self.config.name, "instance": self.instance})[:-1]
            body = f'{head}, "handshakes": [{", ".join(e.encoded for e in entries)}]}}\n'
            self._handshakes_cache = (key, body.encode())
        return 200, "application/json", self._handshakes_cache[1]

    def _handshake_bytes(self, request: web.Request) -> tuple[int, str, bytes]:
        """``?id=N``: the handshake messages of one journal entry as they crossed (hex;
        MTD/1's handshake is in clear, so nothing here is secret): the byte view."""
        try:
            entry = self.journal.get(int(request.query.get("id", "")))
        except ValueError:
            return 400, "text/plain", b"id is an integer (a /handshakes entry's id)\n"
        if entry is None:
            return 404, "text/plain", b"no such handshake in the journal (it keeps the last ones)\n"
        o = entry.outcome
        return json_response(
            200,
            {
                "id": entry.id,
                "role": o.role,
                "messages": [
                    {"direction": st.direction, "name": st.name, "hex": st.raw.hex()}
                    for st in o.ladder
                    if st.raw
                ],
            },
        )

    def _events(self, request: web.Request) -> AsyncIterator[tuple[str, Any]]:
        """``hello`` (who and which process), then the handshakes after ``?since=``
        (of ``?instance=``, when given: this process's ids only) oldest first, then
        each new one as it ends. 503 at the reader cap; a reader that falls a queue
        behind has its stream ended (both counted)."""
        queue = self.journal.subscribe()
        if queue is None:
            raise web.HTTPServiceUnavailable(
                text=f"{MAX_SUBSCRIBERS} live /events readers already: try again later\n"
            )
        return self._event_stream(request, queue)

    async def _event_stream(
        self, request: web.Request, queue: asyncio.Queue[Entry | None]
    ) -> AsyncIterator[tuple[str, Any]]:
        try:
            yield (
                "hello",
                {
                    "name": self.config.name,
                    "instance": self.instance,
                    "identity": self.local_identity,
                },
            )
            try:
                since = int(request.query.get("since", "0"))
            except ValueError:
                since = 0
            if request.query.get("instance", self.instance) != self.instance:
                since = 0  # ids counted by a process since gone: this one's are all new
            backlog = list(reversed(self.journal.entries(since)))
            last = backlog[-1].id if backlog else since
            for old in backlog:
                yield "handshake", Encoded(old.encoded)
            while (new := await queue.get()) is not None:  # None: dropped, too slow
                if new.id > last:
                    yield "handshake", Encoded(new.encoded)
        finally:
            self.journal.unsubscribe(queue)


def raise_fd_limit(need: int = 0) -> tuple[int, int]:
    """Each tunnel holds two sockets: take the soft file-descriptor limit up to the
    hard one (a distribution's default soft 1024 caps a sidecar near 500 tunnels).
    ``need``: raise the hard limit too, if it is lower (only a privileged process
    may; children started afterwards inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if need and hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return need, need
        except (ValueError, OSError) as e:
            log.warning("could not raise the open-files hard limit %d to %d: %s", hard, need, e)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            log.warning("could not raise the open-files limit from %d: %s", soft, e)
    return soft, hard


def run(config: SidecarConfig) -> int:
    soft, _hard = raise_fd_limit()
    # debug, not info: a start-up line nobody acts on (issue 27); /status has `limits`
    log.debug(
        "open-files limit %d (about %d tunnels); listen backlog %d",
        soft,
        soft // 2,
        config.listen_backlog,
    )

    async def main() -> None:
        sidecar = Sidecar(config)
        await sidecar.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down: no new connections, draining")
        await sidecar.shutdown()
        log.info("%s stopped", config.name)

    if config.event_loop == "uvloop":
        import uvloop  # libuv: less latency per relayed hop than asyncio's own loop

        uvloop.run(main())
    else:
        asyncio.run(main())
    return 0
