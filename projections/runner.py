"""Long-running projection runners, rebuilds, and the registry of read models."""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID

from eventsourcing.persistence import Notification, Tracking
from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Identifier

from commands import heap
from commands.boxoffice import BoxOffice
from projections.base import (
    ERRORS_TABLE,
    SCHEMA,
    TRANSIENT,
    ReadModel,
    ReadModelView,
    apply_batch,
    errors_of,
    record_error,
    retry_set_aside,
)
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
    """Run every read model until SIGTERM/SIGINT.

    Events a model cannot apply are set aside by `apply_batch` and never stop it; if the runner
    itself fails (Postgres restarting, the connection lost), it is started again from the
    positions the models recorded, after a pause that grows up to 30 s while failures repeat.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = BoxOffice(env=settings.eventsourcing_env())
    projections = [open_projection(settings, name) for name in READ_MODELS]
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    heap.settle()
    pause = 0.5
    while not done.is_set():
        try:
            # One runner for all read models: one subscription, one decode and one transaction per batch.
            runner = Runner(app, projections)
        except TRANSIENT as error:
            log.warning("read models cannot start yet (%r); trying again in %.1f s", error, pause)
            done.wait(pause)
            pause = min(pause * 2, 30.0)
            continue
        runner.start()
        log.info("projection runner started: %s", ", ".join(READ_MODELS))
        started = time.monotonic()
        while not done.wait(0.5) and runner.error is None:
            pass
        runner.stop()
        runner.join()
        if runner.error is None:
            break
        if time.monotonic() - started > 60:
            pause = 0.5  # it ran fine for a while: this is a new failure, not the same one again
        log.error("read models stopped (%r); starting again in %.1f s", runner.error, pause, exc_info=runner.error)
        done.wait(pause)
        pause = min(pause * 2, 30.0)
    app.close()


def list_errors(settings: Settings) -> list[dict[str, Any]]:
    """The events read models have set aside, oldest first."""
    view = open_view(settings, next(iter(READ_MODELS.values())))
    try:
        with view.datastore.transaction() as curs:
            return [dict(row) for row in errors_of(curs)]
    finally:
        view.datastore.close()


def retry_errors(settings: Settings, name: str | None = None) -> dict[str, tuple[int, int]]:
    """Apply again the events set aside by one read model or all; per model (applied, still failing)."""
    names = [name] if name else list(READ_MODELS)
    unknown = [n for n in names if n not in READ_MODELS]
    if unknown:
        raise SystemExit(f"unknown read model {unknown[0]!r}; known: {', '.join(READ_MODELS)}")
    app = BoxOffice(env=settings.eventsourcing_env())
    try:
        out: dict[str, tuple[int, int]] = {}
        for model in names:
            projection = open_projection(settings, model)
            try:
                out[model] = retry_set_aside(projection, app)
            finally:
                projection.view.datastore.close()
        return out
    finally:
        app.close()


# Read models rebuilt side by side, one process per group, so a rebuild uses two cores: the
# catalog follows the show, offer and seat events; the others the order events.
GROUPS: tuple[tuple[str, ...], ...] = (("catalog",), ("orders", "holds", "tickets"))


def rebuild(settings: Settings, name: str | None = None, *, page: int = 5000, parallel: bool = True) -> dict[str, int]:
    """Drop and rebuild read models from the event store; returns events applied per model.

    Each group of models (GROUPS) is rebuilt in one pass over its events (each event read and
    decoded once), in one transaction holding the group's locks: the live runner pauses,
    readers keep seeing the old tables until the new ones commit. With several groups, the
    first is rebuilt here and the others in child processes, all up to the same position; they
    commit only once every group has finished (if one fails, none commits; only a failure of
    COMMIT itself could leave one group rebuilt and another not, each still consistent).
    """
    names = [name] if name else list(READ_MODELS)
    unknown = [n for n in names if n not in READ_MODELS]
    if unknown:
        raise SystemExit(f"unknown read model {unknown[0]!r}; known: {', '.join(READ_MODELS)}")
    groups = [[n for n in group if n in names] for group in GROUPS]
    groups = [group for group in groups if group] or [[]]
    groups[0] += [n for n in names if not any(n in group for group in GROUPS)]  # models of no group
    if not parallel:
        groups = [names]
    app = BoxOffice(env=settings.eventsourcing_env())
    projections = [open_projection(settings, model) for model in groups[0]]
    try:
        max_id = app.recorder.max_notification_id() or 0
        with Siblings(settings, groups[1:], page, max_id) as siblings:
            applied = replay(app, projections, page, max_id, locked=siblings.start, before_commit=siblings.finish)
        applied.update(siblings.applied)
        return {n: applied[n] for n in names}
    finally:
        for projection in projections:
            projection.view.datastore.close()
        app.close()


def replay(
    app: BoxOffice,
    projections: list[ReadModel[Any]],
    page: int = 5000,
    max_id: int | None = None,
    *,
    locked: Callable[[], None] = lambda: None,
    before_commit: Callable[[dict[str, int]], None] = lambda applied: None,
) -> dict[str, int]:
    """Rebuild these models from the events up to `max_id` (default: the last) in one transaction.

    `locked` is called once their locks are held and their tables recreated; `before_commit`
    with the counts just before the commit (raising there rolls everything back).
    """
    topics = sorted({t for p in projections for t in p.handled_topics()})
    applied = dict.fromkeys((p.name for p in projections), 0)
    with heap.bulk(), projections[0].view.datastore.transaction(commit=True) as curs:
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
        for projection in projections:
            projection.view.create_deferred_indexes(curs)
        if max_id:
            for projection in projections:
                projection.view.record_position(curs, Tracking(app.name, max_id))
        before_commit(applied)
    return applied


def _replay_page(curs: Cursor[DictRow], app: BoxOffice, projection: ReadModel[Any], events: list[Any]) -> int:
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


class Siblings:
    """Groups of read models rebuilt in child processes, committed together with ours.

    Protocol on each child's socket: we send (settings, models, page, max_id); the child sends
    ("ready", applied) when only its commit is left, or ("error", text); we answer "commit" or
    "abort"; after committing it sends ("committed", None).
    """

    def __init__(self, settings: Settings, groups: list[list[str]], page: int, max_id: int) -> None:
        self.settings = settings
        self.groups = groups
        self.page = page
        self.max_id = max_id
        self.children: list[tuple[subprocess.Popen[bytes], Connection, str]] = []
        self.applied: dict[str, int] = {}

    def __enter__(self) -> Siblings:
        return self

    def start(self) -> None:
        """Start the children (after our locks are held: the live runner takes the locks in
        model order, the catalog first, so it never holds one of theirs while waiting for ours).

        A child is a fresh interpreter running `_rebuild_child` (not multiprocessing's spawn,
        which would re-run the caller's main module), talking over a socket pair."""
        for group in self.groups:
            ours, theirs = socket.socketpair()
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    "-c",
                    f"from projections.runner import _rebuild_child; _rebuild_child({theirs.fileno()})",
                ],
                pass_fds=[theirs.fileno()],
                cwd=Path(__file__).resolve().parent.parent,  # where `projections` is importable from
            )
            theirs.close()
            pipe = Connection(ours.detach())
            pipe.send((self.settings, group, self.page, self.max_id))
            self.children.append((process, pipe, "+".join(group)))

    def finish(self, applied: dict[str, int]) -> None:
        """Wait until every child is ready, then have them commit; raise if one could not."""
        for process, pipe, name in self.children:
            kind, payload = _receive(process, pipe)
            if kind != "ready":
                raise RuntimeError(f"rebuilding {name} failed:\n{payload}")
            self.applied.update(payload)
        for _, pipe, _ in self.children:
            pipe.send("commit")
        for process, pipe, name in self.children:
            kind, payload = _receive(process, pipe)
            if kind != "committed":
                raise RuntimeError(f"committing {name} failed:\n{payload}")

    def __exit__(self, *exc: object) -> None:
        for process, pipe, _ in self.children:
            with contextlib.suppress(OSError):
                pipe.send("abort")  # ignored by a child that already committed
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            pipe.close()


