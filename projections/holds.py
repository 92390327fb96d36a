"""Holds by deadline: the open holds, ordered by when they lapse (read by the expiry sweep)."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from psycopg import Connection
from psycopg.rows import DictRow

from domain.order import Order
from projections.base import ReadModel, ReadModelView


class HoldsView(ReadModelView):
    tables = ("holds",)
    ddl = (
        "CREATE TABLE IF NOT EXISTS read.holds (order_id uuid PRIMARY KEY, deadline timestamptz NOT NULL)",
        "CREATE INDEX IF NOT EXISTS holds_deadline ON read.holds (deadline)",
    )


class HoldsProjection(ReadModel[HoldsView]):
    name = "holds"
    view_class = HoldsView

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Ignored events only advance the position."""

    @process_event.register
    def _(self, e: Order.Placed, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                "INSERT INTO read.holds VALUES (%s, %s) ON CONFLICT (order_id) DO NOTHING",
                (e.originator_id, e.hold_expires_at),
            )

    @process_event.register
    def _(self, e: Order.PaymentStarted, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute("UPDATE read.holds SET deadline = %s WHERE order_id = %s", (e.until, e.originator_id))

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
        with self.view.writing(tracking) as curs:
            curs.execute("DELETE FROM read.holds WHERE order_id = %s", (e.originator_id,))


def due_holds(conn: Connection[DictRow], limit: int = 1000) -> list[UUID]:
    """Orders whose hold deadline has passed, oldest first."""
    cur = conn.execute("SELECT order_id FROM read.holds WHERE deadline <= now() ORDER BY deadline LIMIT %s", (limit,))
    return [row["order_id"] for row in cur.fetchall()]
