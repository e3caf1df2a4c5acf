"""How a caller reaches the gateway: native gRPC TLS, or MTD/1 through a sidecar
inside the caller's own process (``caller_channel``, the one way; ``why_unavailable``
says why a call could not get through, either way).

grpcio's TLS is BoringSSL's, which has no ML-DSA: a mesh whose identities are
ML-DSA (or one migrating to them) fronts the gateway with its sidecar too
(``mtlsdemo run --gateway-transport mtd``), and its callers — ``mtlsdemo
client``, ``loadgen``, ``run``'s own checks, ``break`` — bring their sidecar with
them: the sidecar's outbound route, run inside this process on a Unix socket in
a private (0700) directory (the same ``Sidecar`` as the mesh's, never a second
implementation of the protocol), with the gRPC channel speaking plaintext to it.
Not a loopback port: any local user could connect to one and call as this
identity without reading its key.

What it gains over native TLS besides ML-DSA: a refused handshake is known
exactly, from the in-process sidecar's journal (the reason and who raised it),
where gRPC's TLS only says UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
import socket
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

import grpc

from mtlsdemo.handshake import Suite
from mtlsdemo.pki.keys import key_type_of
from mtlsdemo.pki.material import IdentityMaterial, IdentitySource
from mtlsdemo.rpc.credentials import secure_channel
from mtlsdemo.rpc.diagnose import (
    BECAUSE,
    Diagnosis,
    diagnose,
    is_transport_failure,
    what_to_do,
)
from mtlsdemo.sidecar.config import Route, SidecarConfig
from mtlsdemo.sidecar.outcome import HandshakeOutcome
from mtlsdemo.sidecar.server import Sidecar
from mtlsdemo.trust.spiffe import SpiffeId, svid_identity

START_TIMEOUT = 10.0


def peer_id(material: IdentityMaterial, service: str) -> str:
    """The SPIFFE ID ``service`` has in our own trust domain and namespace: the
    sidecar's peer check, where native TLS checks a DNS name."""
    own = svid_identity(material.leaf)
    if len(own.path) == 4 and own.path[0] == "ns" and own.path[2] == "sa":
        return str(SpiffeId(own.trust_domain, ("ns", own.path[1], "sa", service)))
    return str(SpiffeId(own.trust_domain, (*own.path[:-1], service)))


class InProcessSidecar:
    """One outbound route of a Sidecar, on an asyncio loop in a daemon thread."""

    def __init__(
        self,
        identity_dir: Path,
        remote: tuple[str, int],
        server_id: str,
        suites: tuple[Suite, ...] | None = None,
        name: str = "client-sidecar",
        crl: Path | None = None,
    ) -> None:
        # mkdtemp makes the directory 0700: only this user reaches the socket inside
        self.directory = Path(tempfile.mkdtemp(prefix="mtlsdemo-caller-"))
        self.socket = self.directory / "route.sock"
        cfg = SidecarConfig(
            identity_dir=identity_dir,
            routes=[Route(("127.0.0.1", 0), remote, server_id, unix=self.socket)],
            admin_listen=None,
            name=name,
            drain_timeout=1.0,
            max_pending_handshakes=64,
            crl=crl,
        )
        if suites:
            cfg.suites = suites
        # the caller says what failed, once, in its own words (MtdChannel.diagnosis)
        logging.getLogger("mtlsdemo.sidecar").setLevel(logging.CRITICAL)
        # and its CRL's routine lines (loaded, kept): a refused CRL file still says so
        logging.getLogger("mtlsdemo.pki.crlfile").setLevel(logging.ERROR)
        try:
            self.sidecar = Sidecar(cfg)  # reads and checks the identity: PkiError on a bad one
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self.remote, self.identity_dir = remote, identity_dir
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name=name)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.sidecar.start(), self._loop).result(START_TIMEOUT)
        except BaseException:
            self._stop_loop()
            raise
        self.target = f"unix:{self.socket}"

    def last_failure(self) -> HandshakeOutcome | None:
        """The newest failed handshake of this route, if any (read on the sidecar's
        own loop: the journal is not shared across threads)."""

        async def newest() -> HandshakeOutcome | None:
            failed = self.sidecar.journal.entries(limit=1, failures_only=True)
            return failed[0].outcome if failed else None

        return asyncio.run_coroutine_threadsafe(newest(), self._loop).result(5)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        fut = asyncio.run_coroutine_threadsafe(self.sidecar.shutdown(), self._loop)
        try:
            fut.result(self.sidecar.config.drain_timeout + 5)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def explained(o: HandshakeOutcome, identity_dir: Path | None = None) -> Diagnosis:
    """A failed handshake of the in-process sidecar, in the client's words."""
    assert o.error is not None
    reason, detail = o.error.reason.value, o.error.detail
    if reason == "unreachable":
        return Diagnosis("unreachable", "local", f"{o.peer_address}: {detail}")
    if o.error.origin == "local":
        return Diagnosis(reason, "local", detail)
    how = "its MTD/1 alert" + (
        ", sent before it proved who it is" if o.error.origin == "remote_unverified" else ""
    )
    todo = what_to_do(reason, identity_dir) if reason in BECAUSE else ""
    return Diagnosis(reason, "remote", detail, todo, how)


