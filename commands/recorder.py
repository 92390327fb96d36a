"""The event store's recorder: the library's, with a cheaper insert.

`eventsourcing` inserts a save's events as one array of a composite type
(`unnest(%s::stored_event_uuid[])`). psycopg dumps such an array in Python, quoting every event's
state byte by byte; in a hot on-sale, where one save carries hundreds of orders, that dumping
was about 15% of an API process's CPU (py-spy: `ListDumper.dump` / `SequenceDumper._dump_sequence`
under `ClaimWriter._commit`). Four arrays of plain types (uuid, bigint, text, bytea) are sent
instead, in binary (`%b`): psycopg's text-format array dumper also quotes every element in Python
(10.6 ms of CPU for a 500-event insert, 0.66 ms in binary). The rows, their order (and so the
notification ids returned), the table lock and the NOTIFY are the library's.

Every insert takes the events table's lock (the library's LOCK TABLE, which keeps notification
ids in commit order), and every writer of the store waits for it. A writer frozen while holding it
(stopped inside its pipeline, or between its insert and its COMMIT) would stop them all, the
on-sale's claims included, for as long as it stays frozen. So the lock is waited for at most
TABLE_PATIENCE at a time; between waits the writer ends the sessions of stuck writers
(`cut_off_stuck_writers`) and waits again.

Selected through the library's own setting, `APPLICATION_RECORDER_TOPIC` (see `ticketing.py`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg import Connection, Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from commands.metrics import STUCK_WRITERS_ENDED

log = logging.getLogger("store")
# The sequence order serials come from (`BaseApplication.order_serials`), beside the events.
ORDER_SERIALS = "order_serials"
# One advisory lock key for all claim writers ("tick"; see commands/claim_writer.py).
CLAIMS_LOCK = 0x7469636B
# The events table's lock is held for the milliseconds of an insert and its COMMIT. An insert waits
# for it at most TABLE_PATIENCE at a time (the library waits POSTGRES_LOCK_TIMEOUT, whole seconds),
# and gives up after TABLE_DEADLINE seconds of waits.
TABLE_PATIENCE = "500ms"
TABLE_DEADLINE = 15.0
# A writer is stuck once it has held a writers' lock for this long while its session waits for it:
# - the claim writers' lock: "active" in the middle of a query (Postgres arms no timeout there). An
#   idle holder of that lock is left alone: a claim writer's idle session ends by its own timeout
#   (IDLE_IN_CLAIM), and a payment's turn (`SalesCommands.turn`) idles on its lock's connection by
#   design while it loads and saves on others;
# - the events table's lock: "active" in the middle of a query, or idle in its transaction (every
#   insert commits at once; the pool's idle timeout would wait POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT).
# A holder busy in Postgres (a long insert, a wait for another lock) is never stuck.
STUCK_AFTER = 1.0
CUT_OFF_STUCK_WRITERS = """
SELECT pid, application_name, state, still, lock, pg_terminate_backend(pid) AS ended FROM (
  SELECT DISTINCT ON (a.pid) a.pid, a.application_name, a.state,
         extract(epoch FROM clock_timestamp() - a.state_change) AS still,
         l.locktype AS lock
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
  WHERE l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND a.pid <> pg_backend_pid() AND clock_timestamp() - a.state_change > make_interval(secs => %(after)s)
    AND a.wait_event_type = 'Client'
    AND (
      (l.locktype = 'advisory' AND l.classid = 0 AND l.objid::bigint = %(lock)s AND l.objsubid = 1
       AND a.state = 'active')
      OR (l.locktype = 'relation' AND l.mode = 'ExclusiveLock' AND a.state IN ('active', 'idle in transaction')
          AND l.relation = (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                            WHERE n.nspname = %(schema)s AND c.relname = %(table)s))
    )
) AS stuck
"""


# pg_locks' lock type -> (the metric's label, the log's words)
_LOCKS = {"advisory": ("claims", "the claim writers' lock"), "relation": ("events_table", "the events table's lock")}


class TableLockWait(Exception):
    """The events table's lock was not free within TABLE_PATIENCE (nothing was written). Not an
    `OperationalError`: the library's retry passes it on, to be waited for here."""


