"""The mail notifier: follows the stored events like a read model and decides, once per event,
which mails it causes, as rows of an outbox (`read.mail_outbox`).

Each row is written in the same transaction as the notifier's tracking record, so a crash, a
restart or a replay of the log never decides a mail twice and never skips one. The row's `key`
derives from the event (kind, aggregate, version), and the mail's Message-ID from the key, so
the worker that sends it (`workers/mail.py`) can tell a mail it already sent. The notifier is
not one of the read models (`projections/models.py`): rebuilding them leaves it and its
outbox alone.

Mails to several people about one event (a rescheduled show) are one `fanout` row here; the
worker expands it into one row per recipient once the read models know the ticket holders.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import Tracking
from psycopg import Connection, Cursor
from psycopg.rows import DictRow

from domain.event import Event
from domain.order import Order
from domain.waitlist import Waitlist
from projections.base import ReadModel, ReadModelView

# The reason the service gives the refunds it makes when a show is cancelled
# (`workers/tasks.py`); such a refund is mailed as the show's cancellation.
EVENT_CANCELLED_REASON = "event cancelled"

ORDER_CONFIRMED = "order_confirmed"
PAYMENT_FAILED = "payment_failed"
REFUND_DONE = "refund_done"
EVENT_CANCELLED = "event_cancelled"
EVENT_RESCHEDULED = "event_rescheduled"
TICKET_SENT = "ticket_transferred_from"
TICKET_RECEIVED = "ticket_transferred_to"
WAITLIST_OFFER = "waitlist_offer"
REMINDER = "reminder"
FANOUT = "fanout"

# The read models a mail's content comes from: a row is sent once they have applied its event.
SOURCES = ("catalog", "orders", "tickets", "waitlist")

OUTBOX_DDL = """CREATE TABLE IF NOT EXISTS read.mail_outbox (
    key text PRIMARY KEY, kind text NOT NULL, notification_id bigint NOT NULL, data jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), queued_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz, message_id text, attempts integer NOT NULL DEFAULT 0, last_error text)"""

_encode = msgspec.json.Encoder().encode


def _json(data: dict[str, Any]) -> str:
    return _encode(data).decode()


class NotifierView(ReadModelView):
    tables = ("mail_outbox",)
    # Most events cause no mail, and nothing waits for the notifier's position: under load, a
    # batch without mail records it at most once a second (measured: see README, hold latency).
    idle_position_seconds = 1.0
    ddl = (
        OUTBOX_DDL,
        "CREATE INDEX IF NOT EXISTS mail_outbox_unsent ON read.mail_outbox (queued_at) WHERE sent_at IS NULL",
    )

    # Called after a batch has committed with the keys of the rows it added (the notifier
    # process hands them to the worker). Until then, and if that fails, the mail sweep finds them.
    on_commit: Callable[[list[str]], None] | None = None

    def new_batch_state(self) -> list[str]:
        return []

    def add(self, curs: Cursor[DictRow], key: str, kind: str, tracking: Tracking, data: dict[str, Any]) -> None:
        curs.execute(
            """INSERT INTO read.mail_outbox (key, kind, notification_id, data) VALUES (%s, %s, %s, %s)
               ON CONFLICT (key) DO NOTHING""",
            (key, kind, tracking.notification_id, _json(data)),
        )
        if self.pending is not None:
            self.pending.append(key)

    def end_batch(self, curs: Cursor[DictRow]) -> None:
        self._committed_keys = list(self.pending or [])

    def committed(self) -> None:
        keys, self._committed_keys = getattr(self, "_committed_keys", []), []
        if keys and self.on_commit is not None:
            self.on_commit(keys)


class NotifierProjection(ReadModel[NotifierView]):
    name = "notifier"
    view_class = NotifierView

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events that cause no mail only advance the position."""

    def _add(self, tracking: Tracking, kind: str, e: Any, data: dict[str, Any], suffix: str = "") -> None:
        key = f"{kind}:{e.originator_id}:{e.originator_version}{suffix}"
        with self.view.writing(tracking) as curs:
            self.view.add(curs, key, kind, tracking, data)

    @process_event.register
    def _(self, e: Order.Paid, tracking: Tracking) -> None:
        if e.tickets:
            self._add(tracking, ORDER_CONFIRMED, e, {"order_id": str(e.originator_id)})

    @process_event.register
    def _(self, e: Order.PaymentFailed, tracking: Tracking) -> None:
        self._add(tracking, PAYMENT_FAILED, e, {"order_id": str(e.originator_id), "reason": e.reason})

    @process_event.register
    def _(self, e: Order.Refunded, tracking: Tracking) -> None:
        kind = EVENT_CANCELLED if e.reason == EVENT_CANCELLED_REASON else REFUND_DONE
        data = {"order_id": str(e.originator_id), "ticket_ids": [str(t) for t in e.ticket_ids],
                "amount": e.amount, "reason": e.reason}  # fmt: skip
        self._add(tracking, kind, e, data)

    @process_event.register
    def _(self, e: Order.TicketTransferred, tracking: Tracking) -> None:
        data = {"order_id": str(e.originator_id), "ticket_id": str(e.ticket_id), "to_id": str(e.to_id),
                "version": e.originator_version}  # fmt: skip
        self._add(tracking, TICKET_SENT, e, data)
        self._add(tracking, TICKET_RECEIVED, e, data)

    @process_event.register
    def _(self, e: Event.Rescheduled, tracking: Tracking) -> None:
        data = {"kind": EVENT_RESCHEDULED, "event_id": str(e.originator_id), "start_time": e.start_time.isoformat()}
        self._add(tracking, FANOUT, e, data, suffix=f":{EVENT_RESCHEDULED}")

    @process_event.register
    def _(self, e: Waitlist.Offered, tracking: Tracking) -> None:
        data = {"account_id": str(e.account_id), "order_id": str(e.order_id), "quantity": e.quantity,
                "until": e.until.isoformat(), "waitlist_id": str(e.originator_id)}  # fmt: skip
        self._add(tracking, WAITLIST_OFFER, e, data)


