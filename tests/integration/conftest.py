from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from commands.boxoffice import BoxOffice
from domain.ids import seat_id
from ticketing import Settings, open_boxoffice


@pytest.fixture
def boxoffice(settings: Settings) -> Iterator[BoxOffice]:
    app = open_boxoffice(settings)
    yield app
    app.close()


@dataclass
class OnSale:
    event_id: UUID
    ga_offer: UUID
    seat_offer: UUID
    seats: list[UUID]


def put_on_sale(app: BoxOffice, *, ga_quantity: int = 10, seats: int = 5, max_per_order: int = 10) -> OnSale:
    """A published event with a GA offer and a one-row seated section."""
    venue = app.create_venue(name=f"Hall {uuid4().hex[:6]}", address="", city="Berlin", country="DE", capacity=0)
    row = [{"label": str(n), "x": n, "y": 1} for n in range(1, seats + 1)]
    venue = app.set_venue_layout(venue.id, [{"name": "Floor", "rows": [{"label": "A", "seats": row}]}])
    start = datetime.now(UTC) + timedelta(days=10)
    show = app.create_event(
        organizer_id=uuid4(), venue_id=venue.id, title="Test show", description="",
        start_time=start, end_time=start + timedelta(hours=2),
    )  # fmt: skip
    ga_tier = app.add_tier(show.id, name="GA", kind="general", section_ids=[])
    seated_tier = app.add_tier(show.id, name="Seats", kind="seated", section_ids=[venue.sections[0]["id"]])
    ga = app.add_offer(show.id, ga_tier, name="GA", price=2500, currency="EUR", quantity_for_sale=ga_quantity,
                       max_per_order=max_per_order)  # fmt: skip
    seated = app.add_offer(show.id, seated_tier, name="Seat", price=4000, currency="EUR", quantity_for_sale=None)
    app.publish_event(show.id)
    return OnSale(show.id, ga.id, seated.id, [seat_id(show.id, f"Floor/A/{n}") for n in range(1, seats + 1)])


@pytest.fixture
def on_sale(boxoffice: BoxOffice) -> OnSale:
    return put_on_sale(boxoffice)
