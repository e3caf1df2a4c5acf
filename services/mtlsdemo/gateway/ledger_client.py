"""The gateway's channel to the ledger: mTLS by default, or plaintext to a local sidecar.

With mTLS the channel follows the gateway's identity files: when they change
(renewal, the Kubernetes Secret symlink swap), a new channel presenting the new
certificate replaces the old one for new calls; calls in flight on the old
channel get a grace period before it is closed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from pathlib import Path

import grpc

from mtlsdemo import telemetry
from mtlsdemo._generated.ledger.v1 import ledger_pb2_grpc as pb_grpc
from mtlsdemo.addresses import parse_hostport
from mtlsdemo.pki.material import IdentityMaterial, IdentitySource
from mtlsdemo.rpc.credentials import secure_channel
from mtlsdemo.rpc.diagnose import diagnose, is_transport_failure
from mtlsdemo.rpc.interceptors import ClientMetricsInterceptor
from mtlsdemo.rpc.retry import FAST_RECONNECT
from mtlsdemo.rpc.server import ConfigError, is_loopback

# Every ledger write carries an idempotency key, so retrying UNAVAILABLE (the
# ledger restarting, a connection reset) can never move money twice.
SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "mtlsdemo.ledger.v1.LedgerService"}],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)


def ledger_channel(
    address: str, identity: IdentityMaterial | None, server_name: str
) -> grpc.Channel:
    options: list[tuple[str, object]] = [
        ("grpc.service_config", SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        *FAST_RECONNECT,  # the ledger (or our sidecar) back: calls flow within a second
    ]
    if identity is None:
        if not is_loopback(address):
            raise ConfigError(
                f"--ledger-addr {address}: plaintext is only allowed to a "
                "loopback address (a local sidecar)"
            )
        channel = grpc.insecure_channel(address, options=options)
    else:
        channel = secure_channel(address, identity, server_name, options)
    return grpc.intercept_channel(channel, ClientMetricsInterceptor())


log = logging.getLogger(__name__)
OLD_CHANNEL_GRACE_SECONDS = 30.0
DIAGNOSE_EVERY = 5.0  # seconds between two diagnoses while calls keep failing


class LedgerConnection:
    def __init__(
        self, address: str, tls_dir: Path | None, server_name: str, check_interval: float = 2.0
    ) -> None:
        self.address, self.server_name = address, server_name
        self.source = IdentitySource(tls_dir) if tls_dir is not None else None
        self._channel = ledger_channel(
            address, self.source.current if self.source else None, server_name
        )
        self.stub = pb_grpc.LedgerServiceStub(self._channel)
        self._stop = threading.Event()
        self._diag_lock = threading.Lock()
        self._diagnosis: tuple[float, str | None] | None = None
        if self.source is not None:
            threading.Thread(
                target=self._watch,
                args=(check_interval,),
                daemon=True,
                name="ledger-channel-reload",
            ).start()

    def _watch(self, interval: float) -> None:
        assert self.source is not None
        while not self._stop.wait(interval):
            material = self.source.check()  # broken files are refused (and counted) there
            if material is None:
                continue
            channel = ledger_channel(self.address, material, self.server_name)
            old, self._channel = self._channel, channel
            self.stub = pb_grpc.LedgerServiceStub(channel)  # one assignment: atomic for callers
            timer = threading.Timer(OLD_CHANNEL_GRACE_SECONDS, old.close)
            timer.daemon = True
            timer.start()
            log.info(
                "ledger channel now presents %s serial %x",
                material.identity,
                material.leaf.serial_number,
            )

    def explain(self, e: grpc.RpcError) -> str | None:
        """For a call that failed in the TLS handshake with the ledger: who refused
        whom and why (redone with Python's ssl, at most every DIAGNOSE_EVERY
        seconds), counted in mtls_native_handshake_failures_total."""
        if (
            self.source is None
            or e.code() != grpc.StatusCode.UNAVAILABLE
            or not is_transport_failure(e.details())
        ):
            return None
        now = time.monotonic()
        with self._diag_lock:
            if self._diagnosis is not None and now - self._diagnosis[0] < DIAGNOSE_EVERY:
                return self._diagnosis[1]
            host, port = parse_hostport(self.address, default_host="127.0.0.1")
            found = diagnose(
                host,
                port,
                self.source.current,
                self.server_name,
                dt.datetime.now(dt.UTC),
                identity_dir=self.source.directory,
            )
            text = None
            if found is not None:
                telemetry.NATIVE_HANDSHAKE_FAILURES.labels(
                    "ledger", found.reason, found.origin
                ).inc()
                text = (
                    found.sentence("ledger")
                    .replace("your certificate", "the gateway's certificate")
                    .replace("you refused", "the gateway refused")
                )
                log.warning("calls to the ledger fail: %s", text)
            self._diagnosis = (now, text)
            return text

    def close(self) -> None:
        self._stop.set()
        self._channel.close()
