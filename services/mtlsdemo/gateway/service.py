"""gRPC servicer for mtlsdemo.gateway.v1.GatewayService: the public API,
each call translated into calls to the ledger."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import NoReturn

import grpc

from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
from mtlsdemo._generated.ledger.v1 import ledger_pb2 as lpb
from mtlsdemo._generated.ledger.v1 import ledger_pb2_grpc as lpb_grpc
from mtlsdemo.gateway.ledger_client import LedgerConnection

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GatewayService"].full_name
LEDGER_DEADLINE_SECONDS = 5.0
# The caller's mistakes pass through with the ledger's message; anything else
# means the ledger itself is in trouble.
_PASS_THROUGH = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
}


def _relay(context: grpc.ServicerContext, e: grpc.RpcError, why: str | None = None) -> NoReturn:
    code = e.code()
    if code == grpc.StatusCode.UNAVAILABLE and why:
        context.abort(code, f"ledger unavailable: {why}")
    if code in _PASS_THROUGH:
        context.abort(code, e.details())
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        context.abort(code, "the ledger did not answer in time")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        context.abort(grpc.StatusCode.INTERNAL, f"the ledger refused the gateway: {e.details()}")
    context.abort(grpc.StatusCode.UNAVAILABLE, f"ledger unavailable: {code.name}: {e.details()}")
    raise AssertionError("unreachable")


class GatewayService(pb_grpc.GatewayServiceServicer):  # type: ignore[misc]  # grpc ships no types
    def __init__(self, connection: LedgerConnection) -> None:
        self.connection = connection

    @property
    def ledger(self) -> lpb_grpc.LedgerServiceStub:
        # read per call: the connection swaps in a new stub when certificates change
        return self.connection.stub

    def OpenAccount(
        self, request: pb.OpenAccountRequest, context: grpc.ServicerContext
    ) -> pb.OpenAccountResponse:
        try:
            a = self.ledger.CreateAccount(
                lpb.CreateAccountRequest(account_id=request.account_id, owner=request.owner),
                timeout=LEDGER_DEADLINE_SECONDS,
            )
        except grpc.RpcError as e:
            _relay(context, e, self.connection.explain(e))
        return pb.OpenAccountResponse(account_id=a.account_id, owner=a.owner)

    def Deposit(
        self, request: pb.DepositRequest, context: grpc.ServicerContext
    ) -> pb.MoneyMovement:
        key = request.idempotency_key or f"dep-{uuid.uuid4()}"
        try:
            r = self.ledger.Deposit(
                lpb.DepositRequest(
                    account_id=request.account_id,
                    amount_cents=request.amount_cents,
                    idempotency_key=key,
                ),
                timeout=LEDGER_DEADLINE_SECONDS,
            )
            to = self.ledger.GetAccount(
                lpb.GetAccountRequest(account_id=request.account_id),
                timeout=LEDGER_DEADLINE_SECONDS,
            )
        except grpc.RpcError as e:
            _relay(context, e, self.connection.explain(e))
        return pb.MoneyMovement(
            transfer_id=r.transfer.transfer_id,
            idempotency_key=key,
            replayed=r.replayed,
            to_balance_cents=to.balance_cents,
        )

    def Transfer(
        self, request: pb.TransferRequest, context: grpc.ServicerContext
    ) -> pb.MoneyMovement:
        key = request.idempotency_key or f"xfr-{uuid.uuid4()}"
        try:
            r = self.ledger.Transfer(
                lpb.TransferRequest(
                    from_account_id=request.from_account_id,
                    to_account_id=request.to_account_id,
                    amount_cents=request.amount_cents,
                    idempotency_key=key,
                ),
                timeout=LEDGER_DEADLINE_SECONDS,
            )
            src = self.ledger.GetAccount(
                lpb.GetAccountRequest(account_id=request.from_account_id),
                timeout=LEDGER_DEADLINE_SECONDS,
            )
            dst = self.ledger.GetAccount(
                lpb.GetAccountRequest(account_id=request.to_account_id),
                timeout=LEDGER_DEADLINE_SECONDS,
            )
        except grpc.RpcError as e:
            _relay(context, e, self.connection.explain(e))
        return pb.MoneyMovement(
            transfer_id=r.transfer.transfer_id,
            idempotency_key=key,
            replayed=r.replayed,
            from_balance_cents=src.balance_cents,
            to_balance_cents=dst.balance_cents,
        )

    def GetBalance(
        self, request: pb.GetBalanceRequest, context: grpc.ServicerContext
    ) -> pb.Balance:
        try:
            a = self.ledger.GetAccount(
                lpb.GetAccountRequest(account_id=request.account_id),
                timeout=LEDGER_DEADLINE_SECONDS,
            )
        except grpc.RpcError as e:
            _relay(context, e, self.connection.explain(e))
        return pb.Balance(account_id=a.account_id, owner=a.owner, balance_cents=a.balance_cents)

    def Statement(
        self, request: pb.StatementRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.StatementEntry]:
        account = request.account_id
        try:
            self.ledger.GetAccount(
                lpb.GetAccountRequest(account_id=account), timeout=LEDGER_DEADLINE_SECONDS
            )
            if request.follow:
                call = self.ledger.WatchTransfers(
                    lpb.WatchTransfersRequest(account_id=account, after_id=0)
                )
                context.add_callback(call.cancel)  # our caller left: stop the upstream stream
                for t in call:
                    yield entry_for(account, t)
                return
            after = 0
            while True:
                page = self.ledger.ListTransfers(
                    lpb.ListTransfersRequest(account_id=account, after_id=after, limit=500),
                    timeout=LEDGER_DEADLINE_SECONDS,
                )
                if not page.transfers:
                    return
                for t in page.transfers:
                    yield entry_for(account, t)
                after = page.transfers[-1].transfer_id
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED and not context.is_active():
                return
            _relay(context, e, self.connection.explain(e))


def entry_for(account: str, t: lpb.TransferRecord) -> pb.StatementEntry:
    if t.kind == "deposit":
        kind, other, amount = "deposit", "", t.amount_cents
    elif t.to_account_id == account:
        kind, other, amount = "transfer_in", t.from_account_id, t.amount_cents
    else:
        kind, other, amount = "transfer_out", t.to_account_id, -t.amount_cents
    return pb.StatementEntry(
        transfer_id=t.transfer_id,
        kind=kind,
        counterparty_account_id=other,
        amount_cents=amount,
        created_unix_ms=t.created_unix_ms,
    )
