"""Long-running projection runners, rebuilds, and the registry of read models."""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID

from eventsourcing.persistence import Notification, Tracking
from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from commands.boxoffice import BoxOffice
from projections.base import SCHEMA, ReadModel, ReadModelView, apply_batch, decoder_for
from projections.catalog import CatalogProjection
from projections.holds import HoldsProjection
from projections.orders import OrdersProjection
from projections.tickets import TicketsProjection

if TYPE_CHECKING:
    from ticketing import Settings

log = logging.getLogger("projections")

READ_MODELS: dict[str, type[ReadModel[Any]]] = {
    p.name: p for p in (CatalogProjection, OrdersProjection, HoldsProjection, TicketsProjection)
}
BATCH_SIZE = 2000


def open_view(
    settings: Settings, projection_class: type[ReadModel[Any]], *, create_tables: bool = False
) -> ReadModelView:
    env = {
        **settings.eventsourcing_env(create_tables=create_tables),
        "POSTGRES_SCHEMA": SCHEMA,
        "POSTGRES_POOL_SIZE": "2",
    }
    factory = PostgresFactory(Environment(projection_class.name, env))
    return factory.tracking_recorder(projection_class.view_class)


def open_projection(settings: Settings, name: str) -> ReadModel[Any]:
    projection_class = READ_MODELS[name]
    return projection_class(view=open_view(settings, projection_class))


class Runner:
    """Follows the BoxOffice notification log and applies it to read models in batches.

    A reader thread iterates the library's LISTEN/NOTIFY subscription into a queue; the
    applying thread drains whatever has arrived (up to BATCH_SIZE) into one transaction for all
    its read models, decoding each event once. Models that are behind (say, after one was
    rebuilt) are caught up from the earliest position among them.
    """

    def __init__(self, app: BoxOffice, projections: list[ReadModel[Any]]) -> None:
        self.app = app
        self.projections = projections
        self.name = "+".join(p.name for p in projections)
        self.queue: queue.Queue[Notification | None] = queue.Queue(maxsize=BATCH_SIZE * 4)
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        start = min((p.view.max_tracking_id(app.name) or 0) for p in projections)
        self.subscription = app.recorder.subscribe(gt=start)
        self.threads = [
            threading.Thread(target=self._read, name=f"{self.name}-read", daemon=True),
            threading.Thread(target=self._apply, name=f"{self.name}-apply", daemon=True),
        ]

    def start(self) -> None:
        self.subscription.__enter__()
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.subscription.stop()
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=10)

    def _read(self) -> None:
        try:
            for notification in self.subscription:
                self.queue.put(notification)
        except BaseException as error:  # noqa: BLE001 - reported by the supervising loop
            self.error = error
        finally:
            self.stopping.set()
            self.queue.put(None)

    def _apply(self) -> None:
        try:
            while not self.stopping.is_set() or not self.queue.empty():
                first = self.queue.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < BATCH_SIZE:
                    try:
                        item = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        self.stopping.set()
                        break
                    batch.append(item)
                apply_batch(self.projections, self.app, batch)
        except BaseException as error:  # noqa: BLE001 - reported by the supervising loop
            self.error = error
            self.stopping.set()


def run_forever(settings: Settings) -> None:
    """Run every read model until SIGTERM/SIGINT; exit non-zero if one of them fails."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = BoxOffice(env=settings.eventsourcing_env())
    # One runner for all read models: one subscription, one decode and one transaction per batch.
    runners = [Runner(app, [open_projection(settings, name) for name in READ_MODELS])]
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    for runner in runners:
        runner.start()
    log.info("projection runners started: %s", ", ".join(READ_MODELS))
    failed: Runner | None = None
    while not done.wait(0.5):
        failed = next((r for r in runners if r.error is not None), None)
        if failed is not None:
            break
    for runner in runners:
        runner.stop()
    for runner in runners:
        runner.join()
    errors = [r for r in runners if r.error is not None]
    app.close()
    if errors:
        for runner in errors:
            log.error("read models %s failed", runner.name, exc_info=runner.error)
        raise SystemExit(1)


def rebuild(settings: Settings, name: str | None = None, *, page: int = 5000) -> dict[str, int]:
    """Drop and rebuild read models from the event store; returns events applied per model.

    All models are rebuilt in one pass over the store (each event read and decoded once), in
    one transaction holding their locks: the live runner pauses, readers keep seeing the old
    tables until the new ones commit.
    """
    names = [name] if name else list(READ_MODELS)
    unknown = [n for n in names if n not in READ_MODELS]
    if unknown:
        raise SystemExit(f"unknown read model {unknown[0]!r}; known: {', '.join(READ_MODELS)}")
    app = BoxOffice(env=settings.eventsourcing_env())
    projections = [open_projection(settings, model) for model in names]
    try:
        return replay(app, projections, page)
    finally:
        for projection in projections:
            projection.view.datastore.close()
        app.close()


def replay(app: BoxOffice, projections: list[ReadModel[Any]], page: int = 5000) -> dict[str, int]:
    topics = sorted({t for p in projections for t in p.handled_topics()})
    applied = dict.fromkeys((p.name for p in projections), 0)
    with projections[0].view.datastore.transaction(commit=True) as curs:
        for projection in projections:
            view = projection.view
            view.lock(curs)
            view.drop(curs)
            view.tracking_table_exists = False
            view.create_for_rebuild(curs)  # same transaction: nobody sees the tables missing
        max_id = app.recorder.max_notification_id() or 0
        for events in read_pages(app, topics, max_id, page):
            for projection in projections:
                handlers = projection.handlers()
                with projection.view.batch(curs):
                    for n, domain_event in events:
                        handler = handlers.get(n.topic)
                        if handler is not None:
                            handler(domain_event, Tracking(app.name, n.id))
                            applied[projection.name] += 1
        for projection in projections:
            projection.view.create_deferred_indexes(curs)
        if max_id:
            for projection in projections:
                projection.view.record_position(curs, Tracking(app.name, max_id))
    return applied


class Stored(NamedTuple):
    """A notification as the replay reads it (the fields of the library's `Notification`)."""

    id: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


def read_pages(app: BoxOffice, topics: list[str], max_id: int, page: int) -> Iterator[list[tuple[Stored, Any]]]:
    """The store's events with these topics up to `max_id`, decoded, a page at a time.

    Each page is one short query (keyset pagination on the notification id; binary results in
    tuples, cheaper than the recorder's dict rows and frozen dataclasses), so no transaction
    stays open on the reading connection.
    """
    recorder: Any = app.recorder
    decode = decoder_for(app).decode
    query = SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {schema}.{table} "
        "WHERE notification_id > %s AND notification_id <= %s AND topic = ANY(%s) "
        "ORDER BY notification_id LIMIT %s"
    ).format(schema=Identifier(recorder.datastore.schema), table=Identifier(recorder.events_table_name))
    last = 0
    while last < max_id:
        with recorder.datastore.get_connection() as conn, conn.cursor(binary=True, row_factory=tuple_row) as read:
            read.execute(query, (last, max_id, topics, page), prepare=True)
            rows = [Stored(*row) for row in read.fetchall()]
        if not rows:
            return
        last = rows[-1].id
        yield [(n, decode(n)) for n in rows]


def list_positions(settings: Settings) -> dict[str, int]:
    out: dict[str, int] = {}
    for model, projection_class in READ_MODELS.items():
        view = open_view(settings, projection_class)
        out[model] = view.max_tracking_id(BoxOffice.name) or 0
        view.datastore.close()
    return out
