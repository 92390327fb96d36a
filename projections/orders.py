"""Orders read model: every order with its items and totals, per buyer and per event."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from eventsourcing.persistence import Tracking
from psycopg.types.json import Jsonb

from domain.order import Order
from projections.base import ReadModel, ReadModelView


class OrdersView(ReadModelView):
    tables = ("orders",)
    ddl = (
        """CREATE TABLE IF NOT EXISTS read.orders (
            id uuid PRIMARY KEY, buyer_id uuid NOT NULL, event_id uuid NOT NULL, status text NOT NULL,
            items jsonb NOT NULL, currency text NOT NULL, subtotal bigint NOT NULL, fees bigint NOT NULL,
            total bigint NOT NULL, ticket_count integer NOT NULL, placed_at timestamptz NOT NULL,
            hold_expires_at timestamptz NOT NULL, closed_at timestamptz, updated_at timestamptz NOT NULL)""",
        "ALTER TABLE read.orders ADD COLUMN IF NOT EXISTS payment_status text NOT NULL DEFAULT 'unpaid'",
        "ALTER TABLE read.orders ADD COLUMN IF NOT EXISTS payment_intent_id text",
        "ALTER TABLE read.orders ADD COLUMN IF NOT EXISTS amount_paid bigint NOT NULL DEFAULT 0",
        "ALTER TABLE read.orders ADD COLUMN IF NOT EXISTS amount_refunded bigint NOT NULL DEFAULT 0",
        "ALTER TABLE read.orders ADD COLUMN IF NOT EXISTS paid_at timestamptz",
        "ALTER TABLE read.orders ADD COLUMN IF NOT EXISTS last_payment_error text",
        "ALTER TABLE read.orders ADD COLUMN IF NOT EXISTS payment_failures integer NOT NULL DEFAULT 0",
        "CREATE INDEX IF NOT EXISTS orders_buyer ON read.orders (buyer_id, placed_at DESC)",
        "CREATE INDEX IF NOT EXISTS orders_intent ON read.orders (payment_intent_id)",
        "CREATE INDEX IF NOT EXISTS orders_event ON read.orders (event_id, placed_at DESC)",
    )


class OrdersProjection(ReadModel[OrdersView]):
    name = "orders"
    view_class = OrdersView

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Ignored events only advance the position."""

    @process_event.register
    def _(self, e: Order.Placed, tracking: Tracking) -> None:
        items: list[dict[str, Any]] = [
            {
                "offer_id": str(i["offer_id"]),
                "tier_id": str(i["tier_id"]),
                "seat_id": str(i["seat_id"]) if i["seat_id"] else None,
                "seat_label": i["seat_label"],
                "quantity": i["quantity"],
                "unit_price": i["unit_price"],
            }
            for i in e.items
        ]
        with self.view.writing(tracking) as curs:
            curs.execute(
                """INSERT INTO read.orders (id, buyer_id, event_id, status, items, currency, subtotal, fees,
                     total, ticket_count, placed_at, hold_expires_at, updated_at)
                   VALUES (%s, %s, %s, 'held', %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING""",
                (e.originator_id, e.buyer_id, e.event_id, Jsonb(items), e.currency, e.subtotal, e.fees,
                 e.total, sum(i["quantity"] for i in items), e.placed_at, e.hold_expires_at, e.timestamp),
            )  # fmt: skip

    @process_event.register
    def _(self, e: Order.Cancelled, tracking: Tracking) -> None:
        self._close(e, tracking, "cancelled")

    @process_event.register
    def _(self, e: Order.Expired, tracking: Tracking) -> None:
        self._close(e, tracking, "expired")

    @process_event.register
    def _(self, e: Order.PaymentStarted, tracking: Tracking) -> None:
        self._set(e, tracking, payment_status="pending", payment_intent_id=e.payment_intent_id, hold_expires_at=e.until)

    @process_event.register
    def _(self, e: Order.PaymentFailed, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                """UPDATE read.orders SET payment_status = 'failed', last_payment_error = %s,
                     payment_failures = payment_failures + 1, updated_at = %s WHERE id = %s""",
                (e.reason, e.timestamp, e.originator_id),
            )

    @process_event.register
    def _(self, e: Order.Paid, tracking: Tracking) -> None:
        self._set(e, tracking, status="paid", payment_status="succeeded", payment_intent_id=e.payment_intent_id,
                  amount_paid=e.amount, paid_at=e.at, closed_at=None)  # fmt: skip

    @process_event.register
    def _(self, e: Order.LatePaymentRefunded, tracking: Tracking) -> None:
        self._set(e, tracking, status="refunded", payment_status="refunded", payment_intent_id=e.payment_intent_id,
                  amount_paid=e.amount, amount_refunded=e.amount, closed_at=e.at)  # fmt: skip

    @process_event.register
    def _(self, e: Order.Refunded, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                """UPDATE read.orders SET amount_refunded = amount_refunded + %(amount)s,
                     status = CASE WHEN amount_refunded + %(amount)s >= amount_paid THEN 'refunded'
                                   ELSE 'partially_refunded' END,
                     payment_status = CASE WHEN amount_refunded + %(amount)s >= amount_paid THEN 'refunded'
                                   ELSE 'partially_refunded' END,
                     updated_at = %(at)s WHERE id = %(id)s""",
                {"amount": e.amount, "at": e.timestamp, "id": e.originator_id},
            )

    def _set(self, e: Any, tracking: Tracking, **columns: Any) -> None:
        assignments = ", ".join(f"{c} = %({c})s" for c in columns)
        with self.view.writing(tracking) as curs:
            curs.execute(
                f"UPDATE read.orders SET {assignments}, updated_at = %(updated_at)s WHERE id = %(id)s",
                {**columns, "updated_at": e.timestamp, "id": e.originator_id},
            )

    def _close(self, e: Any, tracking: Tracking, status: str) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                "UPDATE read.orders SET status = %s, closed_at = %s, updated_at = %s WHERE id = %s",
                (status, e.at, e.timestamp, e.originator_id),
            )
