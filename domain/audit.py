"""Who caused an event: every aggregate here is `Audited`, so each of its events has an
`actor_id` (the account that acted; None for the system: payment webhooks, hold expiry, the
settlement of a cancelled show, waitlist promotion, the CLI).

The field is keyword-only with a default, declared once on the aggregates' base event class:
every event class inherits it (the library redefines each nested event class on its aggregate's
`Event`), no event and no command method names it, and events stored before it existed still
load, reading `actor_id` as None ("actor unknown"). The actor is set where events are saved
(`commands.base.acting_as`), not by the aggregates: a rule about who asked, not about the state.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate


class Audited(Aggregate):
    """Base of every aggregate here: its events carry `actor_id`."""

    class Event(Aggregate.Event):
        actor_id: UUID | None = field(default=None, kw_only=True)

        def acting(self) -> UUID | None:
            """The account that caused this event (an event class may name who acted implicitly)."""
            return self.actor_id


def actor_of(event: Any) -> UUID | None:
    """The account behind a stored event: None for the system and for events stored before
    actors were recorded."""
    acting = getattr(event, "acting", None)
    return acting() if callable(acting) else getattr(event, "actor_id", None)
