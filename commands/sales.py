"""Sales commands: place an order (claiming GA quantity and seats atomically), cancel, expire."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from commands.base import BaseApplication, new_id, utcnow
from commands.claims import ClaimRequest, ClaimWriter, ItemRequest, Placed
from commands.claims_remote import ClaimClient
from domain.errors import NotFound
from domain.ids import order_id_for_idempotency_key
from domain.offer import Offer
from domain.order import Order, WrongOrderState
from domain.seat import Seat


@dataclass(frozen=True)
class SalesPolicy:
    hold_seconds: int = 900
    fee_basis_points: int = 0
    fee_fixed: int = 0


class SalesCommands(BaseApplication):
    policy = SalesPolicy()

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env=env)
        self.claims = ClaimWriter(self)
        # Set in API processes when a claims service places the orders (CLAIMS_ADDRESS).
        self.remote_claims: ClaimClient | None = None

    def submit_order(
        self,
        buyer_id: UUID,
        items: list[ItemRequest],
        *,
        idempotency_key: str | None = None,
        at: datetime | None = None,
    ) -> Future[Placed]:
        """Queue an order for the claim writer; the future holds the outcome (see `place_order`)."""
        future: Future[Placed] = Future()
        self.claims.submit(self._claim_request(buyer_id, items, idempotency_key, at, future=future))
        return future

    def submit_order_async(
        self, buyer_id: UUID, items: list[ItemRequest], *, idempotency_key: str | None = None
    ) -> asyncio.Future[Placed]:
        """`submit_order` for a caller on an event loop: the writer settles the returned asyncio
        future on that loop (one wake-up per batch, no thread hand-off per order). With a claims
        service configured, the order goes to its writer instead of this process's."""
        waiter: asyncio.Future[Placed] = asyncio.get_running_loop().create_future()
        request = self._claim_request(buyer_id, items, idempotency_key, None, waiter=waiter)
        (self.remote_claims or self.claims).submit(request)
        return waiter

    @staticmethod
    def _claim_request(
        buyer_id: UUID,
        items: list[ItemRequest],
        idempotency_key: str | None,
        at: datetime | None,
        *,
        future: Future[Placed] | None = None,
        waiter: asyncio.Future[Placed] | None = None,
    ) -> ClaimRequest:
        order_id = order_id_for_idempotency_key(buyer_id, idempotency_key) if idempotency_key else new_id()
        return ClaimRequest(buyer_id, order_id, list(items), idempotency_key is not None, at, future, waiter)

    def place_order(
        self,
        buyer_id: UUID,
        items: list[ItemRequest],
        *,
        idempotency_key: str | None = None,
        at: datetime | None = None,
    ) -> tuple[Order, bool]:
        """Hold the requested inventory for a new order; returns (order, created).

        With an idempotency key the order id is derived from it, so a retried request finds
        the order it already placed (created=False) instead of placing a second one. Raises the
        domain error that rejected the order (sold out, seat taken, limits ...).
        """
        placed = self.submit_order(buyer_id, items, idempotency_key=idempotency_key, at=at).result()
        if placed.position is not None:
            self._local.position = placed.position
        assert isinstance(placed.order, Order)
        return placed.order, placed.created

    def get_order(self, order_id: UUID) -> Order:
        return self.load(order_id, "order", Order)

    def cancel_order(self, order_id: UUID, *, at: datetime | None = None) -> Order:
        """The buyer gives up a held order; its inventory goes back on sale at once."""

        def attempt() -> Order:
            order = self.get_order(order_id)
            order.cancel(at or utcnow())
            self.save(order, *self._release(order))
            return order

        return self.retrying(attempt)

    def expire_hold(self, order_id: UUID, *, at: datetime | None = None) -> bool:
        """Expire a lapsed hold and release its inventory. Idempotent: repeats do nothing.

        Returns whether this call expired the order.
        """

        def attempt() -> bool:
            now = at or utcnow()
            try:
                order = self.get_order(order_id)
            except NotFound:
                return False
            if order.status != "held" or not order.is_hold_lapsed(now):
                return False
            order.expire(now)
            self.save(order, *self._release(order))
            return True

        return self.retrying(attempt)

    def _release(self, order: Order) -> list[Any]:
        """Offers and seats with this order's holds released (to save with the order)."""
        if order.status not in ("cancelled", "expired"):
            raise WrongOrderState("inventory is released only when an order closes")
        changed: list[Any] = []
        for offer, quantity in self._quota_offers(order):
            offer.release(order.id, quantity)
            changed.append(offer)
        for seat_id in order.seat_ids():
            seat = self.load(seat_id, "seat", Seat)
            if seat.order_id == order.id and seat.status == "held":
                seat.release(order.id)
                changed.append(seat)
        return changed

    def _quota_offers(self, order: Order) -> list[tuple[Offer, int]]:
        """The order's offers that count inventory, with how many units the order has of each."""
        quantities: dict[UUID, int] = {}
        for item in order.items:
            quantities[item["offer_id"]] = quantities.get(item["offer_id"], 0) + item["quantity"]
        offers = [(self.load(offer_id, "offer", Offer), n) for offer_id, n in quantities.items()]
        return [(offer, n) for offer, n in offers if offer.has_quota]
