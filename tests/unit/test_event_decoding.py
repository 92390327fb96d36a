"""The fast event decoder (and the mapper built on it) gives exactly what the library's mapper gives."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent

from commands.mapper import EventDecoder, FastMapper
from domain.event import Event
from domain.offer import Offer
from domain.order import Order, OrderItem
from domain.seat import Seat, materialise_seats
from domain.venue import Venue

NOW = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def app() -> Application[UUID]:
    return Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 == 1.0 would not do)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return bool(a.keys() == b.keys()) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, datetime):
        return bool(a == b and a.tzinfo == b.tzinfo and a.utcoffset() == b.utcoffset())
    equal: bool = a == b
    return equal


def check(app: Application[UUID], decoder: EventDecoder, stored: StoredEvent) -> None:
    expected = app.mapper.to_domain_event(stored)
    got = decoder.decode(stored)
    assert type(got) is type(expected)
    assert same(got.__dict__, expected.__dict__), stored.topic


def a_sale() -> list[Any]:
    """The events of a show's life: venue, show, tiers, offers, seats, and orders in every state."""
    venue = Venue(name="Hall", address="1 Road", city="Oslo", country="NO", capacity=0, latitude=59.9,
                  longitude=None, timezone="Europe/Oslo")  # fmt: skip
    row = [{"label": str(n), "x": n, "y": 1.5, "accessible": n == 1} for n in range(1, 5)]
    venue.set_layout([{"name": "Floor", "rows": [{"label": "A", "seats": row}]}])
    show = Event.schedule(
        organizer_id=uuid4(), venue_id=venue.id, title="Jazz — ½ price", description='quotes " and \\ and \u2603',
        start_time=NOW + timedelta(days=3), end_time=NOW + timedelta(days=3, hours=2),
    )  # fmt: skip
    show.update(description="changed")
    sections = venue.section_ids()
    seated = show.add_tier("Seats", "seated", sorted(sections), None, sections)
    standing = show.add_tier("Standing", "general", [], "2026-06-04", sections)
    seat_offer = Offer.define(
        event_id=show.id, tier_id=seated, tier_kind="seated", name="Seat", price=6500, currency="EUR",
        quantity_for_sale=None, sale_start_time=None, sale_end_time=None, min_per_order=1, max_per_order=10,
    )  # fmt: skip
    ga = Offer.define(
        event_id=show.id, tier_id=standing, tier_kind="general", name="Standing", price=3500, currency="EUR",
        quantity_for_sale=100, sale_start_time=NOW, sale_end_time=NOW + timedelta(days=2), min_per_order=1,
        max_per_order=10,
    )  # fmt: skip
    show.publish()
    seats = materialise_seats(show, venue)
    orders = []
    for n, seat in enumerate(seats):
        order_id = uuid4()
        seat.hold(order_id, NOW + timedelta(minutes=15))
        ga.claim(order_id, 2)
        items: list[OrderItem] = [
            {"offer_id": seat_offer.id, "tier_id": seated, "seat_id": seat.id, "seat_label": "A-1", "quantity": 1,
             "unit_price": 6500},
            {"offer_id": ga.id, "tier_id": standing, "seat_id": None, "seat_label": None, "quantity": 2,
             "unit_price": 3500},
        ]  # fmt: skip
        order = Order.place(
            order_id=order_id, buyer_id=uuid4(), event_id=show.id, items=items, currency="EUR",
            fee_basis_points=100, fee_fixed=0, at=NOW, hold_until=NOW + timedelta(minutes=15),
        )  # fmt: skip
        orders.append(order)
        if n == 0:
            order.start_payment("pi_1", NOW, extend_by=timedelta(minutes=30), cap=timedelta(minutes=45))
            order.record_payment_failure("pi_1", "declined")
            order.pay("pi_1", order.total, NOW)
            seat.sell(order.id)
            ga.sell(order.id, 2)
            first, second = order.tickets[0]["id"], order.tickets[1]["id"]
            order.transfer(first, order.buyer_id, uuid4())
            order.check_in(second, 0, uuid4(), NOW)
            order.refund("re_1", [order.tickets[2]["id"]], order.tickets[2]["price"], "requested", NOW)
        elif n == 1:
            order.expire(NOW + timedelta(hours=1))
            seat.release(order.id)
            ga.release(order.id, 2)
        elif n == 2:
            order.cancel(NOW)
            seat.release(order.id)
            ga.release(order.id, 2)
    seats[2].block()
    return [e for agg in (venue, show, seat_offer, ga, *seats, *orders) for e in agg.collect_events()]


