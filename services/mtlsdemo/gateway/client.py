"""``mtlsdemo client``: call the gateway with the cli certificate."""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc

from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
from mtlsdemo.addresses import DEFAULT_PORTS, local
from mtlsdemo.gateway.caller import caller_channel, why_unavailable
from mtlsdemo.ledger.money import format_cents
from mtlsdemo.pki.material import IdentityMaterial, IdentitySource
from mtlsdemo.rpc.retry import FAST_RECONNECT, RetryPolicy, call_with_retry

RETRY_BUDGET = 20.0  # seconds a deposit or transfer keeps retrying transient failures


@dataclass(frozen=True)
class ClientCall:
    """What to ask the gateway (the fields each action uses)."""

    action: str
    owner: str = ""
    id: str | None = None
    account: str = ""
    amount: int = 0  # cents, parsed at the edge
    key: str | None = None
    source: str = ""
    destination: str = ""
    follow: bool = False


@dataclass(frozen=True)
class ClientConfig:
    """`mtlsdemo client`, typed (built from the flags in commands/client.py)."""

    call: ClientCall
    gateway_addr: str = local("gateway")
    tls_dir: Path = Path("certs/cli")
    server_name: str = "gateway"
    timeout: float = 10.0
    transport: str = "auto"  # tls, mtd (MTD/1 through an in-process sidecar) or auto


def gateway_channel(
    address: str,
    tls_dir: Path,
    server_name: str,
    transport: str = "auto",
    material: IdentityMaterial | None = None,
) -> grpc.Channel:
    return caller_channel(address, tls_dir, server_name, transport, FAST_RECONNECT, material)


def explain(
    e: grpc.RpcError,
    channel: grpc.Channel,
    material: IdentityMaterial,
    address: str,
    server_name: str,
    tls_dir: Path,
) -> str:
    """gRPC's status, or for a failed handshake, who refused whom and why (`client`
    and `loadgen` say a failed call the same way)."""
    from mtlsdemo.addresses import parse_hostport

    said = f"{e.code().name}: {e.details()}"
    if e.code() == grpc.StatusCode.UNIMPLEMENTED:
        # the handshake passed, the API is not there: another mesh service's port
        return (
            f"{said} — the server at {address} accepted you but does not serve the "
            f"gateway's API: is it the gateway? (make run: the gateway is "
            f"127.0.0.1:{DEFAULT_PORTS['gateway']}, --gateway-addr)"
        )
    target = parse_hostport(address, default_host="127.0.0.1")
    found = why_unavailable(e, channel, target, material, server_name, tls_dir)
    if found is None:
        return said
    # the address is the gateway's unless told otherwise; a server expected under
    # another name (``--server-name ledger`` at the ledger) is named by its address
    who = (
        "gateway" if server_name == "gateway" else f"server at {address} (expected: {server_name})"
    )
    return f"{found.sentence(who)} (gRPC said {e.code().name})"


def run(cfg: ClientConfig) -> int:
    material = IdentitySource(Path(cfg.tls_dir)).current  # read once: the call and the diagnosis
    channel = gateway_channel(
        cfg.gateway_addr, Path(cfg.tls_dir), cfg.server_name, cfg.transport, material
    )
    stub = pb_grpc.GatewayServiceStub(channel)
    t = cfg.timeout
    # money movements: our own key, so a retry (the gateway or the ledger restarting,
    # a connection reset) replays instead of moving money twice
    key = cfg.call.key or f"cli-{uuid.uuid4().hex}"
    policy = RetryPolicy(deadline=t, budget=max(t, RETRY_BUDGET))
    try:
        if cfg.call.action == "open":
            r = stub.OpenAccount(
                pb.OpenAccountRequest(owner=cfg.call.owner, account_id=cfg.call.id or ""), timeout=t
            )
            print(f"opened {r.account_id} for {r.owner}")
        elif cfg.call.action == "deposit":
            r = call_with_retry(
                stub.Deposit,
                pb.DepositRequest(
                    account_id=cfg.call.account, amount_cents=cfg.call.amount, idempotency_key=key
                ),
                policy,
            )
            print(
                f"deposit #{r.transfer_id}{' (replayed)' if r.replayed else ''}: "
                f"{cfg.call.account} balance {format_cents(r.to_balance_cents)}  key={r.idempotency_key}"
            )
        elif cfg.call.action == "transfer":
            r = call_with_retry(
                stub.Transfer,
                pb.TransferRequest(
                    from_account_id=cfg.call.source,
                    to_account_id=cfg.call.destination,
                    amount_cents=cfg.call.amount,
                    idempotency_key=key,
                ),
                policy,
            )
            print(
                f"transfer #{r.transfer_id}{' (replayed)' if r.replayed else ''}: "
                f"{cfg.call.source} {format_cents(r.from_balance_cents)} -> "
                f"{cfg.call.destination} {format_cents(r.to_balance_cents)}  key={r.idempotency_key}"
            )
        elif cfg.call.action == "balance":
            r = stub.GetBalance(pb.GetBalanceRequest(account_id=cfg.call.account), timeout=t)
            print(f"{r.account_id} ({r.owner}): {format_cents(r.balance_cents)}")
        elif cfg.call.action == "statement":
            stream = stub.Statement(
                pb.StatementRequest(account_id=cfg.call.account, follow=cfg.call.follow),
                timeout=None if cfg.call.follow else t,
            )
            for e in stream:
                when = dt.datetime.fromtimestamp(e.created_unix_ms / 1000, dt.UTC)
                print(
                    f"#{e.transfer_id:<6} {when:%Y-%m-%d %H:%M:%S}Z {e.kind:<12} "
                    f"{format_cents(e.amount_cents):>12} {e.counterparty_account_id}",
                    flush=True,
                )
    except grpc.RpcError as e:
        said = explain(e, channel, material, cfg.gateway_addr, cfg.server_name, Path(cfg.tls_dir))
        print(f"error: {said}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        channel.close()
    return 0
