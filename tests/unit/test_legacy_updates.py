"""Edits stored as `Updated(changes)` before the intent events still replay, under their old
topics; the intent events that replaced them decode through the mapper's fast path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from commands.mapper import EventDecoder
from domain.event import Event
from domain.offer import Offer
from domain.venue import Venue
from tests.unit.test_event_and_venue import START, a_show
from tests.unit.test_offer import ga_offer

NOW = datetime(2026, 12, 1, 7, tzinfo=UTC)


@pytest.fixture
def app() -> Application[UUID]:
    """An in-memory store read through the application's own mapper (fast path and fallback)."""
    return Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo", "MAPPER_TOPIC": "commands.mapper:FastMapper"})


def replay_with_legacy_update(app: Application[UUID], aggregate: Aggregate, changes: dict[str, Any]) -> Any:
    """Store the aggregate's events followed by an old `Updated(changes)`, and load it back."""
    legacy = type(aggregate).Updated(  # type: ignore[attr-defined]
        originator_id=aggregate.id, originator_version=aggregate.version + 1, timestamp=NOW, changes=changes
    )
    stored = [app.mapper.to_stored_event(e) for e in (*aggregate.collect_events(), legacy)]
    assert stored[-1].topic == f"domain.{type(aggregate).__name__.lower()}:{type(aggregate).__name__}.Updated"
    app.recorder.insert_events(stored)
    return app.repository.get(aggregate.id)


def test_an_old_show_edit_still_replays(app: Application[UUID]) -> None:
    show = a_show()
    segment = uuid4()
    changes = {"title": "New Title", "end_time": START + timedelta(hours=5), "days": ["2027-01-10"],
               "segment_id": segment}  # fmt: skip
    loaded: Event = replay_with_legacy_update(app, show, changes)
    assert (loaded.title, loaded.end_time, loaded.days, loaded.segment_id) == (
        "New Title", START + timedelta(hours=5), ["2027-01-10"], segment,
    )  # fmt: skip
    assert (loaded.description, loaded.version) == ("", 2)


def test_an_old_offer_edit_still_replays(app: Application[UUID]) -> None:
    offer = ga_offer(10)
    changes = {"name": "General", "price": 2500, "status": "paused", "sale_end_time": NOW + timedelta(days=3)}
    loaded: Offer = replay_with_legacy_update(app, offer, changes)
    assert (loaded.name, loaded.price, loaded.status, loaded.sale_end_time) == (
        "General", 2500, "paused", NOW + timedelta(days=3),
    )  # fmt: skip
    assert (loaded.currency, loaded.available, loaded.version) == ("EUR", 10, 2)


def test_an_old_venue_edit_still_replays(app: Application[UUID]) -> None:
    venue = Venue(name="Old Hall", address="1 Old Road", city="Leeds", country="GB", capacity=100)
    changes = {"name": "Renamed Hall", "city": "York", "latitude": 53.96, "active": False}
    loaded: Venue = replay_with_legacy_update(app, venue, changes)
    assert (loaded.name, loaded.city, loaded.latitude, loaded.active) == ("Renamed Hall", "York", 53.96, False)
    assert (loaded.address, loaded.longitude, loaded.version) == ("1 Old Road", None, 2)


def test_intent_events_decode_through_the_fast_path() -> None:
    app = Application[UUID](env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    decoder = EventDecoder(app.mapper)
    show = a_show()
    show.update(title="T", description="D", days=["2027-01-10"], venue_id=uuid4(), genre_id=uuid4())
    offer = ga_offer(10)
    offer.update(name="N", price=1, quantity_for_sale=9, sale_start_time=NOW, max_per_order=4,
                 status="paused")  # fmt: skip
    offer.update(status="on_sale")
    venue = Venue(name="Hall", address="", city="", country="GB", capacity=0)
    venue.update(name="H", city="York", capacity=5, longitude=-1.08, timezone="Europe/London", active=False)
    venue.update(active=True)
    events = [e for agg in (show, offer, venue) for e in agg.collect_events()[1:]]
    assert {type(e).__qualname__ for e in events} == {
        "Event.Retitled", "Event.Described", "Event.Rescheduled", "Event.Relocated", "Event.Categorised",
        "Offer.Renamed", "Offer.Repriced", "Offer.QuantityChanged", "Offer.SaleWindowChanged", "Offer.LimitsChanged",
        "Offer.Paused", "Offer.Resumed",
        "Venue.Renamed", "Venue.AddressChanged", "Venue.CapacityChanged", "Venue.Located", "Venue.TimeZoneChanged",
        "Venue.Deactivated", "Venue.Reactivated",
    }  # fmt: skip
    for event in events:
        stored = app.mapper.to_stored_event(event)
        got, expected = decoder.decode(stored), app.mapper.to_domain_event(stored)
        assert type(got) is type(expected) and got.__dict__ == expected.__dict__, stored.topic
    assert decoder.fallbacks == 0
