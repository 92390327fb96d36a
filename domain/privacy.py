"""Personal data in events, and the record that a person was erased.

An event class that carries personal data names those fields in `personal_data` and, in
`personal_owner`, the field holding the id of the person they belong to (`originator_id` when
the aggregate is the person). The store's mapper (`commands/mapper.py`) seals those fields with
that person's key before they are stored and opens them when events are read; the domain only
ever sees the plain values, or `None`/`""` once the person's key is destroyed.

`Erasure` is the fact, in the sales store, that a person was erased: the read models scrub what
they hold of that person when they apply it.
"""

from __future__ import annotations

import typing
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.audit import Audited

# How reports and documents name someone whose data was erased.
ERASED_PERSON = "erased person"

ERASURES = UUID("0b6a2f5e-3f0e-4d7e-9b8a-6c1d2e3f4a5b")


def personal_fields(event_class: type) -> tuple[tuple[str, ...], str]:
    """(the personal fields, the field naming their owner) of an event class; () if none."""
    fields: tuple[str, ...] = getattr(event_class, "personal_data", ())
    return fields, getattr(event_class, "personal_owner", "originator_id")


def erased_values(event_class: type) -> dict[str, str | None]:
    """What each personal field of an event class reads as once its owner is erased: "" or,
    where the field allows it, None."""
    fields, _ = personal_fields(event_class)
    hints = typing.get_type_hints(event_class)
    return {f: None if type(None) in typing.get_args(hints.get(f)) else "" for f in fields}


class Erasure(Audited):
    """A person erased (one per person, so recording it twice is a version conflict, not two facts)."""

    @staticmethod
    def create_id(person_id: UUID, **_: Any) -> UUID:
        return uuid5(ERASURES, str(person_id))

    class Recorded(Aggregate.Created):
        person_id: UUID

    @event(Recorded)
    def __init__(self, person_id: UUID) -> None:
        self.person_id = person_id
