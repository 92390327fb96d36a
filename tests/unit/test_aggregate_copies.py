"""The claim writer copies seats and offers out of the aggregate cache with `copy_aggregate`:
for classes flagged `immutable_state` a new object sharing the attribute values, so those
values must never be mutated in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from commands.base import copy_aggregate
from domain.offer import Offer
from domain.order import Order, OrderItem
from domain.seat import Seat
from tests.unit.test_offer import ga_offer
from tests.unit.test_seat_and_order import a_seat

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
IMMUTABLE = (UUID, str, int, float, bool, datetime, type(None))


def _state(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def _assert_immutable_values(aggregate: Any) -> None:
    for name, value in _state(aggregate).items():
        # A tuple of immutable values is immutable too (the waitlist's kept seats and orders).
        values = value if isinstance(value, tuple) else (value,)
        assert all(isinstance(v, IMMUTABLE) for v in values), (
            f"{type(aggregate).__name__}.{name} holds a {type(value).__name__}"
        )


def test_seats_and_offers_hold_only_immutable_values_through_their_lifecycle() -> None:
    seat = a_seat()
    order = uuid4()
    _assert_immutable_values(seat)
    seat.hold(order, NOW)
    _assert_immutable_values(seat)
    seat.sell(order)
    _assert_immutable_values(seat)
    seat.take_back(order)
    seat.block()
    _assert_immutable_values(seat)

    offer = ga_offer(quantity=10)
    offer.update(name="Early", price=3900, sale_end_time=NOW + timedelta(days=3), status="paused")
    offer.claim(order, 2)
    offer.sell(order, 2)
    offer.take_back(order, 1)
    _assert_immutable_values(offer)
    assert Seat.immutable_state and Offer.immutable_state


def test_a_copy_changes_independently_of_its_original() -> None:
    seat = a_seat()
    seat.collect_events()
    copy = copy_aggregate(seat)
    assert type(copy) is Seat and _state(copy) == _state(seat)
    copy.hold(uuid4(), NOW)
    assert seat.status == "available" and seat.version == 1 and not seat.collect_events()
    assert copy.status == "held" and copy.version == 2 and len(copy.collect_events()) == 1

    offer = ga_offer(quantity=5)
    offer.collect_events()
    claimed = copy_aggregate(offer)
    claimed.claim(uuid4(), 3)
    assert (offer.held, offer.available, offer.version) == (0, 5, 1)
    assert (claimed.held, claimed.available, claimed.version) == (3, 2, 2)


def test_aggregates_without_the_flag_are_copied_deeply() -> None:
    item: OrderItem = {"offer_id": uuid4(), "tier_id": uuid4(), "seat_id": None, "seat_label": None, "quantity": 2,
            "unit_price": 1000}  # fmt: skip
    order = Order.place(
        order_id=uuid4(), buyer_id=uuid4(), event_id=uuid4(), items=[item], currency="EUR",
        fee_basis_points=0, fee_fixed=0, at=NOW, hold_until=NOW + timedelta(minutes=15),
    )  # fmt: skip
    copy = copy_aggregate(order)
    assert not getattr(Order, "immutable_state", False)
    assert copy.items == order.items and copy.items is not order.items
    assert copy.items[0] is not order.items[0]
