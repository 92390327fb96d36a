from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from domain.errors import Conflict, Invalid
from domain.event import Event, WrongEventState
from domain.venue import Venue

START = datetime(2027, 1, 10, 20, tzinfo=UTC)


def a_show(**changes: object) -> Event:
    values: dict[str, object] = {
        "organizer_id": uuid4(),
        "venue_id": uuid4(),
        "title": "Rock Night",
        "description": "",
        "start_time": START,
        "end_time": START + timedelta(hours=3),
    }
    values.update(changes)
    return Event.schedule(**values)  # type: ignore[arg-type]


def test_an_event_must_end_after_it_starts() -> None:
    with pytest.raises(Invalid):
        a_show(end_time=START)


def test_publishing_needs_a_tier_and_a_draft() -> None:
    show = a_show()
    with pytest.raises(Conflict):
        show.publish()
    show.add_tier("GA", "general", [], None, set())
    show.publish()
    with pytest.raises(WrongEventState):
        show.publish()


def test_published_events_keep_their_venue_and_cancelled_ones_are_frozen() -> None:
    show = a_show()
    show.add_tier("GA", "general", [], None, set())
    show.publish()
    with pytest.raises(WrongEventState):
        show.update(venue_id=uuid4())
    show.update(title="Rock Night II")
    show.cancel()
    with pytest.raises(WrongEventState):
        show.update(title="again")
    with pytest.raises(WrongEventState):
        show.publish()


def test_a_section_belongs_to_one_seated_tier() -> None:
    show = a_show()
    show.add_tier("Front", "seated", ["s1", "s2"], None, {"s1", "s2", "s3"})
    with pytest.raises(Conflict):
        show.add_tier("Back", "seated", ["s2", "s3"], None, {"s1", "s2", "s3"})
    with pytest.raises(Invalid):
        show.add_tier("Nowhere", "seated", ["s9"], None, {"s1", "s2", "s3"})


def layout(*rows: list[str]) -> list[dict[str, object]]:
    return [
        {
            "name": "Floor",
            "rows": [
                {"label": chr(65 + i), "seats": [{"label": s, "x": n, "y": i} for n, s in enumerate(r)]}
                for i, r in enumerate(rows)
            ],
        }
    ]


def test_layout_seat_labels_must_be_unique_within_a_row() -> None:
    venue = Venue(name="Hall", address="", city="", country="", capacity=0)
    with pytest.raises(Invalid):
        venue.set_layout(layout(["1", "2", "2"]))
    venue.set_layout(layout(["1", "2"], ["1", "2"]))
    assert venue.seat_count == 4


def test_layout_coordinates_must_be_finite_and_bounded() -> None:
    venue = Venue(name="Hall", address="", city="", country="", capacity=0)
    bad = layout(["1"])
    bad[0]["rows"][0]["seats"][0]["x"] = float("inf")  # type: ignore[index]
    with pytest.raises(Invalid):
        venue.set_layout(bad)


def kinds(events: Sequence[object]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_editing_a_show_records_what_changed() -> None:
    show = a_show()
    show.collect_events()
    segment, genre = uuid4(), uuid4()
    show.update(
        title="Rock Night II", description="Louder", end_time=START + timedelta(hours=4), venue_id=uuid4(),
        segment_id=segment, genre_id=genre,
    )  # fmt: skip
    events = show.collect_events()
    assert kinds(events) == ["Retitled", "Described", "Rescheduled", "Relocated", "Categorised"]
    rescheduled = events[2]
    assert isinstance(rescheduled, Event.Rescheduled)
    # The whole schedule travels with a change of any part of it.
    assert (rescheduled.start_time, rescheduled.end_time, rescheduled.days, rescheduled.timezone) == (
        START, START + timedelta(hours=4), [], "UTC",
    )  # fmt: skip
    categorised = events[4]
    assert isinstance(categorised, Event.Categorised)
    assert (categorised.segment_id, categorised.genre_id, categorised.sub_genre_id) == (segment, genre, None)
    assert (show.title, show.description, show.segment_id) == ("Rock Night II", "Louder", segment)

    show.update(days=["2027-01-10"], timezone="Europe/Berlin")
    assert kinds(show.collect_events()) == ["Rescheduled"]
    assert (show.days, show.timezone) == (["2027-01-10"], "Europe/Berlin")


def test_a_show_edit_that_changes_nothing_records_nothing() -> None:
    show = a_show()
    show.add_tier("GA", "general", [], None, set())
    show.publish()
    show.collect_events()
    show.update()
    show.update(title=show.title, venue_id=show.venue_id, start_time=show.start_time, days=[], segment_id=None)
    assert show.collect_events() == []


def test_a_refused_show_edit_records_nothing() -> None:
    show = a_show()
    show.collect_events()
    with pytest.raises(Invalid) as refused:
        show.update(title="Moved", start_time=START + timedelta(hours=5))
    assert (refused.value.code, refused.value.field) == ("invalid", "end_time")
    with pytest.raises(Invalid):
        show.update(status="published")
    assert show.collect_events() == [] and show.title == "Rock Night"


def test_editing_a_venue_records_what_changed() -> None:
    venue = Venue(name="Hall", address="1 Road", city="Leeds", country="GB", capacity=100)
    venue.collect_events()
    venue.update(name="Big Hall", city="York", capacity=120, latitude=53.96, timezone="Europe/London", active=False)
    events = venue.collect_events()
    assert kinds(events) == [
        "Renamed",
        "AddressChanged",
        "CapacityChanged",
        "Located",
        "TimeZoneChanged",
        "Deactivated",
    ]
    moved, located = events[1], events[3]
    assert isinstance(moved, Venue.AddressChanged) and isinstance(located, Venue.Located)
    assert (moved.address, moved.city, moved.country) == ("1 Road", "York", "GB")
    assert (located.latitude, located.longitude) == (53.96, None)
    assert not venue.active and venue.city == "York" and venue.capacity == 120

    venue.update(active=True, name="Big Hall", country="GB")
    assert kinds(venue.collect_events()) == ["Reactivated"]
    assert venue.active
    venue.update(**{k: getattr(venue, k) for k in ("name", "address", "city", "latitude", "timezone", "active")})
    assert venue.collect_events() == []
