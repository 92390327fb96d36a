"""A seat map patched with the seats that changed equals one built from scratch."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg.rows import dict_row

from api.seatmap_cache import SeatMaps
from commands.boxoffice import BoxOffice
from domain.ids import seat_id
from domain.placement import ItemRequest
from projections import queries
from tests.integration.test_projections import catch_up
from ticketing import Settings


def seated_show(app: BoxOffice) -> tuple[UUID, UUID, list[UUID]]:
    """Two sections (the second listed first by name), rows given back to front."""
    venue = app.create_venue(name=f"Hall {uuid4().hex[:6]}", address="", city="Berlin", country="DE", capacity=0)
    layout = [
        {"name": name, "rows": [
            {"label": row, "seats": [{"label": str(n), "x": n, "y": y} for n in range(1, 4)]}
            for row, y in (("B", 2), ("A", 1))
        ]}
        for name in ("Stalls", "Circle")
    ]  # fmt: skip
    venue = app.set_venue_layout(venue.id, layout)
    start = datetime.now(UTC) + timedelta(days=10)
    show = app.create_event(
        organizer_id=uuid4(), venue_id=venue.id, title="Map show", description="",
        start_time=start, end_time=start + timedelta(hours=2),
    )  # fmt: skip
    tier = app.add_tier(show.id, name="Seats", kind="seated", section_ids=[s["id"] for s in venue.sections])
    offer = app.add_offer(show.id, tier, name="Seat", price=4000, currency="EUR", quantity_for_sale=None)
    app.publish_event(show.id)
    names = [f"{section}/{row}/{n}" for section in ("Stalls", "Circle") for row in "AB" for n in (1, 2, 3)]
    seats = [seat_id(show.id, name) for name in names]
    return show.id, offer.id, seats


async def fetch(settings: Settings, maps: SeatMaps, event_id: UUID) -> tuple[int, bytes]:
    async with await psycopg.AsyncConnection.connect(settings.database_url, row_factory=dict_row) as conn:
        head = await queries.seat_map_version(conn, event_id)
        assert head is not None
        return head["version"], await maps.body(conn, event_id, head["layout_version"], head["version"])


def every_seat(body: bytes) -> list[dict[str, Any]]:
    return [s for sec in json.loads(body)["sections"] for r in sec["rows"] for s in r["seats"]]


def statuses(body: bytes) -> dict[str, str]:
    return {s["id"]: s["status"] for s in every_seat(body)}


def test_patched_seat_map_equals_a_fresh_one(settings: Settings, boxoffice: BoxOffice) -> None:
    event_id, offer_id, seats = seated_show(boxoffice)
    catch_up(settings, boxoffice)
    cached = SeatMaps(size=4)
    version, body = asyncio.run(fetch(settings, cached, event_id))
    doc: dict[str, Any] = json.loads(body)
    assert doc["version"] == version and doc["currency"] == "EUR"
    assert [s["name"] for s in doc["sections"]] == ["Circle", "Stalls"]
    assert [r["label"] for r in doc["sections"][0]["rows"]] == ["A", "B"]  # front row first
    assert [s["label"] for s in doc["sections"][0]["rows"][0]["seats"]] == ["1", "2", "3"]
    assert {s["price"] for s in every_seat(body)} == {"40.00"}
    assert set(statuses(body).values()) == {"available"}

    boxoffice.place_order(uuid4(), [ItemRequest(offer_id, 1, seats[0]), ItemRequest(offer_id, 1, seats[7])])
    dropped, _ = boxoffice.place_order(uuid4(), [ItemRequest(offer_id, 1, seats[3])])
    boxoffice.cancel_order(dropped.id)
    catch_up(settings, boxoffice)
    newer, patched = asyncio.run(fetch(settings, cached, event_id))
    assert newer > version
    _, fresh = asyncio.run(fetch(settings, SeatMaps(size=4), event_id))
    assert patched == fresh
    assert json.loads(patched)["version"] == newer
    seen = statuses(patched)
    assert seen[str(seats[0])] == seen[str(seats[7])] == "held"
    assert seen[str(seats[3])] == "available"

    # A price change is a new layout: the map is built again, not patched.
    boxoffice.update_offer(offer_id, {"price": 4500})
    catch_up(settings, boxoffice)
    _, repriced = asyncio.run(fetch(settings, cached, event_id))
    _, fresh = asyncio.run(fetch(settings, SeatMaps(size=4), event_id))
    assert repriced == fresh
    assert {s["price"] for s in every_seat(repriced)} == {"45.00"}
