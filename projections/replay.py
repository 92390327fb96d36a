"""Rebuilding read models from the event store: every event read and decoded once per group of
models, applied in one transaction (readers see the old tables until it commits)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Tracking
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Identifier

from projections.apply import TRANSIENT, record_error
from projections.base import ERRORS_TABLE, ReadModel
from projections.readahead import ahead

log = logging.getLogger("projections")


def replay(
    app: Application[Any],
    projections: list[ReadModel[Any]],
    page: int = 5000,
    max_id: int | None = None,
    *,
    locked: Callable[[], None] = lambda: None,
    before_commit: Callable[[dict[str, int]], None] = lambda applied: None,
    read_up_to: Callable[[int], None] = lambda position: None,
) -> dict[str, int]:
    """Rebuild these models from the events up to `max_id` (default: the last) in one transaction.

    `locked` is called once their locks are held and their tables recreated; `before_commit`
    with the counts just before the commit (raising there rolls everything back); `read_up_to`
    with the store position each page reached (a progress bar).
    """
    topics = sorted({t for p in projections for t in p.handled_topics()})
    applied = dict.fromkeys((p.name for p in projections), 0)
    try:
        with projections[0].view.datastore.transaction(commit=True) as curs:
            # A rebuild may wait for its siblings in other processes before committing.
            curs.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            for projection in projections:
                view = projection.view
                view.lock(curs)
                view.drop(curs)
                view.tracking_table_exists = False
                view.create_for_rebuild(curs)  # same transaction: nobody sees the tables missing
            # The rebuild replays every event again: what was set aside is tried afresh.
            curs.execute(f"DELETE FROM {ERRORS_TABLE} WHERE model = ANY(%s)", ([p.name for p in projections],))
            locked()
            if max_id is None:
                max_id = app.recorder.max_notification_id() or 0
            for events in read_pages(app, topics, max_id, page):
                for projection in projections:
                    applied[projection.name] += _replay_page(curs, app, projection, events)
                read_up_to(events[-1][0].id)
            read_up_to(max_id)
            for projection in projections:
                projection.view.finish_rebuild(curs)
            if max_id:
                for projection in projections:
                    projection.view.record_position(curs, Tracking(app.name, max_id))
            before_commit(applied)
    finally:
        for projection in projections:
            projection.view.abandon_rebuild()
    return applied


def _replay_page(curs: Cursor[DictRow], app: Application[Any], projection: ReadModel[Any], events: list[Any]) -> int:
    """Apply one page of a rebuild to one model under a savepoint; if it fails, event by event,
    setting aside (in the rebuild's transaction) each event the model cannot apply."""
    handlers = projection.handlers()
    mine = [(n, e) for n, e in events if n.topic in handlers]
    if not mine:
        return 0
    try:
        with curs.connection.transaction(), projection.view.batch(curs):
            for n, domain_event in mine:
                handlers[n.topic](_event(domain_event), Tracking(app.name, n.id))
        return len(mine)
    except TRANSIENT:
        raise
    except Exception:  # noqa: BLE001 - isolated event by event below
        log.warning("rebuilding %s: a page failed; applying it event by event", projection.name)
    applied = 0
    for n, domain_event in mine:
        try:
            with curs.connection.transaction(), projection.view.batch(curs):
                handlers[n.topic](_event(domain_event), Tracking(app.name, n.id))
            applied += 1
        except TRANSIENT:
            raise
        except Exception as error:  # noqa: BLE001 - set aside and reported, as the live runner does
            record_error(curs, projection.name, n, error)
            log.error("rebuilding %s: set aside the event at position %d: %r", projection.name, n.id, error)
    return applied


def _event(decoded: Any) -> Any:
    """The decoded event, or the error decoding it raised (raised here, for the model it concerns)."""
    if isinstance(decoded, BaseException):
        raise decoded
    return decoded


class Stored(NamedTuple):
    """A notification as the replay reads it (the fields of the library's `Notification`)."""

    id: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


def read_pages(
    app: Application[Any], topics: list[str], max_id: int, page: int, *, after: int = 0, read_ahead: bool = False
) -> Iterator[list[tuple[Stored, Any]]]:
    """The store's events with these topics after `after` up to `max_id`, decoded, a page at a time.

    Each page is one short query (keyset pagination on the notification id; binary results in
    tuples, cheaper than the recorder's dict rows and frozen dataclasses), so no transaction
    stays open on the reading connection. With `read_ahead`, the next pages are fetched in a
    thread while this one is decoded (`projections/readahead.py`).
    """
    decode: Callable[[Any], Any] = app.mapper.to_domain_event  # commands.mapper.FastMapper
    pages = _fetch_pages(app, topics, max_id, page, after)
    for rows in ahead(pages) if read_ahead else pages:
        yield [(n, _decoded(decode, n)) for n in rows]


def _fetch_pages(
    app: Application[Any], topics: list[str], max_id: int, page: int, after: int
) -> Iterator[list[Stored]]:
    recorder: Any = app.recorder
    query = SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {schema}.{table} "
        "WHERE notification_id > %s AND notification_id <= %s AND topic = ANY(%s) "
        "ORDER BY notification_id LIMIT %s"
    ).format(schema=Identifier(recorder.datastore.schema), table=Identifier(recorder.events_table_name))
    last = after
    while last < max_id:
        with recorder.datastore.get_connection() as conn, conn.cursor(binary=True, row_factory=tuple_row) as read:
            read.execute(query, (last, max_id, topics, page), prepare=True)
            rows = [Stored(*row) for row in read.fetchall()]
        if not rows:
            return
        last = rows[-1].id
        yield rows


def _decoded(decode: Callable[[Any], Any], stored: Stored) -> Any:
    """The event, or the exception decoding it raised (it only fails the models that handle it)."""
    try:
        return decode(stored)
    except Exception as error:  # noqa: BLE001 - handed on, and raised where it matters
        return error
