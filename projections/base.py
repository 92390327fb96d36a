"""Shared machinery of the read models.

A view is a `PostgresTrackingRecorder` subclass that owns some tables in the `read` schema
and writes its rows and its tracking record in one transaction, so every event is applied
exactly once. The runner applies events in batches (one transaction per batch) and announces
each new position on the `read_models` channel, which the API uses to read its own writes.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import singledispatchmethod
from types import MethodType
from typing import Any, ClassVar, Generic, TypeVar

import msgspec
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection
from eventsourcing.utils import get_topic
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier
from psycopg.types.array import ListBinaryDumper

log = logging.getLogger("projections")
SCHEMA = "read"
CHANNEL = "read_models"
_INDEX = re.compile(rf"\s*CREATE (UNIQUE )?INDEX .*? ON {SCHEMA}\.(?P<table>\w+)", re.IGNORECASE | re.DOTALL)


class ReadModelView(PostgresTrackingRecorder):
    """A read model's tables plus its tracking table, in the `read` schema."""

    ddl: ClassVar[tuple[str, ...]] = ()
    tables: ClassVar[tuple[str, ...]] = ()
    # Tables that grow with the history and that handlers reach by primary key only.
    bulk_tables: ClassVar[tuple[str, ...]] = ()
    # A model most of whose batches hold nothing for it (the notifier: most events cause no mail)
    # may leave such a batch's position unrecorded if it recorded one less than this many seconds
    # ago: the batch's transaction (lock, position, tracking row, NOTIFY, commit) is skipped. Its
    # next batch records a later position, and the runner records a skipped one once no event has
    # come for as long (`record_skipped_positions`); after a restart it reads those events again,
    # and they do nothing. None: every batch records its position, as the read models must
    # (reads that follow a write wait for their positions).
    idle_position_seconds: ClassVar[float | None] = None

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        statements = [SQL(s).format() for s in (f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}", ERRORS_DDL, *self.ddl)]
        # The schema must exist before the tracking table the base class creates.
        self.sql_create_statements[:0] = statements
        self._batch = threading.local()
        self.rebuilding = False
        self.position_recorded_at = 0.0  # time.monotonic() of the last batch that recorded one
        self.skipped: Tracking | None = None  # the last position a skipped batch left unrecorded

    @contextmanager
    def writing(self, tracking: Tracking) -> Iterator[Cursor[DictRow]]:
        """A cursor for one event's changes: the batch's, or a batch of one of its own."""
        curs: Cursor[DictRow] | None = getattr(self._batch, "curs", None)
        if curs is not None:
            yield curs
            return
        with self.datastore.transaction(commit=True) as own:
            with self.batch(own):
                yield own
            self._insert_tracking(own, tracking)

    @contextmanager
    def batch(self, curs: Cursor[DictRow], last: Tracking | None = None) -> Iterator[None]:
        """Route every event's writes into `curs` (one transaction for many events), pipelined:
        statements are sent without waiting for each answer, and work a view defers to the end
        of the batch (set-based updates) runs once. Given `last`, the position is recorded in
        the same pipeline (`record_position`)."""
        self._batch.curs = curs
        self._batch.pending = self.new_batch_state()
        # Lists (the uuid[]/int[] parameters of set-based updates) are sent in binary: psycopg's
        # text array format quotes every element in Python, ~6x slower for thousands of ids.
        curs.connection.adapters.register_dumper(list, ListBinaryDumper)
        try:
            with curs.connection.pipeline():
                yield
                self.end_batch(curs)
                if last is not None:
                    self.record_position(curs, last)
        finally:
            self._batch.curs = None
            self._batch.pending = None

    def new_batch_state(self) -> Any:
        """What a view accumulates during a batch (see `end_batch`)."""
        return None

    @property
    def pending(self) -> Any:
        return self._batch.pending

    def record_position(self, curs: Cursor[DictRow], last: Tracking) -> None:
        """Write the tracking record and announce the new position on commit."""
        self.position_recorded_at = time.monotonic()
        if self.skipped is not None and self.skipped.notification_id <= last.notification_id:
            self.skipped = None
        self._insert_tracking(curs, last)
        curs.execute(
            "SELECT pg_notify(%s, %s)",
            (CHANNEL, f"{self.tracking_table_name}:{last.application_name}:{last.notification_id}"),
        )

    def end_batch(self, curs: Cursor[DictRow]) -> None:
        """Hook for work deferred to the end of a batch (recomputing aggregates once)."""

    def committed(self) -> None:
        """Hook run after a batch of this view's has committed (outside its transaction)."""

    def lock(self, curs: Cursor[DictRow]) -> None:
        """Serialise writers of this read model (live runner vs. a rebuild)."""
        curs.execute(SQL("SELECT {}").format(self.lock_call()))

    def lock_call(self) -> Composed:
        """The call taking this read model's writers' lock (its key: the tracking table's name)."""
        return SQL("pg_advisory_xact_lock(hashtext({}))").format(self.tracking_table_name)

    def position(self, curs: Cursor[DictRow], application_name: str) -> int:
        return self._max_tracking_id(application_name, curs) or 0

    def create_for_rebuild(self, curs: Cursor[DictRow]) -> None:
        """Create the tables, but not the secondary indexes of `bulk_tables`: a rebuild fills
        those tables (reaching rows by primary key only) and `finish_rebuild` builds their
        indexes once at the end, a sort each instead of an insertion per row.

        Until `finish_rebuild` (or `abandon_rebuild`), `rebuilding` is true: a view may then
        defer to the end work its live batches do every time (see CatalogView)."""
        everything = self.sql_create_statements
        deferred = self._deferred_indexes()
        self.sql_create_statements = [s for s in everything if all(s is not d for d in deferred)]
        try:
            self._create_table(curs)
        finally:
            self.sql_create_statements = everything
        self.rebuilding = True

    def finish_rebuild(self, curs: Cursor[DictRow]) -> None:
        """The end of a rebuild, in its transaction: the work deferred to it."""
        for statement in self._deferred_indexes():
            curs.execute(statement)
        self.abandon_rebuild()

    def abandon_rebuild(self) -> None:
        """Back to live batches (the rebuild finished, or failed and rolled back)."""
        self.rebuilding = False

    def _deferred_indexes(self) -> list[Composed]:
        found = []
        for statement in self.sql_create_statements:
            match = _INDEX.match(statement.as_string())
            if match and match["table"] in self.bulk_tables:
                found.append(statement)
        return found

    def drop(self, curs: Cursor[DictRow]) -> None:
        for table in (*self.tables, self.tracking_table_name):
            curs.execute(SQL(f"DROP TABLE IF EXISTS {SCHEMA}.{table} CASCADE"))


def lock_and_position(curs: Cursor[DictRow], views: Sequence[ReadModelView], application_name: str) -> list[int]:
    """`lock` then `position` of every view, in two statements (not two per view: a batch of the
    live runner, five read models, made ten round trips before its first write). The positions
    are read by a statement of their own, after every lock is held: read in the locking
    statement, they would come from its snapshot, taken before the locks were waited for."""
    curs.execute(SQL("SELECT {}").format(SQL(", ").join(v.lock_call() for v in views)))
    curs.execute(
        SQL("SELECT {}").format(
            SQL(", ").join(
                SQL("({}) AS {}").format(v.max_tracking_id_statement, Identifier(f"p{i}")) for i, v in enumerate(views)
            )
        ),
        [application_name] * len(views),
        prepare=True,
    )
    row = curs.fetchone()
    assert row is not None
    return [row[f"p{i}"] or 0 for i in range(len(views))]


Row = dict[str, Any]
RowChange = Callable[[Row | None], Row | None]


class Upkeep:
    """`VACUUM (ANALYZE)` of one table soon after heavy churn, in a thread of its own.

    Autovacuum visits a database about once a minute (`autovacuum_naptime`), so after a bulk
    change (an import of thousands of shows, a replay) a table can go a minute with stale
    statistics and a visibility map that index-only scans cannot use. For the listing that was
    measured: the one-client phase of `browse` right after seeding 10,000 shows answered 94-229
    searches a second, Postgres spending ~12 ms of CPU per uncached search (the totals walked
    the heap); after a `VACUUM (ANALYZE) read.events` (0.11 s) it answered 1,263 a second, with
    p99 5.4 ms. So a view notes how many rows of the table its committed batches wrote, and
    once that reaches `fraction` of the table (at least `min_rows`), the table is vacuumed.
    """

    def __init__(self, datastore: PostgresDatastore, table: str, *, min_rows: int = 1000, fraction: float = 0.2):
        self.datastore = datastore
        self.table = table
        self.min_rows = min_rows
        self.fraction = fraction
        self.rows = 0  # the table's size as of the last vacuum
        self.churn = 0
        self.vacuums = 0
        self._running = threading.Lock()

    def note(self, written: int) -> None:
        self.churn += written
        if self.churn >= max(self.min_rows, self.fraction * self.rows) and self._running.acquire(blocking=False):
            self.churn = 0
            threading.Thread(target=self._vacuum, name=f"upkeep-{self.table}", daemon=True).start()

    def _vacuum(self) -> None:
        schema, _, name = self.table.rpartition(".")
        try:
            with self.datastore.get_connection() as conn:  # autocommit: VACUUM runs outside a transaction
                conn.execute(SQL("VACUUM (ANALYZE) {}").format(Identifier(schema, name)))
                row = conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (self.table,)).fetchone()
            self.rows = max(int(row["reltuples"]), 0) if row else 0
            self.vacuums += 1
        except Exception:
            log.exception("VACUUM of %s failed; autovacuum will get to it", self.table)
        finally:
            self._running.release()


