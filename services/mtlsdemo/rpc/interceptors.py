"""Server and client interceptors: caller authorization and Prometheus metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from cryptography import x509

from mtlsdemo import telemetry
from mtlsdemo.pki.crlfile import CrlFile
from mtlsdemo.policyfile import PolicyFile
from mtlsdemo.rpc.identity import peer_certificate, svid_of
from mtlsdemo.rpc.sidecar_peer import SidecarPeers
from mtlsdemo.trust import IdentityPolicy, SpiffeId
from mtlsdemo.trust.authz import Request
from mtlsdemo.trust.failures import VerificationFailed

log = logging.getLogger(__name__)

# Infrastructure services any certificate from our CA may call (probes, grpcurl):
# the TLS handshake still demands a valid client certificate; only the
# identity allow-list is waived for them.
EXEMPT_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


def split_method(full: str) -> tuple[str, str]:
    service, _, method = full.lstrip("/").partition("/")
    return service, method


def _code_of(context: grpc.ServicerContext) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK


class ServerInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types
    """Counts every RPC and, when ``policy`` is set, rejects callers whose SPIFFE
    ID it does not allow with PERMISSION_DENIED (the same identity policy as the
    sidecars': exact IDs, or ``*`` for one whole path segment)."""

    def __init__(
        self,
        policy: IdentityPolicy | None,
        crl: CrlFile | None = None,
        authz: PolicyFile | None = None,
        workload: str = "",
        sidecar_peers: SidecarPeers | None = None,
    ) -> None:
        self.policy = policy
        self.crl = crl
        self.authz = authz  # per call: the caller, this workload, the method
        self.workload = workload
        self.sidecar_peers = sidecar_peers  # plaintext behind a sidecar: it knows the caller

    def _check_revocation(
        self,
        service: str,
        context: grpc.ServicerContext,
        cert: x509.Certificate | None,
        peer: SpiffeId | None,
    ) -> None:
        """The caller's certificate against the current CRL, for every service: a
        revoked key calls nothing, not even health."""
        if self.crl is None or cert is None:
            return
        shown = str(peer or "(no SPIFFE ID)")
        try:
            gone = self.crl.lookup(cert)
        except VerificationFailed as e:  # stale past the grace, or required and absent
            telemetry.GRPC_AUTHORIZATIONS.labels(shown, e.failure.value).inc()
            log.warning("denied %s: caller %s: %s: %s", service, shown, e.failure.value, e.detail)
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"caller {shown}: {e.failure.value}: {e.detail}; rejected by the {service} server",
            )
            return
        if gone is None:
            return
        telemetry.GRPC_AUTHORIZATIONS.labels(shown, "revoked").inc()
        log.warning("denied %s: caller %s: %s", service, shown, gone.describe())
        context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"caller {shown}: {gone.describe()} (CRL {self.crl.path}); rejected by the "
            f"{service} server",
        )

    def _authorize(self, method: str, context: grpc.ServicerContext) -> None:
        service, _ = split_method(method)
        exempt = service in EXEMPT_SERVICES
        checks_policy = self.policy is not None and not exempt
        checks_authz = self.authz is not None and not exempt
        if self.crl is None and not checks_policy and not checks_authz:
            return
        cert = peer_certificate(context)  # parsed once per call, for every check
        peer = svid_of(cert)
        self._check_revocation(service, context, cert, peer)
        if checks_authz:
            assert self.authz is not None
            if peer is not None:
                principal = str(peer)
            elif self.sidecar_peers is not None:
                principal = self.sidecar_peers.principal(context)
            else:
                principal = ""
            d = self.authz.decide(Request(principal, self.workload, method))
            if not d.allowed:
                context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{d.reason}; rejected by the {service} server",
                )
        if not checks_policy:
            return
        assert self.policy is not None
        if peer is not None and self.policy.allows(peer):
            telemetry.GRPC_AUTHORIZATIONS.labels(str(peer), "allow").inc()
            return
        shown = str(peer) if peer is not None else "(no SPIFFE ID)"
        # The peer label is bounded by what our own CA issued, so cardinality stays low.
        telemetry.GRPC_AUTHORIZATIONS.labels(shown, "deny").inc()
        log.warning("denied %s: caller %s is not in the allow-list", service, shown)
        context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"caller identity {shown} is not allowed to call {service} "
            f"(allowed: {', '.join(self.policy.texts)})",
        )

    def intercept_service(
        self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        service, method = split_method(details.method)
        kind = (
            ("server_stream" if handler.response_streaming else "unary")
            if not handler.request_streaming
            else ("bidi_stream" if handler.response_streaming else "client_stream")
        )
        started = telemetry.GRPC_SERVER_STARTED.labels(service, method, kind)

        def handled(code: grpc.StatusCode) -> None:
            telemetry.GRPC_SERVER_HANDLED.labels(service, method, code.name).inc()

        seconds = telemetry.GRPC_SERVER_HANDLING.labels(service, method)

        def unary(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def run(request: Any, context: grpc.ServicerContext) -> Any:
                started.inc()
                t0 = time.perf_counter()
                try:
                    self._authorize(details.method, context)
                    response = behavior(request, context)
                except Exception:
                    code = _code_of(context)
                    handled(code if code != grpc.StatusCode.OK else grpc.StatusCode.UNKNOWN)
                    seconds.observe(time.perf_counter() - t0)
                    raise
                handled(_code_of(context))
                seconds.observe(time.perf_counter() - t0)
                return response

            return run

        def streaming(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                started.inc()
                t0 = time.perf_counter()
                code = grpc.StatusCode.OK
                try:
                    self._authorize(details.method, context)
                    yield from behavior(request, context)
                    code = _code_of(context)
                except GeneratorExit:
                    code = grpc.StatusCode.CANCELLED
                    raise
                except Exception:
                    code = _code_of(context)
                    code = grpc.StatusCode.UNKNOWN if code == grpc.StatusCode.OK else code
                    raise
                finally:
                    handled(code)
                    seconds.observe(time.perf_counter() - t0)

            return run

        common = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **common)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), **common)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **common)
        return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), **common)


class ClientMetricsInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]  # grpc ships no types
    """Client-side RPC counts and latency (for unary calls; streams count at the end)."""

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        service, method = split_method(details.method)
        t0 = time.perf_counter()
        outcome = continuation(details, request)
        code = outcome.code() or grpc.StatusCode.OK
        telemetry.GRPC_CLIENT_HANDLED.labels(service, method, code.name).inc()
        telemetry.GRPC_CLIENT_HANDLING.labels(service, method).observe(time.perf_counter() - t0)
        return outcome

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        service, method = split_method(details.method)
        call = continuation(details, request)

        def done(c: grpc.Call) -> None:
            code = c.code() or grpc.StatusCode.OK
            telemetry.GRPC_CLIENT_HANDLED.labels(service, method, code.name).inc()

        call.add_done_callback(done)
        return call
