"""Human order numbers: short, unambiguous, one per serial."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from hypothesis import given
from hypothesis import strategies as st

from commands.mapper import FastMapper
from domain.order import Order
from domain.order_number import ALPHABET, LENGTH, normalise_order_number, order_number

SERIALS = st.integers(min_value=1, max_value=(1 << 40) - 1)


def test_numbers_are_eight_unambiguous_characters() -> None:
    assert not set("01OI") & set(ALPHABET) and len(ALPHABET) == 32
    for serial in (1, 2, 3, 1000, (1 << 40) - 1):
        number = order_number(serial)
        assert len(number) == LENGTH and set(number) <= set(ALPHABET)


def test_consecutive_serials_give_unrelated_numbers_and_never_the_same() -> None:
    numbers = [order_number(serial) for serial in range(1, 100_001)]
    assert len(set(numbers)) == len(numbers)
    assert sum(a[:4] == b[:4] for a, b in itertools.pairwise(numbers)) < 100


@given(SERIALS, SERIALS)
def test_distinct_serials_have_distinct_numbers(a: int, b: int) -> None:
    assert (order_number(a) == order_number(b)) == (a == b)


def test_serials_out_of_range_are_refused() -> None:
    for serial in (0, -1, 1 << 40):
        with pytest.raises(ValueError):
            order_number(serial)


def test_a_typed_number_is_normalised() -> None:
    number = order_number(42)
    assert normalise_order_number(f" {number[:4].lower()}-{number[4:]} ") == number
    assert normalise_order_number("ABC") is None
    assert normalise_order_number("0OOO1III") is None


def test_an_order_carries_the_number_of_its_serial() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    item = {"offer_id": uuid4(), "tier_id": uuid4(), "seat_id": None, "seat_label": None, "quantity": 1,
            "unit_price": 500}  # fmt: skip
    order = Order.place(order_id=uuid4(), buyer_id=uuid4(), event_id=uuid4(), items=[item],  # type: ignore[list-item]
                        currency="EUR", fee_basis_points=0, fee_fixed=0, at=now, hold_until=now + timedelta(minutes=15),
                        serial=7)  # fmt: skip
    assert order.number == order_number(7)
    assert order.collect_events()[0].number == order_number(7)  # type: ignore[attr-defined]


def test_an_order_placed_before_numbering_reads_back_without_a_number() -> None:
    app: Application[UUID] = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    now = datetime(2030, 1, 1, tzinfo=UTC)
    item = {"offer_id": uuid4(), "tier_id": uuid4(), "seat_id": None, "seat_label": None, "quantity": 2,
            "unit_price": 500}  # fmt: skip
    order = Order.place(order_id=uuid4(), buyer_id=uuid4(), event_id=uuid4(), items=[item],  # type: ignore[list-item]
                        currency="EUR", fee_basis_points=0, fee_fixed=0, at=now, hold_until=now)  # fmt: skip
    stored = app.mapper.to_stored_event(order.collect_events()[0])
    state = json.loads(stored.state)
    state.pop("number")  # as stored before orders had numbers
    old = StoredEvent(stored.originator_id, stored.originator_version, stored.topic, json.dumps(state).encode())
    for mapper in (app.mapper, FastMapper(transcoder=app.mapper.transcoder)):
        event = mapper.to_domain_event(old)
        again = event.mutate(None)  # type: ignore[attr-defined]
        assert again.number is None and again.total == 1000
