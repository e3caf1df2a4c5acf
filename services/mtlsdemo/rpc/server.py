"""Running a gRPC service: mTLS (or loopback-only plaintext), health, reflection,
metrics, authorization, and a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mtlsdemo import __version__, telemetry
from mtlsdemo.addresses import host_of, is_loopback_host
from mtlsdemo.pki.crlfile import CRL_STATE_FILE, CrlFile
from mtlsdemo.pki.feeds import identity_feed
from mtlsdemo.policyfile import PolicyFile
from mtlsdemo.rpc.credentials import ReloadingServerCredentials
from mtlsdemo.rpc.interceptors import ServerInterceptor
from mtlsdemo.rpc.methods import all_methods
from mtlsdemo.rpc.sidecar_peer import SidecarPeers
from mtlsdemo.trust import IdentityPolicy

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A flag value that cannot work; the CLI prints it and exits 2."""


def is_loopback(address: str) -> bool:
    """HOST:PORT on a loopback address."""
    return is_loopback_host(host_of(address))


@dataclass(frozen=True)
class CallerChecks:
    """What a service checks of each caller beyond its certificate and --allow-id:
    the CRL (and whether one must be in force, where the CRLs in force are kept) and
    the authorization policy (behind a sidecar: the sidecar's admin says who calls)."""

    crl: Path | None = None
    crl_required: bool = False
    crl_state: Path | None = None
    authz_policy: Path | None = None
    caller_from_sidecar: str | None = None


@dataclass
class ServiceSpec:
    component: str  # "ledger" or "gateway"
    listen: str  # HOST:PORT
    tls_dir: Path | None  # None: plaintext, loopback only
    policy: IdentityPolicy | None  # None: any authenticated caller
    metrics_listen: str | None
    register: Callable[[grpc.Server], None]
    service_names: Sequence[str]
    max_workers: int = 32
    checks: CallerChecks = field(default_factory=CallerChecks)
    workload_api: str | None = None  # with TLS: the identity from this agent socket instead


def build_server(spec: ServiceSpec) -> tuple[grpc.Server, int, health.HealthServicer]:
    if spec.tls_dir is None and not is_loopback(spec.listen):
        raise ConfigError(
            f"--listen {spec.listen}: plaintext is only allowed on 127.0.0.1 "
            "(the sidecar in front of it is what the network sees)"
        )
    if spec.workload_api and spec.checks.crl is not None and spec.checks.crl_state is None:
        raise ConfigError(
            "--crl with --spiffe-endpoint-socket needs --crl-state FILE: there is no identity "
            "directory to keep the CRLs in force in"
        )
    creds = (
        ReloadingServerCredentials(identity_feed(spec.tls_dir, spec.workload_api))
        if spec.tls_dir is not None
        else None
    )
    c = spec.checks
    crl = None
    if c.crl is not None and creds is not None:
        source = creds.source
        crl = CrlFile(
            c.crl,
            lambda: source.current.cas,
            required=c.crl_required,
            state=c.crl_state or source.directory / CRL_STATE_FILE,
        )
    authz = (
        PolicyFile(c.authz_policy, "grpc", all_methods())
        if c.authz_policy is not None
        and (spec.tls_dir is not None or c.caller_from_sidecar is not None)
        else None
    )
    peers = (
        SidecarPeers(c.caller_from_sidecar) if c.caller_from_sidecar and not spec.tls_dir else None
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=spec.max_workers, thread_name_prefix=spec.component),
        interceptors=[
            ServerInterceptor(
                spec.policy if spec.tls_dir else None, crl, authz, spec.component, peers
            )
        ],
        options=[
            # off: gRPC would otherwise let a second server bind the same port and
            # split the traffic (two ledgers, two databases) instead of refusing
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ],
    )
    spec.register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *spec.service_names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*spec.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        if creds is None:
            port = server.add_insecure_port(spec.listen)
        else:
            log.info(
                "identity %s from %s",
                creds.material.identity,
                f"the Workload API at {spec.workload_api}" if spec.workload_api else spec.tls_dir,
            )
            port = server.add_secure_port(spec.listen, creds.credentials())
    except RuntimeError:
        port = 0  # grpcio raises or returns 0 depending on the version: one message
    if port == 0:
        raise ConfigError(
            f"--listen {spec.listen}: cannot bind: the address is in use (another "
            f"{spec.component}?) or not local; pick another port"
        )
    return server, port, health_servicer


def run_forever(spec: ServiceSpec, grace_seconds: float = 5.0) -> None:
    if spec.metrics_listen:
        mport = telemetry.start_metrics_server(spec.metrics_listen, spec.component)
        log.info("metrics on http://%s:%d/metrics", host_of(spec.metrics_listen), mport)
    else:
        telemetry.BUILD_INFO.info({"version": __version__, "component": spec.component})
    server, port, health_servicer = build_server(spec)
    server.start()
    mode = "mTLS" if spec.tls_dir else "plaintext (loopback only)"
    allowed = ", ".join(spec.policy.texts) if spec.policy else "any authenticated peer"
    log.info(
        "%s serving on %s port %d, %s%s",
        spec.component,
        host_of(spec.listen),
        port,
        mode,
        f"; callers allowed: {allowed}" if spec.tls_dir else "",  # plaintext: no callers to name
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info(
            "received %s, draining for up to %.0fs", signal.Signals(signum).name, grace_seconds
        )
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    health_servicer.enter_graceful_shutdown()  # probes see NOT_SERVING while we drain
    server.stop(grace_seconds).wait()
    log.info("%s stopped", spec.component)
