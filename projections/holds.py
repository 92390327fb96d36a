"""Holds by deadline: the open holds, ordered by when they lapse (read by the expiry sweep)."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from psycopg import Connection, Cursor
from psycopg.rows import DictRow

from domain.order import Order
from projections.base import ReadModel, ReadModelView, Row, RowBatch


class HoldsView(ReadModelView):
    tables = ("holds",)
    bulk_tables = ("holds",)
    ddl = (
        "CREATE TABLE IF NOT EXISTS read.holds (order_id uuid PRIMARY KEY, deadline timestamptz NOT NULL)",
        "CREATE INDEX IF NOT EXISTS holds_deadline ON read.holds (deadline)",
    )

    # Holds are written set-based at the end of each batch (see RowBatch).

    def new_batch_state(self) -> RowBatch:
        return RowBatch("holds", {"order_id": "uuid", "deadline": "timestamptz"}, ("deadline",))

    def end_batch(self, curs: Cursor[DictRow]) -> None:
        self.pending.flush(curs)


class HoldsProjection(ReadModel[HoldsView]):
    name = "holds"
    view_class = HoldsView

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Ignored events only advance the position."""

    @process_event.register
    def _(self, e: Order.Placed, tracking: Tracking) -> None:
        held: Row = {"order_id": e.originator_id, "deadline": e.hold_expires_at}

        def insert(row: Row | None) -> Row | None:  # ON CONFLICT (order_id) DO NOTHING
            return held if row is None else row

        self._change(e, tracking, insert)

    @process_event.register
    def _(self, e: Order.PaymentStarted, tracking: Tracking) -> None:
        def extend(row: Row | None) -> Row | None:
            return None if row is None else {**row, "deadline": e.until}

        self._change(e, tracking, extend)

    @process_event.register
    def _(self, e: Order.Paid, tracking: Tracking) -> None:
        self._drop(e, tracking)

    @process_event.register
    def _(self, e: Order.LatePaymentRefunded, tracking: Tracking) -> None:
        self._drop(e, tracking)

    @process_event.register
    def _(self, e: Order.Cancelled, tracking: Tracking) -> None:
        self._drop(e, tracking)

    @process_event.register
    def _(self, e: Order.Expired, tracking: Tracking) -> None:
        self._drop(e, tracking)

    def _drop(self, e: Any, tracking: Tracking) -> None:
        self._change(e, tracking, _gone)

    def _change(self, e: Any, tracking: Tracking, change: Any) -> None:
        with self.view.writing(tracking):
            batch: RowBatch = self.view.pending
            batch.change(e.originator_id, change)


def _gone(row: Row | None) -> Row | None:
    return None


def due_holds(conn: Connection[DictRow], limit: int = 1000) -> list[UUID]:
    """Orders whose hold deadline has passed, oldest first."""
    cur = conn.execute("SELECT order_id FROM read.holds WHERE deadline <= now() ORDER BY deadline LIMIT %s", (limit,))
    return [row["order_id"] for row in cur.fetchall()]
