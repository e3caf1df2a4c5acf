"""``mtlsdemo client``: call the gateway with the cli certificate."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import grpc

from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
from mtlsdemo.money import format_cents
from mtlsdemo.pki.material import IdentityMaterial, IdentitySource
from mtlsdemo.rpc.credentials import secure_channel
from mtlsdemo.rpc.diagnose import diagnose, is_transport_failure


def gateway_channel(address: str, material: IdentityMaterial, server_name: str) -> grpc.Channel:
    return secure_channel(address, material, server_name)


def explain(e: grpc.RpcError, args: argparse.Namespace, material: IdentityMaterial) -> str:
    """gRPC's status, or for a failed TLS handshake, who refused whom and why."""
    said = f"{e.code().name}: {e.details()}"
    if e.code() != grpc.StatusCode.UNAVAILABLE or not is_transport_failure(e.details()):
        return said
    from mtlsdemo.sidecar.config import parse_hostport

    host, port = parse_hostport(args.gateway_addr, default_host="127.0.0.1")
    tls_dir = Path(args.tls_dir)
    found = diagnose(
        host,
        port,
        IdentitySource(tls_dir).current,
        args.server_name,
        dt.datetime.now(dt.UTC),
        identity_dir=tls_dir,
    )
    if found is None:
        return said
    return f"{found.sentence('gateway')} (gRPC said {e.code().name})"


def run(args: argparse.Namespace) -> int:
    material = IdentitySource(Path(args.tls_dir)).current  # read once: the call and the diagnosis
    channel = gateway_channel(args.gateway_addr, material, args.server_name)
    stub = pb_grpc.GatewayServiceStub(channel)
    t = args.timeout
    try:
        if args.action == "open":
            r = stub.OpenAccount(
                pb.OpenAccountRequest(owner=args.owner, account_id=args.id or ""), timeout=t
            )
            print(f"opened {r.account_id} for {r.owner}")
        elif args.action == "deposit":
            r = stub.Deposit(
                pb.DepositRequest(
                    account_id=args.account,
                    amount_cents=args.amount,
                    idempotency_key=args.key or "",
                ),
                timeout=t,
            )
            print(
                f"deposit #{r.transfer_id}{' (replayed)' if r.replayed else ''}: "
                f"{args.account} balance {format_cents(r.to_balance_cents)}  key={r.idempotency_key}"
            )
        elif args.action == "transfer":
            r = stub.Transfer(
                pb.TransferRequest(
                    from_account_id=args.source,
                    to_account_id=args.destination,
                    amount_cents=args.amount,
                    idempotency_key=args.key or "",
                ),
                timeout=t,
            )
            print(
                f"transfer #{r.transfer_id}{' (replayed)' if r.replayed else ''}: "
                f"{args.source} {format_cents(r.from_balance_cents)} -> "
                f"{args.destination} {format_cents(r.to_balance_cents)}  key={r.idempotency_key}"
            )
        elif args.action == "balance":
            r = stub.GetBalance(pb.GetBalanceRequest(account_id=args.account), timeout=t)
            print(f"{r.account_id} ({r.owner}): {format_cents(r.balance_cents)}")
        elif args.action == "statement":
            stream = stub.Statement(
                pb.StatementRequest(account_id=args.account, follow=args.follow),
                timeout=None if args.follow else t,
            )
            for e in stream:
                when = dt.datetime.fromtimestamp(e.created_unix_ms / 1000, dt.UTC)
                print(
                    f"#{e.transfer_id:<6} {when:%Y-%m-%d %H:%M:%S}Z {e.kind:<12} "
                    f"{format_cents(e.amount_cents):>12} {e.counterparty_account_id}",
                    flush=True,
                )
    except grpc.RpcError as e:
        print(f"error: {explain(e, args, material)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        channel.close()
    return 0
