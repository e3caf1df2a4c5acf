"""The Workload API server: one gRPC server per workload socket, the SVIDs renewed
on a timer and pushed to every open stream as they change.

Attestation is the socket: each workload's socket sits in its own directory (mode
0700 locally; in Kubernetes the directory is mounted into that pod alone), and the
socket a call arrives on is the workload it is answered as. Real attestation asks
the kernel who called (SO_PEERCRED: pid, uid) and the kubelet which pod that pid
runs in, and matches selectors (SPIRE's k8s workload attestor); grpcio does not
hand a Python server its caller's credentials, so the agent does not pretend to.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import random
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlsdemo import telemetry
from mtlsdemo._generated.spiffe import workload_pb2 as pb
from mtlsdemo._generated.spiffe import workload_pb2_grpc as pb_grpc
from mtlsdemo.agent import bundle
from mtlsdemo.agent.config import AgentConfig, AgentConfigError, socket_path
from mtlsdemo.agent.issuer import Clock, SvidIssuer, Workload
from mtlsdemo.agent.rotation import Rotation
from mtlsdemo.agent.svid import Svid, certs_der
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.stores import FileStore
from mtlsdemo.pki.workload_api import HEADER
from mtlsdemo.trust.status import pem_crls
from mtlsdemo.trust.verify import issued_by

log = logging.getLogger(__name__)
CRL_FILE = "ca/crl.pem"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def crls_der(pem: bytes | None) -> tuple[bytes, ...]:
    """The CA's CRL file as the DER list the X509SVIDResponse carries (the verifier's
    own PEM reader: a block that does not parse is left out)."""
    crls, _blocks = pem_crls(pem or b"")
    return tuple(c.public_bytes(serialization.Encoding.DER) for c in crls)


class Agent:
    """Issues, renews and serves the SVIDs of the configured workloads."""

    def __init__(
        self,
        config: AgentConfig,
        clock: Clock = _utcnow,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.clock = clock
        self.jitter = jitter or random.SystemRandom().random
        self.store = FileStore(config.certs_dir)
        self.issuer = SvidIssuer(self.store, config.ttl, config.key_type, clock)
        self.workloads = {w: config.workload(w) for w in config.workloads}
        self.rotations: dict[str, Rotation] = {}
        self.crls: tuple[bytes, ...] = ()
        # federation: each foreign trust domain's bundle as last fetched, and how that went
        self.federated: dict[str, tuple[x509.Certificate, ...]] = {}
        self.federation: dict[str, dict[str, object]] = {
            td: {"source": src, "authorities": 0, "sequence": None, "last_error": None}
            for td, src in config.federate_with
        }
        self._refresh_at = clock()
        self.bundle_sequence = 1  # our own bundle's, bumped when it changes (rollovers)
        self.version = 0  # bumped on every change a stream must push
        self._changed: asyncio.Condition | None = None
        self._servers: list[grpc.aio.Server] = []
        self._task: asyncio.Task[None] | None = None
        self.started_at = clock()

    # --- issuance (no I/O but the CA's files) ---
    def issue_all(self) -> None:
        """The first SVID of every workload; a CA that cannot issue stops the start."""
        for name, w in self.workloads.items():
            svid = self.issuer.issue(w)
            self.rotations[name] = Rotation.first(svid, self.jitter)
            self._exported(w, svid)
            log.info(
                "issued %s serial %x, expires %s",
                w.spiffe_id,
                svid.leaf.serial_number,
                svid.not_after,
            )
        self.crls = self._read_crls()
        self._refresh_federated()  # a peer not up yet is retried at each refresh

    def _refresh_federated(self) -> bool:
        """Fetch every federated domain's bundle; keep the last good one on failure."""
        changed = False
        for td, src in self.config.federate_with:
            facts = self.federation[td]
            try:
                cas, seq = bundle.decode(bundle.fetch(src), src)
            except PkiError as e:
                if facts["last_error"] != str(e):
                    log.warning(
                        "federated bundle of %s not refreshed (%s in use): %s",
                        td,
                        "the last one fetched" if td in self.federated else "none",
                        e,
                    )
                facts["last_error"] = str(e)
                telemetry.FEDERATED_BUNDLE_REFRESHES.labels(td, "failure").inc()
                continue
            telemetry.FEDERATED_BUNDLE_REFRESHES.labels(td, "success").inc()
            facts.update(authorities=len(cas), sequence=seq, last_error=None)
            if self.federated.get(td) != cas:
                log.info("federated bundle of %s: %d authorities (sequence %s)", td, len(cas), seq)
                self.federated[td] = cas
                changed = True
        return changed

    def tick(self) -> bool:
        """Renew what is due, follow the bundle and the CRL; True when anything changed."""
        now = self.clock()
        changed = self._renew_due(now)
        if self._follow_bundle():
            changed = True
            changed |= self._renew_due(self.clock())  # a switched CA: renewed at once
        missing = any(td not in self.federated for td, _src in self.config.federate_with)
        if self.config.federate_with and (now >= self._refresh_at or missing):
            self._refresh_at = now + dt.timedelta(seconds=bundle.REFRESH_HINT)
            changed |= self._refresh_federated()
        crls = self._read_crls()
        if crls != self.crls:
            self.crls, changed = crls, True
        if changed:
            self.version += 1
        return changed

    def _renew_due(self, now: dt.datetime) -> bool:
        changed = False
        for name, r in self.rotations.items():
            w = self.workloads[name]
            if now < r.renew_at:
                continue
            try:
                svid = self.issuer.issue(w)
            except PkiError as e:
                r.failed(str(e), now)
                telemetry.SVID_RENEWALS.labels(w.spiffe_id, "failure").inc()
                log.error(
                    "renewing %s failed, the SVID in hand serves %s more: %s",
                    w.spiffe_id,
                    r.remaining(now),
                    e,
                )
                continue
            r.renewed(svid, self.jitter)
            telemetry.SVID_RENEWALS.labels(w.spiffe_id, "success").inc()
            self._exported(w, svid)
            changed = True
            log.info("renewed %s: serial %x", w.spiffe_id, svid.leaf.serial_number)
        return changed

    def _follow_bundle(self) -> bool:
        """A rollover's new bundle goes to every workload at once, before any renewal;
        once a new CA issues (its switch), every SVID is renewed from it at once, as
        `certs rotate-ca switch` re-issues every leaf."""
        try:
            self.store.forget()
            cas = self.issuer.authorities()
        except PkiError:
            return False  # the next renewal says why, with the workload's name
        trusted = tuple(ca.cert for ca in cas.all)
        now = self.clock()
        for r in self.rotations.values():
            if not issued_by(r.svid.leaf, cas.current.cert) and r.renew_at > now:
                r.renew_at = now  # the renewal loop issues it from the new CA next
        changed = False
        for r in self.rotations.values():
            if r.svid.bundle != trusted:
                r.svid = dataclasses.replace(r.svid, bundle=trusted)
                changed = True
        if changed:
            self.bundle_sequence += 1
        return changed

    def own_bundle(self) -> bytes:
        """Our trust domain's bundle in the SPIFFE format (the bundle endpoint's body)."""
        svid = next(iter(self.rotations.values())).svid
        return bundle.encode(svid.bundle, self.bundle_sequence)

    def _read_crls(self) -> tuple[bytes, ...]:
        try:
            return crls_der(self.store.read(CRL_FILE))
        except PkiError as e:
            log.warning("%s: not served (%s)", self.store.where(CRL_FILE), e)
            return self.crls

    def _exported(self, w: Workload, svid: Svid) -> None:
        telemetry.SVID_EXPIRY.labels(w.spiffe_id).set(svid.not_after.timestamp())
        telemetry.SVID_ISSUED.labels(w.spiffe_id).set(svid.issued_at.timestamp())

    # --- what a stream sends ---
    def x509_response(self, name: str) -> pb.X509SVIDResponse:
        svid = self.rotations[name].svid
        return pb.X509SVIDResponse(
            svids=[
                pb.X509SVID(
                    spiffe_id=svid.spiffe_id,
                    x509_svid=svid.chain_der(),
                    x509_svid_key=svid.key_der(),
                    bundle=svid.bundle_der(),
                )
            ],
            crl=list(self.crls),
            # keyed by the trust domain's SPIFFE ID, as the spec and SPIRE send them
            federated_bundles={
                f"spiffe://{td}": certs_der(cas) for td, cas in self.federated.items()
            },
        )

    def bundles_response(self, name: str) -> pb.X509BundlesResponse:
        svid = self.rotations[name].svid
        return pb.X509BundlesResponse(
            crl=list(self.crls),
            bundles={
                f"spiffe://{self.workloads[name].identity.trust_domain}": certs_der(svid.bundle),
                **{f"spiffe://{td}": certs_der(cas) for td, cas in self.federated.items()},
            },
        )

    def status(self) -> dict[str, object]:
        now = self.clock()
        return {
            "ttl_seconds": self.config.ttl.total_seconds(),
            "trust_domain": self.config.trust_domain,
            "federated": self.federation,
            "socket_dir": str(self.config.socket_dir),
            "workloads": {
                name: {
                    "spiffe_id": self.workloads[name].spiffe_id,
                    "socket": str(socket_path(self.config.socket_dir, name)),
                    "serial": f"{r.svid.leaf.serial_number:x}",
                    "not_after": r.svid.not_after.timestamp(),
                    "remaining_seconds": round(r.remaining(now).total_seconds(), 1),
                    "renew_at": r.renew_at.timestamp(),
                    "renewals": r.renewals,
                    "failures": r.failures,
                    "last_error": r.last_error,
                    "history": [dataclasses.asdict(h) for h in r.history],
                }
                for name, r in self.rotations.items()
            },
        }

    # --- the sockets ---
    async def start(self) -> None:
        self.issue_all()
        self._changed = asyncio.Condition()
        for name in self.workloads:
            path = socket_path(self.config.socket_dir, name)
            _private_dir(path.parent)
            _claim(path)
            server = grpc.aio.server()
            pb_grpc.add_SpiffeWorkloadAPIServicer_to_server(_Servicer(self, name), server)
            server.add_insecure_port(f"unix:{path}")
            await server.start()
            self._servers.append(server)
            log.info("serving %s on unix:%s", self.workloads[name].spiffe_id, path)
        self._task = asyncio.create_task(self._renewals())

    async def _renewals(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick)
            if await asyncio.to_thread(self.tick):
                assert self._changed is not None
                async with self._changed:
                    self._changed.notify_all()

    async def changes(self, seen: int) -> int:
        """Wait until the agent's version passes ``seen``; the new version."""
        assert self._changed is not None
        async with self._changed:
            await self._changed.wait_for(lambda: self.version != seen)
        return self.version

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for s in self._servers:
            await s.stop(grace=0.5)
        for name in self.workloads:
            with contextlib.suppress(FileNotFoundError):
                socket_path(self.config.socket_dir, name).unlink()