@dataclass
class RowBatch:
    """The changes a batch makes to one table, applied in memory and written at its end.

    A handler does not write its row; it records a change: a function from the row as it is
    (None when absent) to the row as it becomes (None to delete it), exactly what its statement
    would have done. At the end of the batch the rows touched are read with one query, the
    changes applied in event order, and the difference written with at most three set-based
    statements (INSERT / UPDATE / DELETE over `unnest` arrays). The model's lock is held all
    along, so nothing else writes the table in between.
    """

    table: str
    # Column name -> SQL type, the key first: every column a new row carries.
    columns: dict[str, str]
    # The columns changes may alter; existing rows are read and updated with these only.
    mutable: tuple[str, ...]
    changes: list[tuple[Any, RowChange]] = field(default_factory=list)
    # Keys whose current rows are wanted at the end although no change names them.
    wanted: set[Any] = field(default_factory=set)

    @property
    def key(self) -> str:
        return next(iter(self.columns))

    def change(self, key: Any, change: RowChange) -> None:
        self.changes.append((key, change))

    def flush(self, curs: Cursor[DictRow]) -> dict[Any, Row]:
        """Write the batch's changes; returns the rows (as they now are) of every key touched or wanted."""
        keys = {key for key, _ in self.changes} | self.wanted
        if not keys:
            return {}
        key = self.key
        loaded = (key, *self.mutable)
        curs.execute(
            f"SELECT {', '.join(loaded)} FROM {SCHEMA}.{self.table} WHERE {key} = ANY({self._keys()})",
            (json_rows(list(keys)),),
        )
        before = {row[key]: row for row in curs.fetchall()}
        rows = dict(before)
        for row_key, change in self.changes:
            row = change(rows.get(row_key))
            if row is None:
                rows.pop(row_key, None)
            else:
                rows[row_key] = row
        new = [row for k, row in rows.items() if k not in before]
        changed = [row for k, row in rows.items() if k in before and row != before[k]]
        gone = [k for k in before if k not in rows]
        if new:
            columns = tuple(self.columns)
            curs.execute(
                f"INSERT INTO {SCHEMA}.{self.table} ({', '.join(columns)}) "
                f"SELECT {', '.join(columns)} FROM {self._recordset(columns)}",
                (json_rows(new),),
            )
        if changed:
            assignments = ", ".join(f"{c} = x.{c}" for c in self.mutable)
            curs.execute(
                f"UPDATE {SCHEMA}.{self.table} AS t SET {assignments} FROM {self._recordset(loaded)} "
                f"WHERE t.{key} = x.{key}",
                (json_rows(changed),),
            )
        if gone:
            curs.execute(f"DELETE FROM {SCHEMA}.{self.table} WHERE {key} = ANY({self._keys()})", (json_rows(gone),))
        self.changes.clear()
        self.wanted.clear()
        return rows

    # Rows and keys travel as one JSON document each: msgspec encodes thousands of rows in a
    # millisecond or two, where psycopg's array adaptation spends microseconds per element.

    def _keys(self) -> str:
        return f"ARRAY(SELECT json_array_elements_text(%s::json)::{self.columns[self.key]})"

    def _recordset(self, columns: tuple[str, ...]) -> str:
        fields = ", ".join(f"{c} {self.columns[c]}" for c in columns)
        return f"json_to_recordset(%s::json) AS x({fields})"


