"""Applying events to read models: in batches, exactly once, and without ever being stopped by
an event a model cannot apply (it is set aside, reported and retried after a fix)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import InterfaceError, Notification, OperationalError, Tracking
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg_pool import PoolTimeout

from projections.base import ERRORS_TABLE, ReadModel, ReadModelView, lock_and_position

log = logging.getLogger("projections")

# Failures that say nothing about the events: the connection or the server went away (the
# library's wrappers of psycopg's, and the pool's timeout). The batch is tried again later, whole;
# anything else is a failure of the events themselves.
TRANSIENT: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, PoolTimeout)


def apply_batch(
    projections: Sequence[ReadModel[Any]], app: Application[Any], notifications: Sequence[Notification]
) -> int:
    """Apply a batch of notifications to several read models, exactly once, in one transaction.

    A model that may (`idle_position_seconds`) skips a batch that holds nothing for it.

    Each notification is decoded at most once, however many models handle it. Under each read
    model's lock, events at or below its recorded position are skipped, so a rebuild racing with
    the live runner can never apply an event twice. Returns how many (model, event) pairs were new.

    If the batch fails for a reason other than the connection (`TRANSIENT`, raised to the
    caller), each model applies it on its own, and a model that fails splits it until the one
    event it cannot apply is found: that event is set aside (`read.projection_errors`, model,
    position, error; see `set_aside`) and the model moves past it. So one event a read model
    cannot apply never stops the others, nor that model's later events.
    """
    if not notifications:
        return 0
    projections = [p for p in projections if not _skips(p, app, notifications)]
    if not projections:
        return 0
    decoded: dict[int, Any] = {}
    try:
        return _apply(projections, app, notifications, decoded)
    except TRANSIENT:
        raise
    except Exception:  # any failure of the events: isolated below, never swallowed
        log.warning("a batch of %d events failed; applying it model by model", len(notifications), exc_info=True)
    return sum(_isolate(projection, app, notifications, decoded) for projection in projections)


def _skips(projection: ReadModel[Any], app: Application[Any], notifications: Sequence[Notification]) -> bool:
    """True when `projection` leaves this batch's position unrecorded (see
    `ReadModelView.idle_position_seconds`): none of its events is one it handles, and it recorded
    a position recently enough. The position is noted as skipped."""
    view = projection.view
    seconds = view.idle_position_seconds
    if seconds is None or time.monotonic() - view.position_recorded_at >= seconds:
        return False
    handlers = projection.handlers()
    if any(n.topic in handlers for n in notifications):
        return False
    view.skipped = Tracking(app.name, notifications[-1].id)
    return True


def record_skipped_positions(projections: Sequence[ReadModel[Any]]) -> None:
    """Record the positions that skipped batches left unrecorded (the runner, once no event has
    come for a while), under each model's lock and never moving a position back."""
    for projection in projections:
        view = projection.view
        skipped = view.skipped
        if skipped is None:
            continue
        with view.datastore.transaction(commit=True) as curs:
            if _locked_behind(view, curs, skipped):
                view.record_position(curs, skipped)
        if view.skipped is skipped:
            view.skipped = None


def _apply(
    projections: Sequence[ReadModel[Any]],
    app: Application[Any],
    notifications: Sequence[Notification],
    decoded: dict[int, Any],
) -> int:
    decode = app.mapper.to_domain_event

    def event_of(notification: Notification) -> Any:
        if notification.id not in decoded:
            decoded[notification.id] = decode(notification)
        return decoded[notification.id]

    applied = 0
    touched: list[ReadModelView] = []
    with projections[0].view.datastore.transaction(commit=True) as curs:
        positions = lock_and_position(curs, [p.view for p in projections], app.name)
        for projection, position in zip(projections, positions, strict=True):
            view: ReadModelView = projection.view
            fresh = [n for n in notifications if n.id > position]
            if not fresh:
                continue
            handlers = projection.handlers()
            with view.batch(curs, last=Tracking(app.name, fresh[-1].id)):
                for notification in fresh:
                    handler = handlers.get(notification.topic)
                    if handler is not None:
                        handler(event_of(notification), Tracking(app.name, notification.id))
            applied += len(fresh)
            touched.append(view)
    for view in touched:
        view.committed()
    return applied


