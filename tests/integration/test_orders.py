"""Placing, cancelling and expiring orders against the real event store."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from uuid import uuid4

import pytest

from commands.base import utcnow
from commands.boxoffice import BoxOffice
from commands.claims import ClaimRequest, Placed
from domain.offer import Offer, SoldOut
from domain.placement import ItemRequest
from domain.seat import Seat, SeatTaken
from tests.integration.conftest import OnSale
from ticketing import Settings, open_boxoffice


def test_second_buyer_of_a_held_seat_gets_seat_taken(boxoffice: BoxOffice, on_sale: OnSale) -> None:
    seat = on_sale.seats[0]
    order, created = boxoffice.place_order(uuid4(), [ItemRequest(on_sale.seat_offer, 1, seat)])
    assert created and order.status == "held"
    with pytest.raises(SeatTaken):
        boxoffice.place_order(uuid4(), [ItemRequest(on_sale.seat_offer, 1, seat)])


def test_a_seat_contested_from_two_processes_is_held_once(settings: Settings, on_sale: OnSale) -> None:
    """Two applications (own caches, own locks) race for every seat; the store lets one win."""
    apps = [open_boxoffice(settings), open_boxoffice(settings)]

    def grab(n: int) -> str:
        app = apps[n % 2]
        try:
            app.place_order(uuid4(), [ItemRequest(on_sale.seat_offer, 1, on_sale.seats[n % len(on_sale.seats)])])
        except SeatTaken:
            return "taken"
        return "held"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(grab, range(40)))
    assert results.count("held") == len(on_sale.seats)
    holders = {apps[0].load(s, "seat", Seat).order_id for s in on_sale.seats}
    assert None not in holders and len(holders) == len(on_sale.seats)
    for app in apps:
        app.close()


def test_cancel_returns_inventory_at_once(boxoffice: BoxOffice, on_sale: OnSale) -> None:
    order, _ = boxoffice.place_order(
        uuid4(), [ItemRequest(on_sale.ga_offer, 4), ItemRequest(on_sale.seat_offer, 1, on_sale.seats[1])]
    )
    assert boxoffice.load(on_sale.ga_offer, "offer", Offer).held == 4
    boxoffice.cancel_order(order.id)
    assert boxoffice.load(on_sale.ga_offer, "offer", Offer).held == 0
    assert boxoffice.load(on_sale.seats[1], "seat", Seat).status == "available"


def test_expiry_returns_inventory_and_repeats_do_nothing(boxoffice: BoxOffice, on_sale: OnSale) -> None:
    order, _ = boxoffice.place_order(
        uuid4(), [ItemRequest(on_sale.ga_offer, 10), ItemRequest(on_sale.seat_offer, 1, on_sale.seats[2])]
    )
    with pytest.raises(SoldOut):
        boxoffice.place_order(uuid4(), [ItemRequest(on_sale.ga_offer, 1)])
    assert boxoffice.expire_hold(order.id) is False  # not yet lapsed
    later = utcnow() + timedelta(minutes=16)
    assert boxoffice.expire_hold(order.id, at=later) is True
    assert boxoffice.expire_hold(order.id, at=later) is False
    assert boxoffice.get_order(order.id).status == "expired"
    again, _ = boxoffice.place_order(
        uuid4(), [ItemRequest(on_sale.ga_offer, 10), ItemRequest(on_sale.seat_offer, 1, on_sale.seats[2])]
    )
    assert again.status == "held"


def test_idempotency_key_returns_the_first_order(boxoffice: BoxOffice, on_sale: OnSale) -> None:
    buyer = uuid4()
    first, created = boxoffice.place_order(buyer, [ItemRequest(on_sale.ga_offer, 2)], idempotency_key="k-1")
    second, created_again = boxoffice.place_order(buyer, [ItemRequest(on_sale.ga_offer, 2)], idempotency_key="k-1")
    assert created and not created_again and first.id == second.id
    assert boxoffice.load(on_sale.ga_offer, "offer", Offer).held == 2


def test_a_refusal_reaches_its_buyer_without_the_writers_frames(boxoffice: BoxOffice, on_sale: OnSale) -> None:
    """A refused order's error must not carry the writer's traceback: it would tie the batch's
    frame (every request and the ledger) into a reference cycle per refusal, which in an
    on-sale (two refusals in three orders) kept the cyclic collector's oldest generation busy."""
    seat = on_sale.seats[0]
    boxoffice.place_order(uuid4(), [ItemRequest(on_sale.seat_offer, 1, seat)])
    future: Future[Placed] = Future()
    boxoffice.writer.submit(ClaimRequest.new(uuid4(), [ItemRequest(on_sale.seat_offer, 1, seat)], future=future))
    refusal = future.exception(timeout=10)
    assert isinstance(refusal, SeatTaken)
    assert refusal.__traceback__ is None
