"""Sales commands: place an order (claiming GA quantity and seats atomically), cancel, expire."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from commands.base import BaseApplication, utcnow
from domain.errors import Conflict, Invalid, NotFound
from domain.event import Event
from domain.ids import order_id_for_idempotency_key
from domain.offer import Offer
from domain.order import Order, OrderItem, WrongOrderState
from domain.seat import Seat


@dataclass(frozen=True)
class ItemRequest:
    offer_id: UUID
    quantity: int = 1
    seat_id: UUID | None = None


@dataclass(frozen=True)
class SalesPolicy:
    hold_seconds: int = 900
    fee_basis_points: int = 0
    fee_fixed: int = 0


class SalesCommands(BaseApplication):
    policy = SalesPolicy()

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env=env)
        # One writer per process for claims: buyers in this process never conflict with
        # each other in the store, only with other processes (which the retry absorbs).
        self._claims_lock = threading.Lock()

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
        the order it already placed (created=False) instead of placing a second one.
        """
        if not items:
            raise Invalid("an order needs at least one item", field="items")
        order_id = order_id_for_idempotency_key(buyer_id, idempotency_key) if idempotency_key else uuid4()

        def attempt() -> tuple[Order, bool]:
            now = at or utcnow()
            with self._claims_lock:
                if idempotency_key and self._has_events(order_id):
                    return self._existing_order(order_id, buyer_id), False
                changed = self._claim(order_id, buyer_id, items, now)
                self.save(*changed)
            order = changed[0]
            assert isinstance(order, Order)
            return order, True

        return self.retrying(attempt)

    def _claim(self, order_id: UUID, buyer_id: UUID, items: list[ItemRequest], now: datetime) -> list[Any]:
        offers: dict[UUID, Offer] = {}
        for item in items:
            if item.offer_id not in offers:
                offers[item.offer_id] = self.load(item.offer_id, "offer", Offer)
        event_ids = {o.event_id for o in offers.values()}
        if len(event_ids) != 1:
            raise Invalid("all items of an order must be for one event", field="items")
        show = self.load(event_ids.pop(), "event", Event)
        show.check_on_sale()
        currencies = {o.currency for o in offers.values()}
        if len(currencies) != 1:
            raise Invalid("all items of an order must share one currency", field="items")

        per_offer: dict[UUID, int] = {}
        for item in items:
            offer = offers[item.offer_id]
            if item.quantity <= 0:
                raise Invalid("quantity must be positive", field="items")
            if offer.is_seated and item.seat_id is None:
                raise Invalid(f"offer {offer.name!r} is seated: choose a seat_id", field="items")
            if not offer.is_seated and item.seat_id is not None:
                raise Invalid(f"offer {offer.name!r} is general admission: no seat_id", field="items")
            if item.seat_id is not None and item.quantity != 1:
                raise Invalid("a seat item has quantity 1", field="items")
            per_offer[item.offer_id] = per_offer.get(item.offer_id, 0) + item.quantity
        for offer_id, quantity in per_offer.items():
            offers[offer_id].check_order(quantity, now)

        hold_until = now + timedelta(seconds=self.policy.hold_seconds)
        seats: list[Seat] = []
        order_items: list[OrderItem] = []
        for item in items:
            offer = offers[item.offer_id]
            seat_label: str | None = None
            if item.seat_id is not None:
                seat = self.load(item.seat_id, "seat", Seat)
                if seat.event_id != offer.event_id or seat.tier_id != offer.tier_id:
                    raise Invalid(f"seat {seat.label} is not sold by offer {offer.name!r}", field="items")
                if any(s.id == seat.id for s in seats):
                    raise Invalid("the same seat appears twice", field="items")
                seat.hold(order_id, hold_until)
                seats.append(seat)
                seat_label = f"{seat.section} {seat.row}-{seat.label}"
            order_items.append(
                {
                    "offer_id": offer.id,
                    "tier_id": offer.tier_id,
                    "seat_id": item.seat_id,
                    "seat_label": seat_label,
                    "quantity": item.quantity,
                    "unit_price": offer.price,
                }
            )
        for offer_id, quantity in per_offer.items():
            offer = offers[offer_id]
            if offer.has_quota:
                offer.claim(order_id, quantity)

        order = Order.place(
            order_id=order_id,
            buyer_id=buyer_id,
            event_id=show.id,
            items=order_items,
            currency=currencies.pop(),
            fee_basis_points=self.policy.fee_basis_points,
            fee_fixed=self.policy.fee_fixed,
            at=now,
            hold_until=hold_until,
        )
        touched_offers = [o for o in offers.values() if o.has_quota]
        return [order, *touched_offers, *seats]

    def _has_events(self, aggregate_id: UUID) -> bool:
        return bool(list(self.events.get(aggregate_id, limit=1)))

    def _existing_order(self, order_id: UUID, buyer_id: UUID) -> Order:
        order = self.load(order_id, "order", Order)
        if order.buyer_id != buyer_id:
            raise Conflict("this Idempotency-Key was used for another order", code="idempotency_conflict")
        return order

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
