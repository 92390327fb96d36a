"""The show's lifecycle against the clock: scheduled ahead only, completed after its end,
withdrawn (DELETE) as deleted draft or cancelled show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from domain.errors import Invalid
from domain.event import Event, EventEnded, WrongEventState, lifecycle_status

NOW = datetime(2030, 3, 1, 12, tzinfo=UTC)
START = NOW + timedelta(days=10)
END = START + timedelta(hours=3)


def a_show(now: datetime = NOW, **changes: object) -> Event:
    values: dict[str, object] = {
        "organizer_id": uuid4(),
        "venue_id": uuid4(),
        "title": "Rock Night",
        "description": "",
        "start_time": START,
        "end_time": END,
    }
    values.update(changes)
    return Event.schedule(now=now, **values)  # type: ignore[arg-type]


def published(**changes: Any) -> Event:
    show = a_show(**changes)
    show.add_tier("GA", "general", [], None, set())
    show.publish()
    return show


def test_a_show_cannot_be_created_in_the_past() -> None:
    with pytest.raises(Invalid) as error:
        a_show(start_time=NOW - timedelta(minutes=1), end_time=NOW + timedelta(hours=2))
    assert error.value.field == "start_time"
    with pytest.raises(Invalid) as error:
        a_show(start_time=NOW - timedelta(hours=3), end_time=NOW - timedelta(hours=1))
    assert error.value.field == "start_time"
    assert a_show(start_time=NOW, end_time=NOW + timedelta(hours=1)).status == "draft"


def test_a_show_cannot_be_rescheduled_into_the_past() -> None:
    show = a_show()
    with pytest.raises(Invalid) as error:
        show.update(NOW, start_time=NOW - timedelta(days=1))
    assert error.value.field == "start_time"
    with pytest.raises(Invalid) as error:
        show.update(NOW, start_time=NOW - timedelta(days=1), end_time=NOW - timedelta(hours=20))
    assert error.value.field == "start_time"
    assert show.start_time == START  # nothing recorded
    show.update(NOW, start_time=START + timedelta(days=1), end_time=END + timedelta(days=1))
    assert show.start_time == START + timedelta(days=1)


def test_a_running_show_keeps_its_start_and_may_be_edited_or_extended() -> None:
    show = published()
    during = START + timedelta(hours=1)
    show.update(during, description="Doors at seven")
    show.update(during, end_time=END + timedelta(hours=1))
    with pytest.raises(Invalid):
        show.update(during, end_time=during - timedelta(minutes=1))


def test_a_published_show_is_completed_after_its_end_and_is_no_longer_sold() -> None:
    show = published()
    show.check_on_sale(END - timedelta(seconds=1))
    assert show.status_at(END - timedelta(seconds=1)) == "published"
    assert show.status_at(END) == "completed"
    with pytest.raises(EventEnded) as error:
        show.check_on_sale(END)
    assert error.value.code == "event_ended"
    with pytest.raises(WrongEventState):
        show.cancel("too late", END + timedelta(minutes=5))
    with pytest.raises(WrongEventState):
        show.update(END + timedelta(minutes=5), title="Renamed")


def test_only_a_published_show_completes() -> None:
    assert lifecycle_status("draft", END, END + timedelta(days=1)) == "draft"
    assert lifecycle_status("cancelled", END, END + timedelta(days=1)) == "cancelled"
    assert lifecycle_status("published", END, END + timedelta(days=1)) == "completed"


def test_withdrawing_deletes_a_draft_and_cancels_a_published_show() -> None:
    draft = a_show()
    draft.withdraw(NOW)
    assert draft.status == "deleted"
    show = published()
    show.withdraw(NOW)
    assert show.status == "cancelled"
    with pytest.raises(WrongEventState):
        show.withdraw(NOW)
    over = published()
    with pytest.raises(WrongEventState):
        over.withdraw(END + timedelta(hours=1))
