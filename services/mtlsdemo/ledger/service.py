"""gRPC servicer for mtlsdemo.ledger.v1.LedgerService over a LedgerStore."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc

from mtlsdemo import telemetry
from mtlsdemo._generated.ledger.v1 import ledger_pb2 as pb
from mtlsdemo._generated.ledger.v1 import ledger_pb2_grpc as pb_grpc
from mtlsdemo.ledger.store import (
    Account,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    LedgerError,
    LedgerStore,
    NotFound,
    Transfer,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LedgerService"].full_name
_CODES = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
}


def _abort(context: grpc.ServicerContext, e: LedgerError) -> NoReturn:
    context.abort(_CODES.get(type(e), grpc.StatusCode.INTERNAL), str(e))
    raise AssertionError("unreachable")  # abort raises


def account_pb(a: Account) -> pb.Account:
    return pb.Account(
        account_id=a.account_id,
        owner=a.owner,
        balance_cents=a.balance_cents,
        created_unix_ms=a.created_unix_ms,
    )


def transfer_pb(t: Transfer) -> pb.TransferRecord:
    return pb.TransferRecord(
        transfer_id=t.transfer_id,
        kind=t.kind,
        from_account_id=t.from_account_id,
        to_account_id=t.to_account_id,
        amount_cents=t.amount_cents,
        idempotency_key=t.idempotency_key,
        created_unix_ms=t.created_unix_ms,
    )


class LedgerService(pb_grpc.LedgerServiceServicer):  # type: ignore[misc]  # grpc ships no types
    def __init__(self, store: LedgerStore, watch_poll_seconds: float = 1.0) -> None:
        self.store = store
        self.watch_poll_seconds = watch_poll_seconds
        telemetry.LEDGER_ACCOUNTS.set(store.count_accounts())

    def CreateAccount(
        self, request: pb.CreateAccountRequest, context: grpc.ServicerContext
    ) -> pb.Account:
        try:
            account = self.store.create_account(request.account_id, request.owner)
        except LedgerError as e:
            _abort(context, e)
        telemetry.LEDGER_ACCOUNTS.inc()
        return account_pb(account)

    def GetAccount(
        self, request: pb.GetAccountRequest, context: grpc.ServicerContext
    ) -> pb.Account:
        try:
            return account_pb(self.store.get_account(request.account_id))
        except LedgerError as e:
            _abort(context, e)

    def _movement(
        self, kind: str, context: grpc.ServicerContext, fn: Callable[..., Any], *args: Any
    ) -> pb.TransferResult:
        try:
            transfer, replayed = fn(*args)
        except LedgerError as e:
            telemetry.LEDGER_TRANSFERS.labels(kind, type(e).__name__.lower()).inc()
            _abort(context, e)
        if replayed:
            telemetry.LEDGER_TRANSFERS.labels(kind, "replayed").inc()
        else:
            telemetry.LEDGER_TRANSFERS.labels(kind, "applied").inc()
            telemetry.LEDGER_MOVED.labels(kind).inc(transfer.amount_cents)
        return pb.TransferResult(transfer=transfer_pb(transfer), replayed=replayed)

    def Deposit(
        self, request: pb.DepositRequest, context: grpc.ServicerContext
    ) -> pb.TransferResult:
        return self._movement(
            "deposit",
            context,
            self.store.deposit,
            request.account_id,
            request.amount_cents,
            request.idempotency_key,
        )

    def Transfer(
        self, request: pb.TransferRequest, context: grpc.ServicerContext
    ) -> pb.TransferResult:
        return self._movement(
            "transfer",
            context,
            self.store.transfer,
            request.from_account_id,
            request.to_account_id,
            request.amount_cents,
            request.idempotency_key,
        )

    def ListTransfers(
        self, request: pb.ListTransfersRequest, context: grpc.ServicerContext
    ) -> pb.ListTransfersResponse:
        try:
            found = self.store.list_transfers(request.account_id, request.after_id, request.limit)
        except LedgerError as e:
            _abort(context, e)
        return pb.ListTransfersResponse(transfers=[transfer_pb(t) for t in found])

    def WatchTransfers(
        self, request: pb.WatchTransfersRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.TransferRecord]:
        after = request.after_id
        try:
            if request.account_id:
                self.store.get_account(request.account_id)
            while context.is_active():
                for t in self.store.wait_for_transfers(
                    request.account_id, after, self.watch_poll_seconds
                ):
                    after = t.transfer_id
                    yield transfer_pb(t)
        except LedgerError as e:
            _abort(context, e)
