"""The audit trail: the stored events of some aggregates, oldest first, a page at a time.

Read from the event store itself (not a read model), through the store's primary key
(originator, version) for each aggregate named, ordered by the store's position, so every page
costs what those aggregates hold, not what the store holds. Events are decoded by the
application's mapper (the fast decoder, `commands/mapper.py`), as the aggregates see them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import TopicError
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier


class Recorded(NamedTuple):
    """One stored event: its position in the store, its aggregate and version, its topic, and
    the event as decoded (None if its class can no longer decode it)."""

    position: int
    aggregate_id: UUID
    version: int
    topic: str
    event: Any


def history(
    app: Application[Any],
    ids: Sequence[UUID],
    *,
    offset: int,
    limit: int,
    some_of: Sequence[UUID] = (),
    topics: Sequence[str] = (),
) -> tuple[list[Recorded], int]:
    """(a page of the events of the aggregates `ids`, and of the aggregates `some_of` only those
    with one of `topics`, oldest first; how many there are in all)."""
    recorder: Any = app.recorder
    table = SQL("{}.{}").format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
    where = SQL("originator_id = ANY(%(ids)s) OR (originator_id = ANY(%(some)s) AND topic = ANY(%(topics)s))")
    params = {"ids": list(ids), "some": list(some_of), "topics": list(topics), "limit": limit, "offset": offset}
    with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
        curs.execute(SQL("SELECT count(*) FROM {} WHERE {}").format(table, where), params)
        counted = curs.fetchone()
        total = int(counted[0]) if counted else 0
        if offset >= total:
            return [], total
        curs.execute(
            SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state FROM {} WHERE {} "
                "ORDER BY notification_id LIMIT %(limit)s OFFSET %(offset)s"
            ).format(table, where),
            params,
        )
        rows = curs.fetchall()
    return [
        Recorded(n, oid, version, topic, _decoded(app, oid, version, topic, state))
        for n, oid, version, topic, state in rows
    ], total


def _decoded(app: Application[Any], originator_id: UUID, version: int, topic: str, state: Any) -> Any:
    stored = StoredEvent(originator_id=originator_id, originator_version=version, topic=topic, state=bytes(state))
    try:
        return app.mapper.to_domain_event(stored)
    except (TopicError, ValueError, TypeError, LookupError, AttributeError):
        # A class renamed or removed since (a topic that no longer resolves): listed, not decoded.
        return None


# What every event has (the store's columns and the library's bookkeeping): not its data.
_BOOKKEEPING = frozenset({"originator_id", "originator_version", "originator_topic", "timestamp", "actor_id"})


def event_type(recorded: Recorded) -> str:
    """`Order.Placed`: the event's class within its aggregate (from the topic if undecodable)."""
    if recorded.event is None:
        return recorded.topic.rpartition(":")[2]
    return type(recorded.event).__qualname__


def event_data(recorded: Recorded) -> dict[str, Any]:
    """What the event records, as its class decoded it: the one place the audit trail renders an
    event's fields (personal data that must not be shown is replaced here)."""
    if recorded.event is None:
        return {}
    return {name: value for name, value in vars(recorded.event).items() if name not in _BOOKKEEPING}
