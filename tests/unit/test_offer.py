from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import Conflict, Invalid
from domain.offer import NotOnSale, Offer, OrderLimit, SoldOut

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def ga_offer(quantity: int = 10, **terms: object) -> Offer:
    values: dict[str, object] = {
        "event_id": uuid4(),
        "tier_id": uuid4(),
        "tier_kind": "general",
        "name": "Standing",
        "price": 4500,
        "currency": "EUR",
        "quantity_for_sale": quantity,
        "sale_start_time": None,
        "sale_end_time": None,
        "min_per_order": 1,
        "max_per_order": 10,
    }
    values.update(terms)
    return Offer.define(**values)


def test_claiming_more_than_is_left_is_sold_out() -> None:
    offer = ga_offer(3)
    offer.claim(uuid4(), 2)
    with pytest.raises(SoldOut):
        offer.claim(uuid4(), 2)
    assert offer.available == 1


def test_sale_window_and_pause_decide_whether_an_order_may_be_placed() -> None:
    offer = ga_offer(sale_start_time=NOW + timedelta(hours=1), sale_end_time=NOW + timedelta(days=1))
    with pytest.raises(NotOnSale):
        offer.check_order(1, NOW)
    offer.check_order(1, NOW + timedelta(hours=2))
    offer.update(status="paused")
    with pytest.raises(NotOnSale):
        offer.check_order(1, NOW + timedelta(hours=2))
    assert offer.sale_status(NOW + timedelta(days=2)) == "ended"


def test_per_order_limits_are_enforced() -> None:
    offer = ga_offer(min_per_order=2, max_per_order=4)
    with pytest.raises(OrderLimit):
        offer.check_order(1, NOW)
    with pytest.raises(OrderLimit):
        offer.check_order(5, NOW)
    offer.check_order(3, NOW)


def test_incoherent_terms_are_rejected() -> None:
    with pytest.raises(Invalid):
        ga_offer(price=-1)
    with pytest.raises(Invalid):
        ga_offer(min_per_order=5, max_per_order=2)
    with pytest.raises(Invalid):
        ga_offer(quantity_for_sale=None)


def test_quantity_cannot_drop_below_what_is_already_claimed() -> None:
    offer = ga_offer(5)
    offer.claim(uuid4(), 4)
    with pytest.raises(Conflict):
        offer.update(quantity_for_sale=3)


operations = st.lists(
    st.tuples(st.sampled_from(["claim", "release", "sell", "return", "sell_unheld"]), st.integers(1, 6)),
    max_size=60,
)


@given(quantity=st.integers(0, 30), ops=operations)
def test_inventory_is_never_negative_nor_oversold(quantity: int, ops: list[tuple[str, int]]) -> None:
    offer = ga_offer(quantity)
    for op, n in ops:
        action = {
            "claim": offer.claim,
            "release": offer.release,
            "sell": offer.sell,
            "return": offer.take_back,
            "sell_unheld": offer.sell_unheld,
        }[op]
        with contextlib.suppress(Conflict, Invalid):
            action(uuid4(), n)
        assert offer.held >= 0
        assert offer.sold >= 0
        assert offer.held + offer.sold <= quantity
        assert offer.available is not None and offer.available >= 0


def kinds(offer: Offer) -> list[str]:
    return [type(e).__name__ for e in offer.collect_events()]


def test_changing_terms_records_what_changed() -> None:
    offer = ga_offer(10)
    offer.collect_events()
    start, end = NOW + timedelta(days=1), NOW + timedelta(days=9)
    offer.update(name="Early bird", price=3900, quantity_for_sale=20, sale_start_time=start, sale_end_time=end,
                 max_per_order=6, status="paused")  # fmt: skip
    events = offer.collect_events()
    assert [type(e).__name__ for e in events] == [
        "Renamed", "Repriced", "QuantityChanged", "SaleWindowChanged", "LimitsChanged", "Paused",
    ]  # fmt: skip
    repriced, limits = events[1], events[4]
    assert isinstance(repriced, Offer.Repriced) and isinstance(limits, Offer.LimitsChanged)
    # A price comes with its currency, a limit with the other limit.
    assert (repriced.price, repriced.currency) == (3900, "EUR")
    assert (limits.min_per_order, limits.max_per_order) == (1, 6)
    assert (offer.name, offer.price, offer.available, offer.sale_end_time, offer.status) == (
        "Early bird", 3900, 20, end, "paused",
    )  # fmt: skip

    offer.update(status="on_sale", currency="GBP")
    assert kinds(offer) == ["Repriced", "Resumed"]
    assert (offer.price, offer.currency, offer.status) == (3900, "GBP", "on_sale")
    offer.update(sale_end_time=None)
    assert kinds(offer) == ["SaleWindowChanged"]
    assert (offer.sale_start_time, offer.sale_end_time) == (start, None)


def test_terms_that_do_not_change_record_nothing() -> None:
    offer = ga_offer(10, sale_end_time=NOW)
    offer.collect_events()
    offer.update()
    offer.update(name="Standing", price=4500, currency="EUR", quantity_for_sale=10, sale_end_time=NOW,
                 min_per_order=1, status="on_sale")  # fmt: skip
    assert kinds(offer) == []


def test_refused_terms_record_nothing() -> None:
    offer = ga_offer(5)
    offer.claim(uuid4(), 4)
    offer.collect_events()
    with pytest.raises(Conflict) as below:
        offer.update(name="Fewer", quantity_for_sale=3)
    assert (below.value.code, below.value.field) == ("quantity_below_claimed", "quantity_for_sale")
    with pytest.raises(Invalid) as status:
        offer.update(price=100, status="sold_out")
    assert (status.value.code, status.value.field) == ("invalid", "status")
    with pytest.raises(Invalid):
        offer.update(held=0)
    assert kinds(offer) == [] and (offer.name, offer.price) == ("Standing", 4500)