def _claim(path: Path) -> None:
    """Remove a socket a killed agent left; refuse one a live agent still serves
    (removing it would cut that agent's workloads off without a word)."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)  # nobody answers: left behind
        return
    finally:
        probe.close()
    raise AgentConfigError(
        f"--socket-dir: {path} is served by another running agent; stop it or give "
        "another --socket-dir"
    )


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


class _Servicer(pb_grpc.SpiffeWorkloadAPIServicer):  # type: ignore[misc]  # grpc ships no types
    """The Workload API as one workload's socket answers it."""

    def __init__(self, agent: Agent, name: str) -> None:
        self.agent = agent
        self.name = name
        self.spiffe_id = agent.workloads[name].spiffe_id

    async def _checked(self, context: grpc.aio.ServicerContext) -> None:
        md = tuple(context.invocation_metadata() or ())
        if HEADER not in [(k, v) for k, v in md]:
            # the Workload API spec: refuse calls without it (a browser or SSRF cannot set it)
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "security header missing from request: send metadata workload.spiffe.io: true",
            )

    async def _stream(
        self, context: grpc.aio.ServicerContext, make: Callable[[], object]
    ) -> AsyncIterator[object]:
        await self._checked(context)
        gauge = telemetry.WORKLOAD_API_STREAMS.labels(self.spiffe_id)
        gauge.inc()
        try:
            seen = self.agent.version
            yield make()
            while True:
                seen = await self.agent.changes(seen)
                yield make()
        finally:
            gauge.dec()

    # grpc.aio serves a stream from an async generator function, so each is one
    async def FetchX509SVID(
        self, request: pb.X509SVIDRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[object]:
        async for m in self._stream(context, lambda: self.agent.x509_response(self.name)):
            yield m

    async def FetchX509Bundles(
        self, request: pb.X509BundlesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[object]:
        async for m in self._stream(context, lambda: self.agent.bundles_response(self.name)):
            yield m

    async def FetchJWTSVID(
        self, request: pb.JWTSVIDRequest, context: grpc.aio.ServicerContext
    ) -> pb.JWTSVIDResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, _NO_JWT)
        raise AssertionError  # abort raises

    async def FetchJWTBundles(
        self, request: pb.JWTBundlesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.JWTBundlesResponse]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, _NO_JWT)
        yield pb.JWTBundlesResponse()  # unreachable: makes this an async generator

    async def ValidateJWTSVID(
        self, request: pb.ValidateJWTSVIDRequest, context: grpc.aio.ServicerContext
    ) -> pb.ValidateJWTSVIDResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, _NO_JWT)
        raise AssertionError


_NO_JWT = "mtlsdemo's agent serves the X.509-SVID profile only (no JWT-SVIDs)"