# The outbox, as the worker uses it (blocking connections) ----------------------------------


def outbox_row(conn: Connection[DictRow], key: str) -> DictRow | None:
    """The row, locked for this transaction; None if it is missing or another worker has it."""
    return conn.execute("SELECT * FROM read.mail_outbox WHERE key = %s FOR UPDATE SKIP LOCKED", (key,)).fetchone()


def mark_sent(conn: Connection[DictRow], key: str, message_id: str | None) -> None:
    conn.execute(
        "UPDATE read.mail_outbox SET sent_at = now(), message_id = %s, attempts = attempts + 1 WHERE key = %s",
        (message_id, key),
    )


def note_failure(conn: Connection[DictRow], key: str, error: str) -> None:
    conn.execute(
        "UPDATE read.mail_outbox SET attempts = attempts + 1, last_error = %s WHERE key = %s",
        (error[:2000], key),
    )


def add_rows(conn: Connection[DictRow], rows: list[tuple[str, str, int, dict[str, Any]]]) -> list[str]:
    """Insert (key, kind, notification_id, data) rows that are not there yet; returns the new keys."""
    added = []
    for key, kind, notification_id, data in rows:
        cur = conn.execute(
            """INSERT INTO read.mail_outbox (key, kind, notification_id, data) VALUES (%s, %s, %s, %s)
               ON CONFLICT (key) DO NOTHING RETURNING key""",
            (key, kind, notification_id, _json(data)),
        )
        if cur.fetchone() is not None:
            added.append(key)
    return added


def due_for_requeue(conn: Connection[DictRow], older_than_seconds: float, limit: int = 1000) -> list[str]:
    """Unsent rows last queued longer ago than that (their message was lost, or ran out of
    retries while the mail server was down); they are marked queued again."""
    rows = conn.execute(
        """UPDATE read.mail_outbox SET queued_at = now() WHERE key IN (
             SELECT key FROM read.mail_outbox WHERE sent_at IS NULL
               AND queued_at < now() - make_interval(secs => %s) ORDER BY queued_at LIMIT %s
               FOR UPDATE SKIP LOCKED)
           RETURNING key""",
        (older_than_seconds, limit),
    ).fetchall()
    return [row["key"] for row in rows]


def read_position(conn: Connection[DictRow], app_name: str) -> int:
    """The lowest position among the read models mails are written from."""
    positions = []
    for model in SOURCES:
        row = conn.execute(
            f"SELECT max(notification_id) AS n FROM read.{model}_tracking WHERE application_name = %s",
            (app_name,),
        ).fetchone()
        positions.append(row["n"] or 0 if row else 0)
    return min(positions)


def holders_of_event(conn: Connection[DictRow], event_id: UUID) -> list[UUID]:
    rows = conn.execute(
        "SELECT DISTINCT owner_id FROM read.tickets WHERE event_id = %s AND status = 'valid' ORDER BY owner_id",
        (event_id,),
    ).fetchall()
    return [row["owner_id"] for row in rows]


def shows_to_remind(conn: Connection[DictRow], now: datetime, hours: int = 24) -> list[DictRow]:
    """(event id, start time, holder) of every valid, unused ticket holder of a published show
    starting within `hours`."""
    return conn.execute(
        """SELECT DISTINCT e.id AS event_id, e.start_time, t.owner_id
           FROM read.events e JOIN read.tickets t ON t.event_id = e.id
           WHERE e.status = 'published' AND e.start_time > %s AND e.start_time <= %s + make_interval(hours => %s)
             AND t.status = 'valid' AND t.checked_in_at IS NULL""",
        (now, now, hours),
    ).fetchall()
