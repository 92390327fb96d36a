"""Every event names the account that caused it (`actor_id`), set once per command by
`acting_as`; events stored before actors were recorded still decode, on the fast path, to an
unknown actor (None)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent

from commands.base import BaseApplication, acting_as
from commands.mapper import EventDecoder
from domain.audit import Audited, actor_of
from domain.event import Event
from domain.order import Order
from domain.venue import Venue
from tests.unit.test_event_decoding import a_sale, check

ENV = {"PERSISTENCE_MODULE": "eventsourcing.popo", "MAPPER_TOPIC": "commands.mapper:FastMapper"}


@pytest.fixture
def app() -> BaseApplication:
    return BaseApplication(env=ENV)


def without_actor(stored: StoredEvent) -> StoredEvent:
    """The event as stored before actors were recorded: no `actor_id` at all."""
    state = stored.state
    for text in (b',"actor_id":null', b'"actor_id":null,'):
        state = state.replace(text, b"")
    assert b"actor_id" not in state
    return StoredEvent(stored.originator_id, stored.originator_version, stored.topic, state)


def test_every_aggregates_events_carry_an_actor_field() -> None:
    events = a_sale()
    assert events and all(isinstance(e, Audited.Event) for e in events)
    assert all(e.actor_id is None for e in events)  # triggered outside any command


def test_events_saved_while_acting_name_the_actor_and_others_the_system(app: BaseApplication) -> None:
    organizer, editor = uuid4(), uuid4()
    show = a_show(organizer)
    with acting_as(organizer):
        app.save(show)
    show.update(description="changed")
    show.add_attraction("Opening act")
    with acting_as(editor):
        app.save(show)
    show.update(title="By the system")
    app.save(show)  # outside a command: the system (workers, the claim writer)
    recorded = list(app.events.get(show.id))
    assert [(type(e).__name__, actor_of(e)) for e in recorded] == [
        ("Created", organizer),
        ("Described", editor),
        ("AttractionAdded", editor),
        ("Retitled", None),
    ]


def test_events_with_an_actor_decode_on_the_fast_path(app: BaseApplication) -> None:
    actor = uuid4()
    events = [e for e in a_sale() if not free_form(e)]  # free-form fields are the mapper's anyway
    assert {Order.Placed, Order.Paid, Order.Refunded, Event.Published} <= {type(e) for e in events}
    for e in events:
        object.__setattr__(e, "actor_id", actor)
    decoder = EventDecoder(app.mapper)
    plain = Application[UUID](env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    for e in events:
        stored = app.mapper.to_stored_event(e)
        assert b'"actor_id":{"_type_":"uuid_hex"' in stored.state
        check(plain, decoder, stored)
        assert decoder.decode(stored).actor_id == actor
    assert decoder.fallbacks == 0


def test_events_stored_before_actors_decode_on_the_fast_path_to_an_unknown_actor(app: BaseApplication) -> None:
    events = [e for e in a_sale() if not free_form(e)]
    decoder = EventDecoder(app.mapper)
    plain = Application[UUID](env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    for e in events:
        old = without_actor(app.mapper.to_stored_event(e))
        check(plain, decoder, old)  # the same object the library's mapper makes
        decoded = decoder.decode(old)
        assert "actor_id" not in vars(decoded) and decoded.actor_id is None
        assert actor_of(decoded) == (decoded.buyer_id if isinstance(decoded, Order.Placed) else None)
    assert decoder.fallbacks == 0


def test_an_order_is_placed_by_its_buyer_unless_an_actor_is_named() -> None:
    placed = next(e for e in a_sale() if isinstance(e, Order.Placed))
    assert actor_of(placed) == placed.buyer_id
    admin = uuid4()
    object.__setattr__(placed, "actor_id", admin)
    assert actor_of(placed) == admin


def free_form(event: object) -> bool:
    """Event classes with free-form fields, which the mapper decodes (see `commands/mapper.py`)."""
    return type(event) in (Event.Updated, Venue.LayoutSet)


def a_show(organizer: UUID) -> Event:
    start = datetime(2031, 1, 1, 20, tzinfo=UTC)
    return Event.schedule(
        organizer_id=organizer, venue_id=uuid4(), title="Show", description="",
        start_time=start, end_time=start + timedelta(hours=2),
    )  # fmt: skip
