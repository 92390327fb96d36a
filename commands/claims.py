"""The claims port: where an order is placed, and what comes back.

Placing an order is the one contended write of an on-sale, so it is not a plain command: every
order goes through a `Claims` port, which batches many buyers' orders into one transaction. Two
adapters implement it, and the composition root (`ticketing.py`) picks one per process:

- `ClaimWriter` (`commands/claim_writer.py`): the group-commit writer, in this process;
- `ClaimClient` (`commands/claims_client.py`): the claims service's client; the service
  (`workers/claims_service.py`) runs the deployment's one `ClaimWriter`.

A request carries its outcome back in `waiter` (an asyncio future, settled on its own event
loop) or `future` (for callers in threads): a `Placed` with the order as a `PlacedOrder`, the
same struct whichever adapter placed it, or the domain error that refused it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from uuid import UUID

import msgspec

from commands.base import new_id
from commands.metrics import record_claim_batch
from domain.ids import order_id_for_idempotency_key
from domain.order import Order, OrderItem
from domain.placement import ItemRequest

log = logging.getLogger("claims")


class PlacedOrder(msgspec.Struct, array_like=True, frozen=True):
    """A placed order as its answer shows it: the fields of the domain `Order` that an API
    response needs, in the claims service's frames and in the API alike."""

    id: UUID
    status: str
    payment_status: str
    event_id: UUID
    buyer_id: UUID
    items: list[OrderItem]
    currency: str
    ticket_count: int
    placed_at: datetime
    hold_expires_at: datetime
    closed_at: datetime | None
    payment_intent_id: str | None
    paid_at: datetime | None
    last_payment_error: str | None
    subtotal: int
    fees: int
    total: int
    amount_paid: int
    amount_refunded: int
    number: str | None = None

    @classmethod
    def of(cls, order: Order) -> PlacedOrder:
        return cls(**{name: getattr(order, name) for name in cls.__struct_fields__})


@dataclass(frozen=True)
class Placed:
    order: PlacedOrder
    created: bool  # False: the order an earlier request with this Idempotency-Key placed
    position: int | None  # the store position the read models must reach to show it
    # Offer id -> (offer name, tier name), as the writer saw them (saves the API a query).
    names: dict[UUID, tuple[str, str]] = field(default_factory=dict)


@dataclass(eq=False)
class ClaimRequest:
    """One order waiting to be placed; its outcome goes to `waiter` or `future`."""

    buyer_id: UUID
    order_id: UUID
    items: list[ItemRequest]
    idempotent: bool
    at: datetime | None = None
    future: Future[Placed] | None = None
    waiter: asyncio.Future[Placed] | None = None
    queued: float = field(default_factory=time.monotonic, repr=False)  # for the claim wait metric

    @classmethod
    def new(
        cls,
        buyer_id: UUID,
        items: list[ItemRequest],
        idempotency_key: str | None = None,
        *,
        at: datetime | None = None,
        future: Future[Placed] | None = None,
        waiter: asyncio.Future[Placed] | None = None,
    ) -> ClaimRequest:
        """A request for a new order: its id derived from the Idempotency-Key (so a retried
        request finds the order it placed), or a fresh one."""
        order_id = order_id_for_idempotency_key(buyer_id, idempotency_key) if idempotency_key else new_id()
        return cls(buyer_id, order_id, list(items), idempotency_key is not None, at, future, waiter)


class Claims(Protocol):
    """The port: queue a request; its outcome arrives in `request.waiter` or `request.future`."""

    def submit(self, request: ClaimRequest) -> None: ...


def submit_and_wait(
    claims: Claims, buyer_id: UUID, items: list[ItemRequest], idempotency_key: str | None
) -> asyncio.Future[Placed]:
    """Queue a new order from the running event loop; the returned future holds its outcome.

    Await the returned future directly (`await submit_and_wait(...)`), never through a local
    variable: a refused order's exception carries a traceback holding the awaiting frame, and a
    future kept in that frame's locals holds the exception again. That cycle (future, exception,
    traceback, frames, coroutines: some 25 objects per refusal) is freed only by the cyclic
    collector, whose passes cost an API process a quarter of its CPU in a seated on-sale where
    most requests are refused (hot-seats, measured with `gc.callbacks`: 11 middle-generation
    passes of ~280 ms each per process and run).
    """
    waiter: asyncio.Future[Placed] = asyncio.get_running_loop().create_future()
    claims.submit(ClaimRequest.new(buyer_id, items, idempotency_key, waiter=waiter))
    return waiter


Outcome = Placed | BaseException


def _settle(outcomes: list[tuple[asyncio.Future[Placed], Outcome]]) -> None:
    """Runs on the waiters' event loop: one call for all its buyers of a batch."""
    for waiter, outcome in outcomes:
        if waiter.done():  # the client went away (its request was cancelled)
            continue
        if isinstance(outcome, Placed):
            waiter.set_result(outcome)
        else:
            waiter.set_exception(outcome)


def deliver(results: list[tuple[ClaimRequest, Outcome]]) -> None:
    """Hand every outcome to whoever waits for it.

    Requests from an event loop are settled with one `call_soon_threadsafe` per loop and batch
    (one wake-up of the loop instead of one per buyer); threads get their `Future` set.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Placed], Outcome]]] = {}
    record_claim_batch(results)
    for request, outcome in results:
        if request.waiter is not None:
            by_loop.setdefault(request.waiter.get_loop(), []).append((request.waiter, outcome))
        elif request.future is not None and request.future.set_running_or_notify_cancel():
            if isinstance(outcome, Placed):
                request.future.set_result(outcome)
            else:
                request.future.set_exception(outcome)
    for loop, outcomes in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, outcomes)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.warning("event loop closed before %d claim outcomes could be delivered", len(outcomes))