def test_every_event_of_a_sale_decodes_as_the_mapper_decodes_it(app: Application[UUID]) -> None:
    decoder = EventDecoder(app.mapper)
    events = a_sale()
    for event in events:
        check(app, decoder, app.mapper.to_stored_event(event))
    # The fast path did the work: only classes with free-form fields (a venue's layout; a
    # stored legacy `Updated` would too) went to the mapper.
    assert decoder.fallbacks == sum(type(e) in (Event.Updated, Venue.LayoutSet) for e in events)
    assert {type(e) for e in events} >= {Order.Placed, Order.Paid, Order.Refunded, Seat.Held, Seat.Created}


def with_state(stored: StoredEvent, old: bytes, new: bytes) -> StoredEvent:
    assert old in stored.state
    return replace(stored, state=stored.state.replace(old, new, 1))


def test_values_that_do_not_fit_the_annotations_still_decode_as_the_mapper_decodes_them(
    app: Application[UUID],
) -> None:
    decoder = EventDecoder(app.mapper)
    seat = Seat(event_id=uuid4(), key="F/A/1", tier_id=uuid4(), section_id="s", section="Floor", row="A",
                label="1", x=2, y=0.5, accessible=False, day=None)  # fmt: skip
    order_id = uuid4()
    seat.hold(order_id, datetime(2026, 6, 1, 12, tzinfo=timezone(timedelta(hours=5, minutes=30))))
    seat.sell(order_id)
    created, held, sold = (app.mapper.to_stored_event(e) for e in seat.collect_events())
    tag = f'{{"_type_":"uuid_hex","_data_":"{order_id.hex}"}}'.encode()
    cases = [
        created,  # x=2 is an int although annotated float: stays an int
        held,  # a +05:30 offset
        with_state(held, b"+05:30", b""),  # a naive datetime
        with_state(held, b"+05:30", b"+05:30:15"),  # an offset with seconds (the mapper's job)
        with_state(created, b'"section":"Floor"', b'"section":' + tag),  # a UUID where a str is annotated
        with_state(sold, tag, f'"{order_id.hex}"'.encode()),  # a str where a UUID is annotated
        with_state(sold, tag, b'{"_type_":"decimal_str","_data_":"1.5"}'),  # another transcoding
        with_state(sold, b'"order_id"', b'"extra":1,"order_id"'),  # a field the class does not have
        with_state(created, b'"label":"1",', b""),  # a field missing
        with_state(created, b'"label":"1"', b'"label":"{\\"_type_\\":\\"uuid_hex\\"}"'),  # a tag-like string
        with_state(created, b'"x":2', b'"x":2e400'),  # a number out of float range
    ]
    for stored in cases:
        check(app, decoder, stored)
    assert decoder.fallbacks >= 5


def test_the_fast_mapper_is_the_application_mapper_with_the_fast_path(app: Application[UUID]) -> None:
    """Configured through MAPPER_TOPIC, the application's own mapper decodes via the fast path,
    and what it stores and loads is what the library's mapper stores and loads."""
    fast_app = Application[UUID](
        env={"PERSISTENCE_MODULE": "eventsourcing.popo", "MAPPER_TOPIC": "commands.mapper:FastMapper"}
    )
    mapper = fast_app.mapper
    assert isinstance(mapper, FastMapper)
    events = a_sale()
    for event in events:
        stored = mapper.to_stored_event(event)
        assert stored == app.mapper.to_stored_event(event)
        check(app, mapper.decoder, stored)
        expected = app.mapper.to_domain_event(stored)
        got = mapper.to_domain_event(stored)
        assert type(got) is type(expected) and same(got.__dict__, expected.__dict__)
    # Decoded twice per event above (check and to_domain_event): the free-form classes fell back.
    assert mapper.decoder.fallbacks == 2 * sum(type(e) in (Event.Updated, Venue.LayoutSet) for e in events)
    # An aggregate saved and loaded through the application comes back equal.
    seat = Seat(event_id=uuid4(), key="F/A/1", tier_id=uuid4(), section_id="s", section="Floor", row="A",
                label="1", x=2, y=0.5, accessible=False, day=None)  # fmt: skip
    seat.hold(uuid4(), NOW)
    fast_app.save(seat)
    loaded: Seat = fast_app.repository.get(seat.id)
    assert same(vars(loaded), vars(seat))
