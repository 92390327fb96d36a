from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import Conflict, Gone, Invalid
from domain.order import Order, OrderItem, WrongOrderState, compute_fee
from domain.seat import Seat, SeatTaken

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def a_seat() -> Seat:
    return Seat(
        event_id=uuid4(), key="Floor/A/1", tier_id=uuid4(), section_id="s", section="Floor",
        row="A", label="1", x=0.0, y=0.0, accessible=False, day=None,
    )  # fmt: skip


def test_second_buyer_of_a_held_seat_gets_seat_taken() -> None:
    seat = a_seat()
    first, second = uuid4(), uuid4()
    seat.hold(first, NOW)
    with pytest.raises(SeatTaken):
        seat.hold(second, NOW)
    seat.release(first)
    seat.hold(second, NOW)
    assert seat.order_id == second


def test_only_the_holding_order_can_buy_or_release_the_seat() -> None:
    seat = a_seat()
    holder, other = uuid4(), uuid4()
    seat.hold(holder, NOW)
    with pytest.raises(Conflict):
        seat.release(other)
    with pytest.raises(SeatTaken):
        seat.sell(other)
    seat.sell(holder)
    assert seat.status == "sold"
    with pytest.raises(SeatTaken):
        seat.hold(other, NOW)


@given(st.lists(st.tuples(st.sampled_from(["hold", "release", "sell", "return"]), st.integers(0, 3)), max_size=40))
def test_a_seat_belongs_to_at_most_one_order(ops: list[tuple[str, int]]) -> None:
    seat = a_seat()
    orders = [uuid4() for _ in range(4)]
    for op, who in ops:
        order = orders[who]
        with contextlib.suppress(Conflict):
            {"hold": lambda o: seat.hold(o, NOW), "release": seat.release, "sell": seat.sell, "return": seat.take_back}[
                op
            ](order)
        if seat.status in ("held", "sold"):
            assert seat.order_id in orders
        else:
            assert seat.order_id is None


def item(price: int, quantity: int, seat: bool = False) -> OrderItem:
    return {
        "offer_id": uuid4(),
        "tier_id": uuid4(),
        "seat_id": uuid4() if seat else None,
        "seat_label": None,
        "quantity": 1 if seat else quantity,
        "unit_price": price,
    }


def place(items: list[OrderItem], fee_bp: int = 0, fee_fixed: int = 0) -> Order:
    return Order.place(
        order_id=uuid4(), buyer_id=uuid4(), event_id=uuid4(), items=items, currency="EUR",
        fee_basis_points=fee_bp, fee_fixed=fee_fixed, at=NOW, hold_until=NOW + timedelta(minutes=15),
    )  # fmt: skip


@given(
    st.lists(st.tuples(st.integers(0, 100_000), st.integers(1, 10), st.booleans()), min_size=1, max_size=20),
    st.integers(0, 2_000),
    st.integers(0, 500),
)
def test_order_totals_add_up(lines: list[tuple[int, int, bool]], fee_bp: int, fee_fixed: int) -> None:
    order = place([item(p, q, s) for p, q, s in lines], fee_bp, fee_fixed)
    assert order.subtotal == sum(i["unit_price"] * i["quantity"] for i in order.items)
    assert order.fees == compute_fee(order.subtotal, fee_bp, fee_fixed)
    assert order.total == order.subtotal + order.fees
    assert order.fees >= 0


def test_fee_is_percentage_rounded_up_plus_fixed_and_zero_for_free_orders() -> None:
    assert compute_fee(10_000, 250, 30) == 280
    assert compute_fee(101, 100, 0) == 2
    assert compute_fee(0, 250, 30) == 0


def test_hold_expires_only_after_its_deadline_and_only_once() -> None:
    order = place([item(1000, 2)])
    with pytest.raises(Conflict):
        order.expire(NOW + timedelta(minutes=5))
    order.expire(NOW + timedelta(minutes=15))
    assert order.status == "expired"
    with pytest.raises(WrongOrderState):
        order.expire(NOW + timedelta(minutes=30))
    with pytest.raises(WrongOrderState):
        order.cancel(NOW + timedelta(minutes=30))


def test_an_order_cannot_hold_the_same_seat_twice_or_be_empty() -> None:
    seat_item = item(1000, 1, seat=True)
    with pytest.raises(Invalid):
        place([seat_item, dict(seat_item)])  # type: ignore[list-item]
    with pytest.raises(Invalid):
        place([])


@given(st.lists(st.integers(1, 20 * 60), min_size=1, max_size=30))
def test_paying_never_keeps_a_hold_past_its_cap(gaps: list[int]) -> None:
    """However often a buyer (re)starts paying, the hold ends at the latest `cap` after placing."""
    order = place([item(1000, 1)])
    extend, cap = timedelta(minutes=10), timedelta(minutes=30)
    at = NOW
    for gap in gaps:
        at += timedelta(seconds=gap)
        if order.is_hold_lapsed(at):
            with pytest.raises(Gone):
                order.start_payment("pi_1", at, extend_by=extend, cap=cap)
            break
        before = order.hold_expires_at
        order.start_payment("pi_1", at, extend_by=extend, cap=cap)
        assert before <= order.hold_expires_at <= NOW + cap
    assert order.hold_expires_at <= NOW + cap


def test_starting_a_payment_gives_the_buyer_time_once() -> None:
    order = place([item(1000, 1)])  # held until NOW + 15 min
    extend, cap = timedelta(minutes=10), timedelta(minutes=25)
    order.start_payment("pi_1", NOW + timedelta(minutes=14), extend_by=extend, cap=cap)
    assert order.hold_expires_at == NOW + timedelta(minutes=24)
    order.start_payment("pi_1", NOW + timedelta(minutes=23), extend_by=extend, cap=cap)
    assert order.hold_expires_at == NOW + timedelta(minutes=25)
    with pytest.raises(Gone):
        order.start_payment("pi_1", NOW + timedelta(minutes=25), extend_by=extend, cap=cap)
