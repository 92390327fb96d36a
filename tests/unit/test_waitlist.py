"""The waitlist: its aggregate (first come, first served) and its share of an offer's inventory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import Conflict
from domain.offer import Offer, SoldOut
from domain.seat import Seat, SeatTaken
from domain.waitlist import AlreadyWaiting, Waitlist, waitlist_id, waitlist_order_id
from tests.unit.test_offer import ga_offer

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def sold_out(quantity: int = 4) -> tuple[Offer, list[UUID]]:
    """An offer whose whole quantity is held by one-ticket orders."""
    offer = ga_offer(quantity)
    orders = [uuid4() for _ in range(quantity)]
    for order_id in orders:
        offer.claim(order_id, 1)
    return offer, orders


def test_the_waitlist_of_an_offer_has_one_id() -> None:
    offer_id = uuid4()
    assert Waitlist(offer_id=offer_id, event_id=uuid4()).id == waitlist_id(offer_id)


def test_first_come_first_served_and_one_active_entry_per_person() -> None:
    waitlist = Waitlist(offer_id=uuid4(), event_id=uuid4())
    ann, bob = uuid4(), uuid4()
    first = waitlist.join(ann, 2, NOW)
    second = waitlist.join(bob, 1, NOW)
    with pytest.raises(AlreadyWaiting):
        waitlist.join(ann, 1, NOW)
    assert waitlist.position(first) == 1 and waitlist.position(second) == 2
    with pytest.raises(Conflict):
        waitlist.offer(second, waitlist_order_id(second), NOW)  # not first in line
    waitlist.offer(first, waitlist_order_id(first), NOW + timedelta(minutes=30))
    assert waitlist.position(second) == 1 and waitlist.position(first) is None
    waitlist.lapse(first)
    assert waitlist.entries[first]["status"] == "lapsed"
    again = waitlist.join(ann, 1, NOW)  # a lapsed entry does not keep its owner out
    assert waitlist.position(again) == 2


def test_leaving_moves_everyone_behind_up() -> None:
    waitlist = Waitlist(offer_id=uuid4(), event_id=uuid4())
    entries = [waitlist.join(uuid4(), 1, NOW) for _ in range(3)]
    waitlist.leave(entries[0], NOW)
    assert [waitlist.position(e) for e in entries] == [None, 1, 2]
    with pytest.raises(Conflict):
        waitlist.leave(entries[0], NOW)


def test_released_stock_is_kept_for_the_waitlist_not_the_public() -> None:
    offer, orders = sold_out(4)
    offer.join_waitlist(uuid4(), 2)
    offer.release(orders[0], 1)
    offer.release(orders[1], 1)
    offer.release(orders[2], 1)
    # Two wanted, two kept; the third goes back on sale.
    assert (offer.reserved, offer.available, offer.held) == (2, 1, 1)
    with pytest.raises(SoldOut):
        offer.check_claim(2)
    entry, order_id = uuid4(), uuid4()
    offer.offer_to_waitlist(entry, order_id, 2)
    assert (offer.reserved, offer.waiting, offer.held, offer.waitlist_orders) == (0, 0, 3, (order_id,))


def test_leaving_hands_kept_stock_back_to_the_public() -> None:
    offer, orders = sold_out(2)
    entry = uuid4()
    offer.join_waitlist(entry, 1)
    offer.release(orders[0], 1)
    assert offer.available == 0
    offer.leave_waitlist(entry, 1)
    assert (offer.reserved, offer.available) == (0, 1)


def test_a_refund_and_a_larger_quantity_go_to_the_waitlist_first() -> None:
    offer, orders = sold_out(2)
    offer.sell(orders[0], 1)
    offer.join_waitlist(uuid4(), 3)
    offer.take_back(orders[0], 1)
    assert (offer.reserved, offer.available) == (1, 0)
    offer.update(quantity_for_sale=5)
    assert (offer.reserved, offer.available) == (3, 1)
    with pytest.raises(Conflict):
        offer.update(quantity_for_sale=3)  # below held + reserved


def test_a_seat_is_kept_held_for_the_waitlist_and_returned() -> None:
    seat = Seat(event_id=uuid4(), key="A/1/1", tier_id=uuid4(), section_id="s", section="A", row="1", label="1",
                x=0, y=0)  # fmt: skip
    order_id = uuid4()
    seat.hold(order_id, NOW)
    seat.release(order_id)
    seat.keep_for_waitlist(uuid4())
    with pytest.raises(SeatTaken):
        seat.check_hold()
    seat.hold_for_waitlist(uuid4(), NOW)
    assert seat.status == "held"
    with pytest.raises(SeatTaken):
        seat.keep_for_waitlist(uuid4())


ACTIONS = st.lists(
    st.tuples(st.sampled_from(["claim", "release", "sell", "refund", "join", "leave", "offer", "grow"]),
              st.integers(1, 4)),
    max_size=60,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(ACTIONS)
def test_counters_never_go_negative_nor_past_the_quantity(actions: list[tuple[str, int]]) -> None:
    """Whatever buyers, refunds and the waitlist do: every counter >= 0, reserved <= waiting,
    held + sold + reserved <= quantity, and the public never sees kept stock."""
    offer = ga_offer(8, max_per_order=4)
    held: list[tuple[UUID, int]] = []
    sold: list[tuple[UUID, int]] = []
    waiting: list[tuple[UUID, int]] = []
    for action, n in actions:
        try:
            if action == "claim":
                order_id = uuid4()
                offer.claim(order_id, n)
                held.append((order_id, n))
            elif action == "release" and held:
                order_id, q = held.pop(0)
                offer.release(order_id, q)
            elif action == "sell" and held:
                order_id, q = held.pop(0)
                offer.sell(order_id, q)
                sold.append((order_id, q))
            elif action == "refund" and sold:
                order_id, q = sold.pop(0)
                offer.take_back(order_id, q)
            elif action == "join":
                entry = uuid4()
                offer.join_waitlist(entry, n)
                waiting.append((entry, n))
            elif action == "leave" and waiting:
                entry, q = waiting.pop(-1)
                offer.leave_waitlist(entry, q)
            elif action == "offer" and waiting and offer.can_offer(waiting[0][1]):
                entry, q = waiting.pop(0)
                order_id = uuid4()
                offer.offer_to_waitlist(entry, order_id, q)
                held.append((order_id, q))
            elif action == "grow":
                offer.update(quantity_for_sale=(offer.quantity_for_sale or 0) + n)
        except (SoldOut, Conflict):
            pass
        quantity = offer.quantity_for_sale or 0
        assert min(offer.held, offer.sold, offer.reserved, offer.waiting, offer.available or 0) >= 0
        assert offer.reserved <= offer.waiting == sum(q for _, q in waiting)
        assert offer.held + offer.sold + offer.reserved <= quantity
        assert offer.held == sum(q for _, q in held) and offer.sold == sum(q for _, q in sold)
