"""Sales commands: place an order (through the claims port), cancel, expire."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import datetime
from typing import Any
from uuid import UUID

from commands.base import BaseApplication, utcnow
from commands.claim_writer import ClaimWriter
from commands.claims import ClaimRequest, Claims, Placed
from domain.errors import NotFound
from domain.offer import Offer
from domain.order import Order, WrongOrderState
from domain.placement import ItemRequest, SalesPolicy
from domain.seat import Seat


class SalesCommands(BaseApplication):
    policy = SalesPolicy()

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env=env)
        # This process's own claim writer, and the port orders are placed through: the writer,
        # unless the composition root points it at the claims service (a ClaimClient).
        self.writer = ClaimWriter(self)
        self.claims: Claims = self.writer

    def place_order(
        self,
        buyer_id: UUID,
        items: list[ItemRequest],
        *,
        idempotency_key: str | None = None,
        at: datetime | None = None,
    ) -> tuple[Order, bool]:
        """Hold the requested inventory for a new order, from a thread (this process's writer);
        returns (order, created).

        With an idempotency key the order id is derived from it, so a retried request finds
        the order it already placed (created=False) instead of placing a second one. Raises the
        domain error that rejected the order (sold out, seat taken, limits ...).
        """
        future: Future[Placed] = Future()
        self.writer.submit(ClaimRequest.new(buyer_id, items, idempotency_key, at=at, future=future))
        placed = future.result()
        if placed.position is not None:
            self._local.position = placed.position
        return self.get_order(placed.order.id), placed.created

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

    def _release(self, order: Order, known: dict[UUID, Any] | None = None) -> list[Any]:
        """Offers and seats with this order's holds released (to save with the order).

        While an offer's waitlist has demand, what comes back is kept for it instead of going
        on sale (`Offer.release` keeps GA stock; seats are kept here): same save, no race.
        `known` holds aggregates the caller already loaded (and saves), so each is changed once."""
        if order.status not in ("cancelled", "expired"):
            raise WrongOrderState("inventory is released only when an order closes")
        offers = {} if known is None else {k: v for k, v in known.items() if isinstance(v, Offer)}
        changed: dict[UUID, Any] = {}
        for offer, quantity in self._quota_offers(order, offers):
            offer.release(order.id, quantity)
            changed[offer.id] = offer
        for item in order.items:
            seat_id = item["seat_id"]
            if seat_id is None:
                continue
            seat = self.load(seat_id, "seat", Seat)
            if seat.order_id == order.id and seat.status == "held":
                seat.release(order.id)
                changed[seat.id] = seat
                self._keep_seat_for_waitlist(seat, item["offer_id"], offers, changed)
        return list(changed.values())

    def _keep_seat_for_waitlist(self, seat: Seat, offer_id: UUID, offers: dict[UUID, Offer],
                                changed: dict[UUID, Any]) -> None:  # fmt: skip
        """A seat that just came back goes to its offer's waitlist while anyone waits for it."""
        offer = offers.get(offer_id)
        if offer is None:
            offer = offers[offer_id] = self.load(offer_id, "offer", Offer)
        if offer.wants_seat() and not (offer.has_quota and not offer.available):
            seat.keep_for_waitlist(offer.id)
            offer.keep_seat(seat.id)
            changed[offer.id] = offer

    def _quota_offers(self, order: Order, loaded: dict[UUID, Offer] | None = None) -> list[tuple[Offer, int]]:
        """The order's offers that count inventory, with how many units the order has of each
        (offers found in `loaded` are used as they are; the ones loaded here are added to it)."""
        loaded = {} if loaded is None else loaded
        quantities: dict[UUID, int] = {}
        for item in order.items:
            quantities[item["offer_id"]] = quantities.get(item["offer_id"], 0) + item["quantity"]
        for offer_id in quantities:
            if offer_id not in loaded:
                loaded[offer_id] = self.load(offer_id, "offer", Offer)
        return [(loaded[offer_id], n) for offer_id, n in quantities.items() if loaded[offer_id].has_quota]