def _isolate(
    projection: ReadModel[Any], app: Application[Any], notifications: Sequence[Notification], decoded: dict[int, Any]
) -> int:
    """Apply to one model, halving the batch around whatever fails, down to the event to set aside."""
    try:
        return _apply([projection], app, notifications, decoded)
    except TRANSIENT:
        raise
    except Exception as error:  # noqa: BLE001 - recorded and reported by set_aside
        if len(notifications) == 1:
            return set_aside(projection, app, notifications[0], error)
    half = len(notifications) // 2
    return _isolate(projection, app, notifications[:half], decoded) + _isolate(
        projection, app, notifications[half:], decoded
    )


def set_aside(
    projection: ReadModel[Any], app: Application[Any], notification: Notification, error: BaseException
) -> int:
    """Record that `projection` cannot apply `notification` and move its position past it (one
    transaction). Returns 1 if it was set aside, 0 if the model had already passed it."""
    view = projection.view
    with view.datastore.transaction(commit=True) as curs:
        if not _locked_behind(view, curs, Tracking(app.name, notification.id)):
            return 0
        record_error(curs, projection.name, notification, error)
        view.record_position(curs, Tracking(app.name, notification.id))
    log.error(
        "read model %s set aside the event at position %d (%s of %s): %s",
        projection.name, notification.id, notification.topic, notification.originator_id, _describe(error),
    )  # fmt: skip
    return 1


def _locked_behind(view: ReadModelView, curs: Cursor[DictRow], tracking: Tracking) -> bool:
    """Take the model's lock; True if its position is still before `tracking` (a position is
    never moved back, nor an event passed twice)."""
    view.lock(curs)
    return view.position(curs, tracking.application_name) < tracking.notification_id


def record_error(curs: Cursor[DictRow], model: str, notification: Any, error: BaseException) -> None:
    curs.execute(
        f"""INSERT INTO {ERRORS_TABLE} (model, notification_id, topic, originator_id, originator_version, error)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (model, notification_id) DO UPDATE SET error = excluded.error,
              attempts = {ERRORS_TABLE}.attempts + 1, last_failed_at = now()""",
        (model, notification.id, notification.topic, notification.originator_id, notification.originator_version,
         _describe(error)),
    )  # fmt: skip


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000].replace("\x00", "\\x00")


def errors_of(curs: Cursor[DictRow], models: Sequence[str] | None = None, limit: int = 1000) -> list[DictRow]:
    """Events set aside, oldest first (all models, or the given ones)."""
    if models is None:
        curs.execute(f"SELECT * FROM {ERRORS_TABLE} ORDER BY notification_id, model LIMIT %s", (limit,))
    else:
        curs.execute(
            f"SELECT * FROM {ERRORS_TABLE} WHERE model = ANY(%s) ORDER BY notification_id LIMIT %s",
            (list(models), limit),
        )
    return curs.fetchall()


def retry_set_aside(projection: ReadModel[Any], app: Application[Any]) -> tuple[int, int]:
    """Apply again the events this model set aside (after a fix); returns (applied, still failing).

    They are applied after the events that followed them, so this suits events that stand on
    their own (a venue, a show); when in doubt, rebuild the model, which replays everything in
    order and clears its list."""
    view = projection.view
    with view.datastore.transaction(commit=True) as curs:
        rows = errors_of(curs, [projection.name])
    applied = failing = 0
    handlers = projection.handlers()
    for row in rows:
        found = app.recorder.select_notifications(start=row["notification_id"], limit=1)
        notification = found[0] if found and found[0].id == row["notification_id"] else None
        try:
            with view.datastore.transaction(commit=True) as curs:
                view.lock(curs)
                if notification is not None:
                    handler = handlers.get(notification.topic)
                    if handler is not None:
                        with view.batch(curs):
                            handler(app.mapper.to_domain_event(notification), Tracking(app.name, notification.id))
                curs.execute(
                    f"DELETE FROM {ERRORS_TABLE} WHERE model = %s AND notification_id = %s",
                    (projection.name, row["notification_id"]),
                )
        except TRANSIENT:
            raise
        except Exception as error:  # noqa: BLE001 - still failing: recorded again, reported by the caller
            failing += 1
            with view.datastore.transaction(commit=True) as curs:
                record_error(curs, projection.name, notification or _Missing(row), error)
            continue
        applied += 1
        view.committed()
    return applied, failing


class _Missing:
    """The fields of a set-aside event whose notification could not be read back."""

    def __init__(self, row: DictRow) -> None:
        self.id = row["notification_id"]
        self.topic = row["topic"]
        self.originator_id = row["originator_id"]
        self.originator_version = row["originator_version"]
