"""Refunds on the Order: of tickets (voided, for their price or less), of money only (every
ticket stays valid), never more than was paid, and each refund id or request key once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import Conflict
from domain.order import Order, WrongOrderState
from tests.unit.test_seat_and_order import item, place

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def paid(quantity: int = 3, price: int = 2500) -> Order:
    order = place([item(price, quantity)])
    order.pay("pi_1", order.total, NOW)
    return order


def test_a_money_only_refund_keeps_every_ticket_valid() -> None:
    order = paid()
    order.refund_amount("re_1", 1000, "goodwill", NOW, "key-1")
    assert order.status == "partially_refunded" and order.amount_refunded == 1000
    assert [t["status"] for t in order.tickets] == ["valid"] * 3
    assert order.refundable == 6500
    assert order.refund_of_key("key-1") == "re_1"
    order.refund_amount("re_1", 1000, "goodwill", NOW)  # the same refund recorded again: no change
    assert order.amount_refunded == 1000


def test_a_money_only_refund_is_less_than_what_is_left() -> None:
    order = paid()
    for amount in (0, 7500, 9000):
        with pytest.raises(Conflict) as error:
            order.refund_amount("re_x", amount, "", NOW)
        assert error.value.code == "amount_mismatch"
    assert order.amount_refunded == 0 and order.status == "paid"


def test_tickets_are_refunded_for_at_most_their_price_and_what_is_left() -> None:
    order = paid()
    first, second, third = (t["id"] for t in order.tickets)
    with pytest.raises(Conflict):
        order.refund("re_1", [first], 2600, "", NOW)
    order.refund("re_1", [first], 2000, "keeps a fee", NOW)
    assert order.status == "partially_refunded" and order.amount_refunded == 2000
    order.refund_amount("re_2", 5000, "goodwill", NOW)
    assert order.refundable == 500
    with pytest.raises(Conflict):
        order.refund("re_3", [second, third], 5000, "", NOW)  # only 5.00 is left
    order.refund("re_3", [second, third], 500, "", NOW)
    assert order.status == "refunded" and order.amount_refunded == order.amount_paid
    with pytest.raises(WrongOrderState):
        order.refund_amount("re_4", 1, "", NOW)


def test_only_paid_orders_are_refunded() -> None:
    order = place([item(1000, 1)])
    with pytest.raises(WrongOrderState):
        order.refund_amount("re_1", 100, "", NOW)
    order.cancel(NOW + timedelta(minutes=1))
    with pytest.raises(WrongOrderState):
        order.refund_amount("re_1", 100, "", NOW)


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 8000)), max_size=12))
def test_never_more_refunded_than_paid(steps: list[tuple[bool, int]]) -> None:
    order = paid()
    for n, (by_ticket, amount) in enumerate(steps):
        try:
            if by_ticket and order.valid_tickets():
                ticket = order.valid_tickets()[0]
                order.refund(f"re_{n}", [ticket["id"]], min(amount, ticket["price"], order.refundable), "", NOW)
            else:
                order.refund_amount(f"re_{n}", amount, "", NOW)
        except (Conflict, WrongOrderState):
            pass
        assert 0 <= order.amount_refunded <= order.amount_paid
        assert (order.status == "refunded") == (not order.valid_tickets())
