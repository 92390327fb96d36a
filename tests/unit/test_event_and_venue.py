from __future__ import annotations

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
