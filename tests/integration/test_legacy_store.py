"""A store written before the intent events (edits recorded as `Updated(changes)`) still loads,
still projects, and takes new edits on top of the old ones.

`tests/fixtures/store-before-intent-events.jsonl` is what that code stored: a venue, categories,
a published show with tiers, offers and seats, and a paid order, each edited through `Updated`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from psycopg.rows import dict_row

from commands.base import acting_as
from commands.boxoffice import BoxOffice
from commands.history import event_data, event_type, history
from domain.audit import actor_of
from domain.event import Event
from domain.offer import Offer
from domain.order import Order
from domain.seat import Seat
from domain.venue import Venue
from projections.catalog import CatalogProjection
from projections.models import open_view
from ticketing import Settings, open_boxoffice

STORE = Path(__file__).resolve().parents[1] / "fixtures" / "store-before-intent-events.jsonl"
VENUE = UUID("5eed0000-0000-4000-8000-000000000001")
SHOW = UUID("5eed0000-0000-4000-8000-000000000003")
ORDER = UUID("5eed0000-0000-4000-8000-000000000005")
GA_OFFER = UUID("8f1f33a2-4fd0-4c8a-8596-0b3d16e0d702")
SEAT_OFFER = UUID("ad1e3ecb-312b-49aa-900a-5c3db6e8cd4b")
MUSIC = UUID("ca25d349-d6ed-5329-8b83-510b49f155ff")
JAZZ = UUID("28fdbb73-2efb-54c8-a1e7-1b95b800c029")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def app(settings: Settings) -> Iterator[BoxOffice]:
    app = open_boxoffice(settings)
    yield app
    app.close()


@pytest.fixture(scope="module")
def old_store(app: BoxOffice) -> dict[UUID, int]:
    """The old events, inserted as they were stored; the last version of each aggregate."""
    lines = [json.loads(line) for line in STORE.read_text().splitlines() if line.strip()]
    stored = [
        StoredEvent(
            originator_id=UUID(line["originator_id"]),
            originator_version=line["originator_version"],
            topic=line["topic"],
            state=line["state"].encode(),
        )
        for line in lines
    ]
    assert {"domain.venue:Venue.Updated", "domain.event:Event.Updated", "domain.offer:Offer.Updated"} <= {
        e.topic for e in stored
    }
    app.recorder.insert_events(stored)
    versions: dict[UUID, int] = {}
    for line in lines:
        agg_id = UUID(line["originator_id"])
        versions[agg_id] = max(versions.get(agg_id, 0), line["originator_version"])
    return versions


def caught_up(settings: Settings, app: BoxOffice) -> None:
    """Wait for the live projector (the `service` fixture's) to project everything stored so far."""
    head = app.recorder.max_notification_id() or 0
    view = open_view(settings.eventsourcing_env(), CatalogProjection)
    deadline = time.monotonic() + 30
    try:
        while (view.max_tracking_id(app.name) or 0) < head:
            assert time.monotonic() < deadline, "the live projector did not catch up"
            time.sleep(0.05)
    finally:
        view.datastore.close()


def row(settings: Settings, table: str, row_id: UUID) -> dict[str, Any]:
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        found = conn.execute(f"SELECT * FROM read.{table} WHERE id = %s", (row_id,)).fetchone()
    assert found is not None, (table, row_id)
    return found


def test_every_aggregate_of_the_old_store_loads_with_its_edits(app: BoxOffice, old_store: dict[UUID, int]) -> None:
    # At the versions the old store left them (another test here edits some of them afterwards).
    loaded: dict[UUID, Any] = {
        agg_id: app.repository.get(agg_id, version=version) for agg_id, version in old_store.items()
    }
    assert all(agg.version == old_store[agg_id] for agg_id, agg in loaded.items())

    venue = loaded[VENUE]
    assert isinstance(venue, Venue)
    assert (venue.name, venue.address, venue.city, venue.country) == ("Renamed Hall", "2 New Road", "York", "GB")
    assert (venue.latitude, venue.longitude, venue.timezone, venue.active) == (53.96, -1.08, "Europe/London", True)
    assert (venue.capacity, venue.seat_count) == (2, 2)  # 120 by an edit, then the layout's two seats

    show = loaded[SHOW]
    assert isinstance(show, Event)
    assert (show.title, show.description, show.status) == ("New Title", "second\nline", "published")
    assert (show.start_time, show.end_time) == (at("2032-03-02T19:00"), at("2032-03-02T23:00"))
    assert (show.days, show.timezone) == (["2032-03-02"], "UTC")
    assert (show.segment_id, show.genre_id, show.sub_genre_id, show.venue_id) == (MUSIC, JAZZ, None, VENUE)
    assert sorted(t.name for t in show.tiers.values()) == ["Seats", "Standing room"]

    ga = loaded[GA_OFFER]
    assert isinstance(ga, Offer)
    assert (ga.name, ga.price, ga.currency, ga.status) == ("General", 2500, "GBP", "on_sale")
    assert (ga.quantity_for_sale, ga.min_per_order, ga.max_per_order) == (40, 2, 8)
    assert (ga.sale_start_time, ga.sale_end_time) == (at("2032-01-31T19:00"), at("2032-03-01T18:00"))
    assert (ga.held, ga.sold, ga.available) == (0, 2, 38)

    seated = loaded[SEAT_OFFER]
    assert isinstance(seated, Offer) and (seated.name, seated.price, seated.currency) == ("Seat", 4000, "GBP")
    order = loaded[ORDER]
    assert isinstance(order, Order) and order.status == "paid" and len(order.tickets) == 3
    seats = [agg for agg in loaded.values() if isinstance(agg, Seat)]
    assert sorted(seat.status for seat in seats) == ["available", "sold"]


def test_the_old_store_projects_into_the_read_models(
    service: str, settings: Settings, app: BoxOffice, old_store: dict[UUID, int]
) -> None:
    caught_up(settings, app)

    venue = row(settings, "venues", VENUE)
    assert (venue["name"], venue["address"], venue["city"], venue["country"]) == (
        "Renamed Hall", "2 New Road", "York", "GB",
    )  # fmt: skip
    assert (venue["latitude"], venue["longitude"], venue["timezone"], venue["active"]) == (
        53.96, -1.08, "Europe/London", True,
    )  # fmt: skip
    assert (venue["capacity"], venue["seat_count"]) == (2, 2)

    show = row(settings, "events", SHOW)
    assert (show["title"], show["description"], show["status"]) == ("New Title", "second\nline", "published")
    assert (show["start_time"], show["end_time"]) == (at("2032-03-02T19:00"), at("2032-03-02T23:00"))
    assert (show["days"], show["timezone"]) == (["2032-03-02"], "UTC")
    assert (show["segment_id"], show["genre_id"], show["sub_genre_id"]) == (MUSIC, JAZZ, None)
    # The venue's new name and city reached the listing and its search.
    assert (show["venue_name"], show["city"]) == ("Renamed Hall", "York")
    assert "york" in show["search"] and "title" in show["search"] and "second" in show["search"]
    # The GA offer's price change reached the listing (the seated offer is repriced by another test).
    assert (show["min_price"], show["currency"], show["available"]) == (2500, "GBP", 38 + 1)

    ga = row(settings, "offers", GA_OFFER)
    assert (ga["name"], ga["price"], ga["currency"], ga["status"]) == ("General", 2500, "GBP", "on_sale")
    assert (ga["quantity_for_sale"], ga["min_per_order"], ga["max_per_order"]) == (40, 2, 8)
    assert (ga["sale_start_time"], ga["sale_end_time"]) == (at("2032-01-31T19:00"), at("2032-03-01T18:00"))
    assert (ga["held"], ga["sold"]) == (0, 2)


def test_new_edits_on_top_of_the_old_ones_are_intent_events(
    service: str, settings: Settings, app: BoxOffice, old_store: dict[UUID, int]
) -> None:
    caught_up(settings, app)
    layout_before = row(settings, "events", SHOW)["layout_version"]
    offer_before = app.get_offer(SEAT_OFFER).version

    app.update_offer(SEAT_OFFER, {"name": "Stalls", "price": 4500})
    # Values the old edits already set: nothing to record.
    app.update_event(SHOW, {"title": "New Title", "timezone": "UTC", "days": ["2032-03-02"]})
    app.update_venue(VENUE, {"name": "Renamed Hall", "active": True})

    new = app.recorder.select_events(SEAT_OFFER, gt=offer_before)
    assert [e.topic for e in new] == ["domain.offer:Offer.Renamed", "domain.offer:Offer.Repriced"]
    assert [e.topic for e in app.recorder.select_events(SHOW, gt=old_store[SHOW])] == []
    assert [e.topic for e in app.recorder.select_events(VENUE, gt=old_store[VENUE])] == []

    caught_up(settings, app)
    seated = row(settings, "offers", SEAT_OFFER)
    assert (seated["name"], seated["price"], seated["currency"]) == ("Stalls", 4500, "GBP")
    show = row(settings, "events", SHOW)
    assert show["max_price"] == 4500
    assert show["layout_version"] > layout_before  # a new price: the seat map is built again


def test_the_old_store_reads_as_an_audit_trail_with_unknown_actors(app: BoxOffice, old_store: dict[UUID, int]) -> None:
    """Events stored before actors were recorded: listed, actor unknown; an edit made now by a
    command names its actor, in the same trail."""
    old, total = history(app, [SHOW, SEAT_OFFER], offset=0, limit=1000)
    assert total >= old_store[SHOW] + old_store[SEAT_OFFER]
    assert all(r.event is not None for r in old)
    before = [r for r in old if r.version <= old_store[r.aggregate_id]]
    assert next(event_type(r) for r in before if r.aggregate_id == SHOW) == "Event.Created"
    assert "Event.Updated" in {event_type(r) for r in before}
    assert {actor_of(r.event) for r in before} == {None}
    updated = next(r for r in before if event_type(r) == "Event.Updated")
    assert event_data(updated)["changes"]["title"] == "New Title"

    organizer = UUID(int=7)
    with acting_as(organizer):
        app.update_offer(SEAT_OFFER, {"max_per_order": 9})
    trail, _ = history(app, [SHOW, SEAT_OFFER], offset=0, limit=1000)
    last = trail[-1]
    assert (event_type(last), actor_of(last.event)) == ("Offer.LimitsChanged", organizer)
    assert [r.position for r in trail] == sorted(r.position for r in trail)
