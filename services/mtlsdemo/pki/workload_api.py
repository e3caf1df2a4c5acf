"""The workload's side of the SPIFFE Workload API: ``WorkloadApiSource`` holds a
stream to the agent's socket open and hands each SVID it pushes to the one identity
loader (``IdentityMaterial.from_bytes``), with ``IdentitySource``'s interface:
``current`` is always a checked identity, ``check()`` takes the newest one pushed
(hot swap, no restart, never a torn identity: one message carries the chain, its key
and the bundle together). The agent that serves it is ``mtlsdemo.agent``."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlsdemo import telemetry
from mtlsdemo._generated.spiffe import workload_pb2 as pb
from mtlsdemo._generated.spiffe import workload_pb2_grpc as pb_grpc
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.files import cert_pem
from mtlsdemo.pki.keys import private_key_pem
from mtlsdemo.pki.material import IdentityMaterial

log = logging.getLogger(__name__)
HEADER = ("workload.spiffe.io", "true")  # the spec: every Workload API call carries it
FIRST_WAIT = 10.0  # seconds for the first SVID before the workload gives up starting
RETRY = 0.5  # seconds between reconnects to an agent that went away


def split_der(data: bytes, what: str) -> list[bytes]:
    """Concatenated DER SEQUENCEs (the Workload API's chains and bundles) one by one:
    each is tag 0x30, a definite length, then that many bytes."""
    out: list[bytes] = []
    i = 0
    while i < len(data):
        if data[i] != 0x30 or i + 2 > len(data):
            raise PkiError(f"{what}: not concatenated DER certificates (byte {i})")
        first = data[i + 1]
        if first < 0x80:
            length, head = first, 2
        else:
            n = first & 0x7F
            if n == 0 or n > 4 or i + 2 + n > len(data):
                raise PkiError(f"{what}: a DER length that cannot be read (byte {i})")
            length, head = int.from_bytes(data[i + 2 : i + 2 + n], "big"), 2 + n
        end = i + head + length
        if end > len(data):
            raise PkiError(f"{what}: a certificate cut short ({len(data) - i} of {end - i} bytes)")
        out.append(data[i:end])
        i = end
    return out


def der_certs(data: bytes, what: str) -> list[x509.Certificate]:
    try:
        certs = [x509.load_der_x509_certificate(d) for d in split_der(data, what)]
    except ValueError as e:
        raise PkiError(f"{what}: not a certificate ({e})") from None
    if not certs:
        raise PkiError(f"{what}: empty")
    return certs


def pem_files(chain: bytes, key: bytes, bundle: bytes, where: str) -> tuple[bytes, bytes, bytes]:
    """The three identity files' contents (tls.crt, tls.key, ca.crt) from an SVID's
    DER fields, for the one identity loader."""
    certs = der_certs(chain, f"{where}: x509_svid")
    cas = der_certs(bundle, f"{where}: bundle")
    try:
        priv = serialization.load_der_private_key(key, None)
    except (ValueError, TypeError) as e:
        raise PkiError(f"{where}: x509_svid_key is not an unencrypted PKCS#8 key ({e})") from None
    return (
        b"".join(cert_pem(c) for c in certs),
        private_key_pem(priv),  # type: ignore[arg-type]
        b"".join(cert_pem(c) for c in cas),
    )


def trust_domain_name(key: str) -> str:
    """A federated bundle's key: the trust domain's SPIFFE ID (``spiffe://b.example``,
    as the spec and SPIRE send it) or its bare name; the name either way."""
    return key.removeprefix("spiffe://").split("/", 1)[0].lower()


def socket_of(address: str) -> Path:
    """``unix:///run/agent.sock``, ``unix:/run/agent.sock`` or a bare path."""
    for prefix in ("unix://", "unix:"):
        if address.startswith(prefix):
            address = address[len(prefix) :]
            break
    if not address.startswith("/"):
        raise PkiError(
            f"--spiffe-endpoint-socket: {address!r} is not a Unix socket path; give "
            "unix:///path/to/agent.sock (the Workload API is served on a Unix socket only)"
        )
    return Path(address)


class WorkloadApiSource:
    """An identity pushed by a Workload API agent, read like an identity directory."""

    def __init__(
        self,
        address: str,
        clock: Callable[[], dt.datetime] | None = None,
        first_wait: float = FIRST_WAIT,
    ) -> None:
        self.socket = socket_of(address)
        self.directory = self.socket  # what error messages name as the identity's place
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.generation = 0
        self.reloads = 0
        self.failures = 0
        self.last_error: str | None = None
        self.loaded_at = self.clock()
        self.crls: tuple[bytes, ...] = ()  # the CRLs the agent pushed with the SVID
        self._lock = threading.Lock()
        self._pending: IdentityMaterial | None = None
        self._first = threading.Event()
        self._closed = threading.Event()
        self._channel: grpc.Channel | None = None
        self._thread = threading.Thread(target=self._follow, name="workload-api", daemon=True)
        self._thread.start()
        if not self._first.wait(first_wait):
            self.close()
            why = f" ({self.last_error})" if self.last_error else ""
            raise PkiError(
                f"--spiffe-endpoint-socket: no SVID from unix:{self.socket} within {first_wait:g}s{why}; "
                "is `mtlsdemo agent` running and serving this workload's socket?"
            )
        with self._lock:
            assert self._pending is not None
            self.current: IdentityMaterial = self._pending
            self._pending = None
        telemetry.export_certificate_expiry(self.current)

    def _follow(self) -> None:
        """Stream FetchX509SVID; on any break, reconnect after RETRY (the agent restarting)."""
        while not self._closed.is_set():
            channel = grpc.insecure_channel(f"unix:{self.socket}")
            self._channel = channel
            try:
                stub = pb_grpc.SpiffeWorkloadAPIStub(channel)
                for resp in stub.FetchX509SVID(pb.X509SVIDRequest(), metadata=[HEADER]):
                    self._take(resp)
            except grpc.RpcError as e:
                if self._closed.is_set():
                    return
                self._error(f"Workload API stream ended: {e.code().name}: {e.details()}")
            finally:
                channel.close()
            self._closed.wait(RETRY)

    def _take(self, resp: pb.X509SVIDResponse) -> None:
        if not resp.svids:
            self._error("the agent sent no SVID for this workload")
            return
        s = resp.svids[0]  # the first is the default (the spec's rule without a hint)
        try:
            where = f"unix:{self.socket}"
            crt, key, ca = pem_files(s.x509_svid, s.x509_svid_key, s.bundle, where)
            federated = tuple(
                (
                    trust_domain_name(key),
                    tuple(der_certs(der, f"{where}: federated bundle of {key}")),
                )
                for key, der in sorted(resp.federated_bundles.items())
            )
            m = IdentityMaterial.from_bytes(crt, key, ca, self.socket, self.clock(), b"", federated)
            if m.problems:
                raise PkiError(f"unix:{self.socket}: {m.problems[0]}")
        except PkiError as e:
            self.failures += 1
            telemetry.CERT_RELOADS.labels("failure").inc()
            self._error(f"SVID refused, keeping the one in hand: {e}")
            return
        with self._lock:
            self._pending = m
            self.crls = tuple(resp.crl)
            self.last_error = None
        self._first.set()

    def _error(self, text: str) -> None:
        if text != self.last_error:
            log.error("%s", text)
        self.last_error = text

    def check(self) -> IdentityMaterial | None:
        """Take the newest SVID pushed since the last call; the new material, else None."""
        with self._lock:
            fresh, self._pending = self._pending, None
        if fresh is None:
            return None
        old = self.current
        self.current = fresh
        self.generation += 1
        self.reloads += 1
        self.loaded_at = self.clock()
        telemetry.CERT_RELOADS.labels("success").inc()
        telemetry.export_certificate_expiry(fresh)
        log.info(
            "SVID rotated: %s serial %x -> %x, expires %s",
            fresh.identity,
            old.leaf.serial_number,
            fresh.leaf.serial_number,
            fresh.leaf.not_valid_after_utc,
        )
        return fresh

    def close(self) -> None:
        self._closed.set()
        if self._channel is not None:
            self._channel.close()

    def wait_generation(self, generation: int, timeout: float) -> bool:
        """Tests and demos: poll ``check()`` until ``generation`` is reached."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            if self.generation >= generation:
                return True
            self._closed.wait(0.05)
        return False