# how a ClientHello sent to a port that is not MTD/1 ends
NOT_MTD = ("truncated", "decode_error", "unexpected_message", "unsupported_version")


def answers_tls(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether host:port completes a TLS handshake (ours, without a certificate)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # only: does it speak TLS at all
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


class MtdChannel(grpc.Channel):  # type: ignore[misc]  # grpcio ships no types
    """A plaintext gRPC channel into an in-process sidecar; closing it stops the sidecar."""

    def __init__(self, tunnel: InProcessSidecar, options: list[tuple[str, Any]]) -> None:
        self.tunnel = tunnel
        self._channel = grpc.insecure_channel(tunnel.target, options=options)

    def diagnosis(self) -> Diagnosis | None:
        """Why the newest handshake failed (None: none did)."""
        failed = self.tunnel.last_failure()
        if failed is None:
            return None
        if (
            failed.failed_step == "hello"
            and failed.outcome in NOT_MTD
            and answers_tls(*self.tunnel.remote)
        ):
            host, port = self.tunnel.remote
            return Diagnosis(
                "unreachable",
                "local",
                f"{host}:{port} answers in TLS, not MTD/1: the gateway serves native gRPC mTLS "
                "there; call it with --transport tls (or unset MTLSDEMO_TRANSPORT)",
            )
        return explained(failed, self.tunnel.identity_dir)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self._channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        self._channel.unsubscribe(callback)

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_unary(*args, **kwargs)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_stream(*args, **kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_unary(*args, **kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_stream(*args, **kwargs)

    def close(self) -> None:
        self._channel.close()
        self.tunnel.close()

    def __enter__(self) -> MtdChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def published_crl(identity_dir: Path) -> Path | None:
    """The CA's CRL where ``certs bootstrap`` publishes it beside the identities
    (certs/ca/crl.pem): the in-process caller checks the gateway against it as the
    mesh's sidecars do (an impostor with a revoked key and its last good staple was
    accepted without it)."""
    crl = identity_dir.parent / "ca" / "crl.pem"
    return crl if crl.exists() else None


def mtd_channel(
    target: str,
    identity_dir: Path,
    server_name: str,
    options: list[tuple[str, Any]] | None = None,
    suites: tuple[Suite, ...] | None = None,
    material: IdentityMaterial | None = None,
) -> MtdChannel:
    """A channel to ``target`` (an MTD/1 sidecar's inbound port) that presents the
    identity in ``identity_dir`` (followed as it is renewed) and requires the peer
    to be ``server_name``'s workload in our trust domain and namespace."""
    from mtlsdemo.addresses import parse_hostport

    material = material or IdentitySource(identity_dir).current  # read once by caller_channel
    remote = parse_hostport(target, default_host="127.0.0.1")
    tunnel = InProcessSidecar(
        identity_dir,
        remote,
        peer_id(material, server_name),
        suites,
        crl=published_crl(identity_dir),
    )
    return MtdChannel(tunnel, options or [])


def resolve_transport(transport: str, material: IdentityMaterial) -> str:
    """``auto``: MTD/1 for an ML-DSA identity (native TLS cannot present it), else TLS."""
    if transport != "auto":
        return transport
    return "mtd" if key_type_of(material.leaf.public_key()).startswith("ml-dsa") else "tls"


def caller_channel(
    target: str,
    identity_dir: Path,
    server_name: str,
    transport: str = "auto",
    options: list[tuple[str, Any]] | None = None,
    material: IdentityMaterial | None = None,
) -> grpc.Channel:
    """The one way a caller reaches the gateway: native gRPC TLS (``tls``) or MTD/1
    through a sidecar inside this process (``mtd``: grpcio's TLS has no ML-DSA);
    ``auto`` is ``mtd`` for an ML-DSA identity, else ``tls``. ``material``: the
    identity already read (TLS presents that snapshot; MTD/1 follows the files)."""
    m = material or IdentitySource(identity_dir).current
    if resolve_transport(transport, m) == "mtd":
        return mtd_channel(target, identity_dir, server_name, options, material=m)
    return secure_channel(target, m, server_name, options)


def why_unavailable(
    e: grpc.RpcError,
    channel: grpc.Channel,
    target: tuple[str, int],
    material: IdentityMaterial,
    server_name: str,
    identity_dir: Path | None = None,
) -> Diagnosis | None:
    """Why a call came back UNAVAILABLE, if it was the handshake: over MTD/1 the
    in-process sidecar's own record of it; over TLS the handshake done again by
    diagnose(). None: not the handshake (or it succeeds now)."""
    if e.code() != grpc.StatusCode.UNAVAILABLE:
        return None
    if isinstance(channel, MtdChannel):
        return channel.diagnosis()
    if not is_transport_failure(e.details()):
        return None
    return diagnose(*target, material, server_name, dt.datetime.now(dt.UTC), identity_dir)
