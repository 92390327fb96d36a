"""Placing an order: whether a buyer's request can be held, and holding it.

An order names items (an offer and a quantity, or an offer and a seat). It may be placed only if
all of them can be held together: one show, on sale; one currency; each seat sold by its item's
offer and named once; per-order limits and the offers' sale windows; GA quantity left; seats
free. The order is checked completely before anything changes, so a refused order leaves every
offer and seat exactly as it found them, and a placed one changes exactly the offers and seats
it returns (to be saved with it, atomically).

Pure: the aggregates come from `find`, which raises `NotFound` for unknown ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar
from uuid import UUID

from domain.errors import Invalid
from domain.event import Event
from domain.offer import Offer
from domain.order import Order, OrderItem
from domain.seat import Seat

T = TypeVar("T")


@dataclass(frozen=True)
class ItemRequest:
    """One line of a request: `quantity` of a GA offer, or one `seat_id` of a seated offer."""

    offer_id: UUID
    quantity: int = 1
    seat_id: UUID | None = None


@dataclass(frozen=True)
class SalesPolicy:
    """How long a placed order holds its inventory, and the service fee on its total."""

    hold_seconds: int = 900
    fee_basis_points: int = 0
    fee_fixed: int = 0


class Find(Protocol):
    def __call__(self, aggregate_id: UUID, what: str, cls: type[T], /) -> T:
        """The aggregate of that class with that id; `NotFound` (code `<what>_not_found`) if none."""
        ...


def place_order(
    *,
    order_id: UUID,
    buyer_id: UUID,
    items: list[ItemRequest],
    find: Find,
    policy: SalesPolicy,
    now: datetime,
    serial: int | None = None,
) -> tuple[Order, list[Offer | Seat]]:
    """Check the request completely, then (only then) hold its inventory.

    Returns the new order and the offers and seats it changed; raises the domain error that
    refuses it (`Invalid`, `NotFound`, `SoldOut`, `SeatTaken`, `NotOnSale`, `OrderLimit` ...).
    """
    if not items:
        raise Invalid("an order needs at least one item", field="items")
    offers = {i.offer_id: find(i.offer_id, "offer", Offer) for i in items}
    event_ids = {o.event_id for o in offers.values()}
    if len(event_ids) != 1:
        raise Invalid("all items of an order must be for one event", field="items")
    show = find(event_ids.pop(), "event", Event)
    show.check_on_sale(now)
    currencies = {o.currency for o in offers.values()}
    if len(currencies) != 1:
        raise Invalid("all items of an order must share one currency", field="items")

    per_offer: dict[UUID, int] = {}
    seats: dict[UUID, Seat] = {}
    for item in items:
        offer = offers[item.offer_id]
        if item.quantity <= 0:
            raise Invalid("quantity must be positive", field="items")
        if offer.is_seated and item.seat_id is None:
            raise Invalid(f"offer {offer.name!r} is seated: choose a seat_id", field="items")
        if not offer.is_seated and item.seat_id is not None:
            raise Invalid(f"offer {offer.name!r} is general admission: no seat_id", field="items")
        if item.seat_id is not None:
            if item.quantity != 1:
                raise Invalid("a seat item has quantity 1", field="items")
            seat = find(item.seat_id, "seat", Seat)
            if seat.event_id != offer.event_id or seat.tier_id != offer.tier_id:
                raise Invalid(f"seat {seat.label} is not sold by offer {offer.name!r}", field="items")
            if seat.id in seats:
                raise Invalid("the same seat appears twice", field="items")
            seat.check_hold()
            seats[seat.id] = seat
        per_offer[item.offer_id] = per_offer.get(item.offer_id, 0) + item.quantity
    for offer_id, quantity in per_offer.items():
        offers[offer_id].check_order(quantity, now)
        if offers[offer_id].has_quota:
            offers[offer_id].check_claim(quantity)

    hold_until = now + timedelta(seconds=policy.hold_seconds)
    order_items: list[OrderItem] = []
    for item in items:
        offer = offers[item.offer_id]
        seat_obj = seats.get(item.seat_id) if item.seat_id else None
        order_items.append(
            {
                "offer_id": offer.id,
                "tier_id": offer.tier_id,
                "seat_id": item.seat_id,
                "seat_label": f"{seat_obj.section} {seat_obj.row}-{seat_obj.label}" if seat_obj else None,
                "quantity": item.quantity,
                "unit_price": offer.price,
            }
        )
    order = Order.place(
        order_id=order_id,
        buyer_id=buyer_id,
        event_id=show.id,
        items=order_items,
        currency=currencies.pop(),
        fee_basis_points=policy.fee_basis_points,
        fee_fixed=policy.fee_fixed,
        at=now,
        hold_until=hold_until,
        serial=serial,
    )
    # Everything was checked above, so none of these can fail half-way through the order.
    touched: list[Offer | Seat] = []
    for seat in seats.values():
        seat.hold(order.id, hold_until)
        touched.append(seat)
    for offer_id, quantity in per_offer.items():
        if offers[offer_id].has_quota:
            offers[offer_id].claim(order.id, quantity)
            touched.append(offers[offer_id])
    return order, touched


def same_items(order: Order, items: list[ItemRequest]) -> bool:
    """Whether `order` is what these items would place (same offers, seats and quantities, in order):
    a request repeated with its Idempotency-Key, as opposed to a key reused for another order."""
    return [(i["offer_id"], i["seat_id"], i["quantity"]) for i in order.items] == [
        (i.offer_id, i.seat_id, i.quantity) for i in items
    ]