def _receive(process: subprocess.Popen[bytes], pipe: Connection) -> tuple[str, Any]:
    try:
        message: tuple[str, Any] = pipe.recv()
    except EOFError:
        return "error", f"the process exited (code {process.wait(timeout=5)})"
    return message


def _rebuild_child(fd: int) -> None:
    """A child of `rebuild`: rebuild the models it is sent up to `max_id`, commit when told to."""
    pipe = Connection(fd)
    settings, names, page, max_id = pipe.recv()

    def ready(applied: dict[str, int]) -> None:
        pipe.send(("ready", applied))
        if pipe.recv() != "commit":
            raise _Aborted

    app = BoxOffice(env=settings.eventsourcing_env())
    projections = [open_projection(settings, model) for model in names]
    try:
        replay(app, projections, page, max_id, before_commit=ready)
        pipe.send(("committed", None))
    except _Aborted:
        pass
    except BaseException:
        with contextlib.suppress(OSError):
            pipe.send(("error", traceback.format_exc()))
        raise
    finally:
        for projection in projections:
            projection.view.datastore.close()
        app.close()


class _Aborted(Exception):
    """Another group failed: roll this one back."""


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
    decode: Callable[[Any], Any] = app.mapper.to_domain_event  # commands.mapper.FastMapper
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
        yield [(n, _decoded(decode, n)) for n in rows]


def _decoded(decode: Callable[[Any], Any], stored: Stored) -> Any:
    """The event, or the exception decoding it raised (it only fails the models that handle it)."""
    try:
        return decode(stored)
    except Exception as error:  # noqa: BLE001 - handed on, and raised where it matters
        return error


def list_positions(settings: Settings) -> dict[str, int]:
    out: dict[str, int] = {}
    for model, projection_class in READ_MODELS.items():
        view = open_view(settings, projection_class)
        out[model] = view.max_tracking_id(BoxOffice.name) or 0
        view.datastore.close()
    return out
