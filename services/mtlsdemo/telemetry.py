"""Metric definitions shared by every component (listed in docs/metrics.md).

Names follow Prometheus conventions: base units, ``_total`` for counters
(prometheus-client appends it), ``_seconds`` for durations, few label values.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator
from typing import Protocol

from cryptography import x509
from prometheus_client import (
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from mtlsdemo import __version__
from mtlsdemo.addresses import parse_hostport

# The *_created series double every counter's output and no dashboard here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client

# Latency buckets from 0.1 ms: loopback gRPC calls take a few hundred microseconds.
RPC_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

BUILD_INFO = Info("mtlsdemo_build", "Version and component of this process.")

# --- gRPC, server side (names as in go-grpc-prometheus, so stock dashboards work) ---
GRPC_SERVER_STARTED = Counter(
    "grpc_server_started",
    "RPCs started on the server.",
    ["grpc_service", "grpc_method", "grpc_type"],
)
GRPC_SERVER_HANDLED = Counter(
    "grpc_server_handled",
    "RPCs completed on the server, by status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_SERVER_HANDLING = Histogram(
    "grpc_server_handling_seconds",
    "Time from RPC start to completion on the server.",
    ["grpc_service", "grpc_method"],
    buckets=RPC_BUCKETS,
)

# --- gRPC, client side (the gateway calling the ledger) ---
GRPC_CLIENT_HANDLED = Counter(
    "grpc_client_handled",
    "RPCs completed by the client, by status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_CLIENT_HANDLING = Histogram(
    "grpc_client_handling_seconds",
    "Time from RPC start to response on the client.",
    ["grpc_service", "grpc_method"],
    buckets=RPC_BUCKETS,
)

# --- authorization of callers by SPIFFE ID ---
NATIVE_HANDSHAKE_FAILURES = Counter(
    "mtls_native_handshake_failures",
    "TLS handshakes of native gRPC calls that failed, diagnosed by the caller "
    "(a gRPC server cannot see the handshakes it refuses).",
    ["peer", "reason", "origin"],
)
GRPC_AUTHORIZATIONS = Counter(
    "mtls_grpc_authorizations", "Caller identity checks on gRPC servers.", ["peer", "decision"]
)

# --- certificates ---
CERT_EXPIRY = Gauge(
    "mtls_certificate_expiry_timestamp_seconds",
    "Unix time at which a loaded certificate expires.",
    ["identity", "kind"],
)
CERT_RELOADS = Counter(
    "mtls_certificate_reloads", "Certificate reload attempts after files changed.", ["result"]
)
# --- the Workload API agent (agent/) ---
SVID_EXPIRY = Gauge(
    "mtls_svid_expiry_timestamp_seconds",
    "Unix time at which the X.509-SVID the agent serves a workload expires.",
    ["spiffe_id"],
)
SVID_ISSUED = Gauge(
    "mtls_svid_issued_timestamp_seconds",
    "Unix time at which the X.509-SVID the agent serves a workload was issued.",
    ["spiffe_id"],
)
SVID_RENEWALS = Counter(
    "mtls_svid_renewals",
    "SVID issuances by the agent after the first: success, or failure (the SVID in hand "
    "keeps serving until it expires).",
    ["spiffe_id", "result"],
)
FEDERATED_BUNDLE_REFRESHES = Counter(
    "mtls_federated_bundle_refreshes",
    "Fetches of a federated trust domain's bundle by the agent: success, or failure (the "
    "last bundle fetched stays in use).",
    ["trust_domain", "result"],
)
WORKLOAD_API_STREAMS = Gauge(
    "mtls_workload_api_streams", "Workload API streams open on the agent.", ["spiffe_id"]
)
STATUS_EXPIRY = Gauge(
    "mtls_certificate_status_expiry_timestamp_seconds",
    "Unix time at which the loaded stapled status (OCSP nextUpdate) of an identity expires.",
    ["identity"],
)
# Registered only once a CRL is loaded (``crl_loaded``): a process that checks no CRL
# exports no CRL series, rather than a nextUpdate of 0 that reads as "57 years past"
# and fires MtlsCrlPastNextUpdate on a healthy mesh.
CRL_THIS_UPDATE = Gauge(
    "mtls_crl_this_update_timestamp_seconds", "thisUpdate of the oldest CRL loaded.", registry=None
)
CRL_NEXT_UPDATE = Gauge(
    "mtls_crl_next_update_timestamp_seconds",
    "nextUpdate of the CRL loaded (earliest).",
    registry=None,
)
CRL_REVOKED = Gauge(
    "mtls_crl_revoked_serials", "Serial numbers listed in the CRLs loaded.", registry=None
)
_crl_registered = threading.Lock()
_CRL_GAUGES: list[Gauge] = []


def crl_loaded(this_update: float | None, next_update: float | None, revoked: int) -> None:
    """A CRL was loaded: its gauges join /metrics (from now on) with these values."""
    with _crl_registered:
        if not _CRL_GAUGES:
            for g in (CRL_THIS_UPDATE, CRL_NEXT_UPDATE, CRL_REVOKED):
                REGISTRY.register(g)
                _CRL_GAUGES.append(g)
    CRL_REVOKED.set(revoked)
    if this_update is not None:
        CRL_THIS_UPDATE.set(this_update)
    if next_update is not None:
        CRL_NEXT_UPDATE.set(next_update)


CRL_RELOADS = Counter("mtls_crl_reloads", "CRL reload attempts after its file changed.", ["result"])
AUTHZ_RELOADS = Counter(
    "mtls_authz_policy_reloads", "Authorization policy reloads after its file changed.", ["result"]
)
# decision: allow | deny | would_deny (a dry-run policy) | audit; rule: policy#rule
# from the policy file, or "default" (bounded by the file, never by callers)
AUTHZ_DECISIONS = Counter(
    "mtls_authz_decisions",
    "Authorization decisions, by enforcer (sidecar: per connection; grpc: per call).",
    ["enforcer", "decision", "rule"],
)
STATUS_SOFT_FAILURES = Counter(
    "mtls_status_soft_failures",
    "Peers accepted under --require-status soft although their stapled status failed.",
    ["reason"],
)
_ca_labels: set[str] = set()


class _Loaded(Protocol):
    """What the expiry gauges read of an IdentityMaterial (no import of pki here)."""

    @property
    def identity(self) -> str: ...
    @property
    def leaf(self) -> x509.Certificate: ...
    @property
    def cas(self) -> tuple[x509.Certificate, ...]: ...
    @property
    def status_next_update(self) -> float | None: ...


def export_certificate_expiry(material: _Loaded) -> None:
    """Set the expiry gauges from an IdentityMaterial (leaf by SPIFFE ID, CAs by subject)."""
    CERT_EXPIRY.labels(material.identity, "leaf").set(material.leaf.not_valid_after_utc.timestamp())
    # two CAs share a name during a rollover: the key id tells them apart
    labels = {}
    for ca in material.cas:
        try:
            kid = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            label = f"{ca.subject.rfc4514_string()} (key id {kid.hex()[:8]})"
        except x509.ExtensionNotFound:
            label = ca.subject.rfc4514_string()
        labels[label] = ca.not_valid_after_utc.timestamp()
    for gone in _ca_labels - set(labels):  # a retired CA: no stale series
        CERT_EXPIRY.remove(gone, "ca")
    _ca_labels.clear()
    for label, when in labels.items():
        CERT_EXPIRY.labels(label, "ca").set(when)
        _ca_labels.add(label)
    if material.status_next_update is not None:
        STATUS_EXPIRY.labels(material.identity).set(material.status_next_update)


# --- the custom handshake (sidecar) ---
HANDSHAKE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
HANDSHAKES = Counter(
    "mtls_handshakes",
    "Custom handshakes finished, by outcome. On failure, reason names the "
    "step that failed and origin says who rejected: local (this side), remote (the peer's alert "
    "under the session keys) or remote_unverified (an alert in clear, before keys: only a claim).",
    ["role", "suite", "result", "reason", "origin", "resumed"],
)
HANDSHAKE_DURATION = Histogram(
    "mtls_handshake_duration_seconds",
    "Handshake wall time from first byte to Finished.",
    ["role", "suite", "resumed"],
    buckets=HANDSHAKE_BUCKETS,
)
HANDSHAKE_PHASE = Histogram(
    "mtls_handshake_phase_duration_seconds",
    "Processing time spent in each handshake step on this side.",
    ["role", "phase"],
    buckets=(0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
)
TICKET_REFUSALS = Counter(
    "mtls_session_ticket_refusals",
    "Session tickets not used, so the handshake was a full one: reason names why "
    "(ticket_expired, ticket_trust_changed, ...), by says who refused: local (this "
    "side) or remote (the server, told in its ServerHello).",
    ["role", "reason", "by"],
)
ADMIN_EVENTS_DROPPED = Counter(
    "mtls_admin_event_streams_dropped",
    "Live /events streams of the sidecar admin ended or refused to protect the data "
    "path: slow (a reader that fell a queue behind) or full (at the subscriber cap).",
    ["reason"],
)
TICKETS_ISSUED = Counter("mtls_session_tickets_issued", "Session tickets sent to clients.")
HANDSHAKES_IN_PROGRESS = Gauge(
    "mtls_handshakes_in_progress", "Handshakes started and not yet finished.", ["role"]
)
SESSIONS_ACTIVE = Gauge(
    "mtls_sessions_active", "Established sessions (tunnels) open now.", ["role"]
)
SESSION_DURATION = Histogram(
    "mtls_session_duration_seconds",
    "Lifetime of established sessions.",
    buckets=(0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400),
)
RECORD_BYTES = Counter(
    "mtls_record_bytes",
    "Application bytes through the record layer, before (plaintext) and "
    "after (ciphertext, with headers and tags) protection.",
    ["direction", "kind"],
)
RECORDS = Counter("mtls_records", "Application data records sent or received.", ["direction"])
RECORD_FAILURES = Counter(
    "mtls_record_failures", "Established sessions ended by a record-layer failure.", ["reason"]
)
KEY_UPDATES = Counter("mtls_key_updates", "Traffic key updates, sent or received.")
PEER_AUTHORIZATIONS = Counter(
    "mtls_peer_authorizations", "Peer identity decisions in handshakes.", ["peer", "decision"]
)


# --- ledger business metrics ---
LEDGER_TRANSFERS = Counter(
    "ledger_transfers", "Money movements applied by the ledger.", ["kind", "result"]
)
LEDGER_MOVED = Counter(
    "ledger_moved_cents", "Amount moved by applied money movements, in cents.", ["kind"]
)
LEDGER_ACCOUNTS = Gauge("ledger_accounts", "Accounts in the ledger.")


def start_metrics_server(address: str, component: str) -> int:
    """Serve /metrics on HOST:PORT (port 0 picks one); returns the bound port."""
    BUILD_INFO.info({"version": __version__, "component": component})
    host, port = parse_hostport(address, default_host="127.0.0.1")
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)


def samples(text: str, names: Collection[str] | None = None) -> Iterator[Sample]:
    """The samples of a Prometheus text page (only those named in ``names``, if given):
    the one reader of /metrics pages, for `break`, the console, the bench and tests.
    prometheus-client's own parser: the format has escapes and exemplars."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if names is None or s.name in names:
                yield s


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``; KeyError if none."""
    total, found = 0.0, False
    for s in samples(text, (name,)):
        if all(s.labels.get(k) == v for k, v in labels.items()):
            total += s.value
            found = True
    if not found:
        raise KeyError(f"no sample {name}{labels}")
    return total