def json_rows(value: Any) -> str:
    """Rows (or keys) as one JSON document for `json_to_recordset` / `json_array_elements_text`."""
    return _encode(value).decode()


_encode = msgspec.json.Encoder().encode


TView = TypeVar("TView", bound=ReadModelView)


class ReadModel(Projection[TView], Generic[TView]):
    """A projection whose handlers are registered per domain-event class."""

    view_class: ClassVar[type[ReadModelView]]

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this read model ignores only move its position on."""

    @classmethod
    def handled_topics(cls) -> frozenset[str]:
        """Topics of the domain events this read model has handlers for.

        Other events are not even decoded; they only advance the position.
        """
        return frozenset(cls._registry())

    @classmethod
    def _registry(cls) -> dict[str, Callable[..., None]]:
        for klass in cls.__mro__:
            method = klass.__dict__.get("process_event")
            if isinstance(method, singledispatchmethod):
                registry = method.dispatcher.registry
                return {get_topic(t): f for t, f in registry.items() if t is not object}
        return {}

    def handlers(self) -> dict[str, Callable[[Any, Tracking], None]]:
        """The handler of each topic, bound: what `process_event` dispatches to, without the
        wrapper `singledispatchmethod` builds on every call (a few µs per event in a replay).
        Handlers are registered for the exact event classes, which is all `handled_topics`
        lets through."""
        table: dict[str, Callable[[Any, Tracking], None]] | None = self.__dict__.get("_handlers")
        if table is None:
            table = {topic: MethodType(f, self) for topic, f in self._registry().items()}
            self.__dict__["_handlers"] = table
        return table


# Where every read model records the events it could not apply (`projections/apply.py`).
ERRORS_TABLE = f"{SCHEMA}.projection_errors"
ERRORS_DDL = f"""CREATE TABLE IF NOT EXISTS {ERRORS_TABLE} (
    model text NOT NULL, notification_id bigint NOT NULL, topic text NOT NULL, originator_id uuid NOT NULL,
    originator_version bigint NOT NULL, error text NOT NULL, attempts integer NOT NULL DEFAULT 1,
    first_failed_at timestamptz NOT NULL DEFAULT now(), last_failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, notification_id))"""
