"""The gateway's channel to the ledger: mTLS by default, or plaintext to a local sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import grpc

from mtlsdemo._generated.ledger.v1 import ledger_pb2_grpc as pb_grpc
from mtlsdemo.rpc.credentials import secure_channel
from mtlsdemo.rpc.interceptors import ClientMetricsInterceptor
from mtlsdemo.rpc.server import ConfigError, is_loopback

# Every ledger write carries an idempotency key, so retrying UNAVAILABLE (the
# ledger restarting, a connection reset) can never move money twice.
SERVICE_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": "mtlsdemo.ledger.v1.LedgerService"}],
        "retryPolicy": {
            "maxAttempts": 5,
            "initialBackoff": "0.1s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})


def ledger_channel(address: str, tls_dir: Path | None, server_name: str) -> grpc.Channel:
    options: list[tuple[str, object]] = [
        ("grpc.service_config", SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ]
    if tls_dir is None:
        if not is_loopback(address):
            raise ConfigError(f"--ledger-addr {address}: plaintext is only allowed to a "
                              "loopback address (a local sidecar)")
        channel = grpc.insecure_channel(address, options=options)
    else:
        channel = secure_channel(address, tls_dir, server_name, options)
    return grpc.intercept_channel(channel, ClientMetricsInterceptor())


def ledger_stub(channel: grpc.Channel) -> pb_grpc.LedgerServiceStub:
    return pb_grpc.LedgerServiceStub(channel)
