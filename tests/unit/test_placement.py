"""The order-placement rule (domain/placement.py), without a database: aggregates in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import Conflict, DomainError, Invalid, NotFound
from domain.event import Event
from domain.offer import Offer
from domain.placement import ItemRequest, SalesPolicy, place_order, same_items
from domain.seat import Seat

T = TypeVar("T")
NOW = datetime(2031, 3, 1, 12, tzinfo=UTC)
POLICY = SalesPolicy(hold_seconds=900)


class House:
    """A published show with a GA offer, a seated offer over one row, and what `find` returns."""

    def __init__(self, ga_quantity: int = 10, seats: int = 5, max_per_order: int = 10, currency: str = "EUR"):
        start = NOW + timedelta(days=30)
        self.show = Event.schedule(organizer_id=uuid4(), venue_id=uuid4(), title="Show", description="",
                                   start_time=start, end_time=start + timedelta(hours=2))  # fmt: skip
        section = "section-1"
        self.ga_tier = self.show.add_tier("GA", "general", [], None, set())
        self.seat_tier = self.show.add_tier("Seats", "seated", [section], None, {section})
        self.show.publish()
        self.ga = self.offer(self.ga_tier, "general", ga_quantity, max_per_order, currency)
        self.seated = self.offer(self.seat_tier, "seated", None, max_per_order, currency)
        self.seats = [self.seat(section, n) for n in range(1, seats + 1)]
        self.all: dict[UUID, Any] = {a.id: a for a in (self.show, self.ga, self.seated, *self.seats)}

    def seat(self, section: str, n: int) -> Seat:
        return Seat(event_id=self.show.id, key=f"Floor/A/{n}", tier_id=self.seat_tier, section_id=section,
                    section="Floor", row="A", label=str(n), x=float(n), y=1.0)  # fmt: skip

    def offer(self, tier: UUID, kind: str, quantity: int | None, max_per_order: int, currency: str) -> Offer:
        return Offer.define(event_id=self.show.id, tier_id=tier, tier_kind=kind, name=kind.title(), price=2500,
                            currency=currency, quantity_for_sale=quantity, sale_start_time=None, sale_end_time=None,
                            min_per_order=1, max_per_order=max_per_order)  # fmt: skip

    def find(self, aggregate_id: UUID, what: str, cls: type[T]) -> T:
        found = self.all.get(aggregate_id)
        if not isinstance(found, cls):
            raise NotFound(f"{what} not found", code=f"{what}_not_found")
        return found

    def place(self, *items: ItemRequest, buyer: UUID | None = None) -> Any:
        return place_order(order_id=uuid4(), buyer_id=buyer or uuid4(), items=list(items), find=self.find,
                           policy=POLICY, now=NOW)  # fmt: skip

    def versions(self) -> dict[UUID, int]:
        return {i: a.version for i, a in self.all.items()}


def test_a_placed_order_holds_its_seats_and_quantity_and_totals_its_items() -> None:
    house = House()
    order, touched = house.place(ItemRequest(house.ga.id, 2), ItemRequest(house.seated.id, 1, house.seats[0].id))
    assert order.status == "held" and order.hold_expires_at == NOW + timedelta(seconds=900)
    assert order.total == 3 * 2500 and order.ticket_count == 3
    assert house.ga.held == 2 and house.seats[0].status == "held" and house.seats[0].order_id == order.id
    assert {a.id for a in touched} == {house.ga.id, house.seats[0].id}
    assert order.items[1]["seat_label"] == "Floor A-1"


@pytest.mark.parametrize(
    ("case", "error", "code"),
    [
        ("no items", Invalid, "invalid"),
        ("two shows", Invalid, "invalid"),
        ("two currencies", Invalid, "invalid"),
        ("seat of another offer", Invalid, "invalid"),
        ("same seat twice", Invalid, "invalid"),
        ("seat on a GA offer", Invalid, "invalid"),
        ("seated offer without a seat", Invalid, "invalid"),
        ("unknown offer", NotFound, "offer_not_found"),
        ("unknown seat", NotFound, "seat_not_found"),
        ("over the limit", Invalid, "order_limit"),
        ("more than is left", Conflict, "sold_out"),
    ],
)
def test_a_refused_order_changes_nothing(case: str, error: type[DomainError], code: str) -> None:
    house = House(ga_quantity=3, max_per_order=4)
    other = House()
    house.all.update({other.ga.id: other.ga, other.show.id: other.show})
    dollars = house.offer(house.ga_tier, "general", 5, 4, "USD")
    house.all[dollars.id] = dollars
    stranger = Seat(event_id=uuid4(), key="X/1/1", tier_id=uuid4(), section_id="x", section="X", row="1", label="1",
                    x=0.0, y=0.0)  # fmt: skip
    house.all[stranger.id] = stranger
    seat = house.seats[0].id
    items = {
        "no items": [],
        "two shows": [ItemRequest(house.ga.id), ItemRequest(other.ga.id)],
        "two currencies": [ItemRequest(house.ga.id), ItemRequest(dollars.id)],
        "seat of another offer": [ItemRequest(house.seated.id, 1, stranger.id)],
        "same seat twice": [ItemRequest(house.seated.id, 1, seat), ItemRequest(house.seated.id, 1, seat)],
        "seat on a GA offer": [ItemRequest(house.ga.id, 1, seat)],
        "seated offer without a seat": [ItemRequest(house.seated.id)],
        "unknown offer": [ItemRequest(uuid4())],
        "unknown seat": [ItemRequest(house.seated.id, 1, uuid4())],
        "over the limit": [ItemRequest(house.ga.id, 5)],
        "more than is left": [ItemRequest(house.seated.id, 1, seat), ItemRequest(house.ga.id, 4)],
    }[case]
    before = house.versions()
    with pytest.raises(error) as refused:
        house.place(*items)
    assert refused.value.code == code
    assert house.versions() == before  # not even the seat checked first was held


def test_a_taken_seat_is_refused() -> None:
    house = House()
    house.place(ItemRequest(house.seated.id, 1, house.seats[1].id))
    with pytest.raises(Conflict) as taken:
        house.place(ItemRequest(house.seated.id, 1, house.seats[1].id))
    assert taken.value.code == "seat_taken"


def test_a_show_that_is_not_on_sale_sells_nothing() -> None:
    house = House()
    house.show.cancel("weather")
    with pytest.raises(Conflict) as closed:
        house.place(ItemRequest(house.ga.id))
    assert closed.value.code == "event_not_on_sale"


def test_an_idempotent_repeat_is_recognised_by_its_items() -> None:
    house = House()
    items = [ItemRequest(house.ga.id, 2), ItemRequest(house.seated.id, 1, house.seats[2].id)]
    order, _ = house.place(*items)
    assert same_items(order, items)
    assert not same_items(order, items[:1])
    assert not same_items(order, [ItemRequest(house.ga.id, 3), items[1]])


requests = st.lists(
    st.lists(st.tuples(st.booleans(), st.integers(1, 4), st.integers(0, 6)), min_size=1, max_size=3),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(requests)
def test_whatever_buyers_ask_nothing_is_oversold_and_no_seat_is_held_twice(asked: list[list[Any]]) -> None:
    house = House(ga_quantity=12, seats=6, max_per_order=4)
    placed = []
    for lines in asked:
        items = [
            ItemRequest(house.ga.id, quantity) if ga else ItemRequest(house.seated.id, 1, house.seats[n % 6].id)
            for ga, quantity, n in lines
        ]
        before = house.versions()
        try:
            order, _ = house.place(*items)
        except DomainError:
            assert house.versions() == before  # all or nothing
            continue
        placed.append(order)
    ga_sold = sum(i["quantity"] for o in placed for i in o.items if i["seat_id"] is None)
    assert ga_sold == house.ga.held <= 12
    seats = [i["seat_id"] for o in placed for i in o.items if i["seat_id"] is not None]
    assert len(seats) == len(set(seats))
    assert all(s.status == "held" for s in house.seats if s.id in seats)
    assert all(s.status == "available" for s in house.seats if s.id not in seats)
    assert all(o.total == sum(i["unit_price"] * i["quantity"] for i in o.items) for o in placed)