class ColumnarRecorder(PostgresApplicationRecorder):
    """`PostgresApplicationRecorder` inserting events as four typed arrays.

    Given `connection=` (through `Application.save(..., connection=conn)`), the events are
    inserted in that connection's open transaction, which the caller commits: the claim writer
    takes its advisory lock, decides and inserts in one transaction, so its batch and its lock
    commit (or fail) together.
    """

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Given `connection=`, a lock that stays taken raises `LockNotAvailable` to the caller,
        whose transaction is lost (the claim writer cuts off stuck writers and tries again);
        otherwise the wait is this method's own (see the module)."""
        conn: Connection[DictRow] | None = kwargs.pop("connection", None)
        if conn is None:
            deadline = time.monotonic() + TABLE_DEADLINE
            while True:
                try:
                    ids: Sequence[int] | None = self._insert_in_own_transaction(stored_events, **kwargs)
                    return ids
                except TableLockWait as wait:
                    if time.monotonic() > deadline:
                        raise wait.__cause__ or wait from None
                    self.cut_off_stuck_writers()
        if not stored_events:
            return []
        # As the library does: the lock and NOTIFY pipelined ahead of the insert, on their own cursor.
        with conn.pipeline() as pipeline:
            with conn.cursor() as curs:
                self._insert_events(curs, stored_events, **kwargs)
            with conn.cursor() as curs:
                self._insert_stored_events(curs, stored_events, **kwargs)
                pipeline.sync()
                return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    # The library's insert and its retry on lost connections; a lock that stays taken is not retried there.
    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_in_own_transaction(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        try:
            ids: Sequence[int] | None = PostgresApplicationRecorder.insert_events.__wrapped__(
                self, stored_events, **kwargs
            )
        except OperationalError as error:
            if isinstance(error.__cause__, psycopg.errors.LockNotAvailable):  # the library's wrapper of it
                raise TableLockWait from error
            raise
        return ids

    def cut_off_stuck_writers(self) -> int:
        """End the session of every stuck writer (see STUCK_AFTER); returns how many. A writer that
        ever resumes finds its connection gone: its transaction was never committed, and it tries
        again as after any lost connection (a claim writer looks its orders up first, so none is
        placed twice)."""
        try:
            with self.datastore.get_connection() as conn:
                ended = conn.execute(
                    CUT_OFF_STUCK_WRITERS,
                    {"after": STUCK_AFTER, "lock": CLAIMS_LOCK, "schema": self.datastore.schema,
                     "table": self.events_table_name},
                ).fetchall()  # fmt: skip
        except Exception as error:  # noqa: BLE001 - the caller waits for the lock again
            log.warning("looking for stuck writers failed: %r", error)
            return 0
        for row in ended:
            label, lock = _LOCKS[row["lock"]]
            STUCK_WRITERS_ENDED.labels(label).inc()
            log.warning(
                "ended the session %s (%s, %s for %.1f s) that held %s, waiting for its client",
                row["pid"], row["application_name"] or "?", row["state"], row["still"], lock,
            )  # fmt: skip
        return len(ended)

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        # The library's statements are its lock_timeout (POSTGRES_LOCK_TIMEOUT) and its LOCK TABLE.
        lock_timeout, *lock = self.lock_table_statements
        assert isinstance(lock_timeout, Composed) and "lock_timeout" in lock_timeout.as_string(None), lock_timeout
        self.lock_table_statements = [SQL("SET LOCAL lock_timeout = {}").format(TABLE_PATIENCE), *lock]
        self.sql_create_statements.append(
            SQL("CREATE SEQUENCE IF NOT EXISTS {schema}.{name}").format(
                schema=Identifier(datastore.schema), name=Identifier(ORDER_SERIALS)
            )
        )
        self.insert_columns_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(
            schema=Identifier(datastore.schema),
            table=Identifier(self.events_table_name),
            id_type=Identifier(datastore.originator_id_type),
        )

    def _insert_stored_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self.insert_columns_statement,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
            prepare=True,
        )
