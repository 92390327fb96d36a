"""An Order's copy (`Order.__deepcopy__`, what the aggregate cache hands out) is as independent
as `copy.deepcopy` made it: equal state, no list or dict shared at any depth, and changes to
the copy never reach the original."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from commands.base import copy_aggregate
from domain.order import Order, OrderItem

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def a_paid_order() -> Order:
    items: list[OrderItem] = [
        {"offer_id": uuid4(), "tier_id": uuid4(), "seat_id": None, "seat_label": None, "quantity": 2,
         "unit_price": 1000},
        {"offer_id": uuid4(), "tier_id": uuid4(), "seat_id": uuid4(), "seat_label": "A 1-1", "quantity": 1,
         "unit_price": 4000},
    ]  # fmt: skip
    order = Order.place(
        order_id=uuid4(), buyer_id=uuid4(), event_id=uuid4(), items=items, currency="EUR",
        fee_basis_points=500, fee_fixed=30, at=NOW, hold_until=NOW + timedelta(minutes=15),
    )  # fmt: skip
    order.pay("pi_1", order.total, NOW + timedelta(minutes=1))
    order.name_attendees({order.tickets[0]["id"]: "Zoë"}, by=order.buyer_id)
    order.check_in(order.tickets[1]["id"], 0, uuid4(), NOW + timedelta(days=1))
    order.refund("re_1", [order.tickets[2]["id"]], 100, "changed plans", NOW, request_key="k1")
    order.collect_events()
    return order


def _containers(value: Any, path: str = "") -> dict[str, int]:
    """The id of every list and dict in `value`, by where it sits."""
    found: dict[str, int] = {}
    if isinstance(value, (list, dict)):
        found[path] = id(value)
        children = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in children:
            found.update(_containers(child, f"{path}/{key}"))
    return found


def test_a_copy_has_the_same_state_and_shares_no_list_or_dict() -> None:
    order = a_paid_order()
    clone = copy_aggregate(order)
    assert type(clone) is Order and clone is not order
    assert vars(clone) == vars(order)
    original = _containers({k: v for k, v in vars(order).items() if k != "_pending_events"})
    copied = _containers({k: v for k, v in vars(clone).items() if k != "_pending_events"})
    assert original.keys() == copied.keys()
    shared = [path for path in original if path and original[path] == copied[path]]
    assert shared == []


def test_changes_to_a_copy_never_reach_the_original() -> None:
    order = a_paid_order()
    before = copy.deepcopy(vars(order))
    clone = copy.deepcopy(order)
    ticket = clone.tickets[0]["id"]
    clone.transfer(ticket, clone.buyer_id, uuid4())
    clone.refund("re_2", [ticket], 500, "goodwill", NOW)
    clone.refund_amount("re_3", 10, "price drop", NOW)
    clone.items[0]["quantity"] = 99  # even an in-place change (the domain never makes one)
    assert len(clone.collect_events()) == 3
    assert vars(order) == before
    assert order.version == clone.version - 3 and not order.collect_events()


def test_pending_events_are_copied_too() -> None:
    order = a_paid_order()
    order.record_payment_failure("pi_1", "late decline")  # no change: the order is paid
    order.name_attendees({order.tickets[0]["id"]: "Ann"}, by=order.buyer_id)
    clone = copy.deepcopy(order)
    assert [type(e) for e in clone.collect_events()] == [Order.AttendeeNamed]
    assert [type(e) for e in order.collect_events()] == [Order.AttendeeNamed]
