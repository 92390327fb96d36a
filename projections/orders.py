"""Orders read model: every order with its items and totals, per buyer and per event."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from eventsourcing.persistence import Tracking
from psycopg import Cursor
from psycopg.rows import DictRow

from domain.order import Order
from projections.base import ReadModel, ReadModelView, Row, RowBatch

COLUMNS = {
    "id": "uuid", "buyer_id": "uuid", "event_id": "uuid", "status": "text", "items": "jsonb", "currency": "text",
    "subtotal": "bigint", "fees": "bigint", "total": "bigint", "ticket_count": "integer",
    "placed_at": "timestamptz", "hold_expires_at": "timestamptz", "closed_at": "timestamptz",
    "updated_at": "timestamptz", "payment_status": "text", "payment_intent_id": "text", "amount_paid": "bigint",
    "amount_refunded": "bigint", "paid_at": "timestamptz", "last_payment_error": "text",
    "payment_failures": "integer", "number": "text", "refunds": "jsonb", "tickets_refunded": "integer",
}  # fmt: skip
# What the order's later events change.
MUTABLE = (
    "status", "hold_expires_at", "closed_at", "updated_at", "payment_status", "payment_intent_id", "amount_paid",
    "amount_refunded", "paid_at", "last_payment_error", "payment_failures", "refunds", "tickets_refunded",
    "ticket_count",  # never changed; read so a refund can tell whether any ticket is left valid
)  # fmt: skip


class OrdersView(ReadModelView):
    tables = ("orders",)
    bulk_tables = ("orders",)
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
        "ALTER TABLE read.orders ADD COLUMN IF NOT EXISTS number text",
        # Each refund: {id, amount, ticket_ids, reason, at}; how many tickets refunds voided.
        "ALTER TABLE read.orders ADD COLUMN IF NOT EXISTS refunds jsonb NOT NULL DEFAULT '[]'",
        "ALTER TABLE read.orders ADD COLUMN IF NOT EXISTS tickets_refunded integer NOT NULL DEFAULT 0",
        # Unique in the store already (domain/order_number.py); the index is for looking one up.
        "CREATE UNIQUE INDEX IF NOT EXISTS orders_number ON read.orders (number)",
        "CREATE INDEX IF NOT EXISTS orders_buyer ON read.orders (buyer_id, placed_at DESC)",
        "CREATE INDEX IF NOT EXISTS orders_intent ON read.orders (payment_intent_id)",
        "CREATE INDEX IF NOT EXISTS orders_event ON read.orders (event_id, placed_at DESC)",
    )

    # Orders are written set-based at the end of each batch (see RowBatch).

    def new_batch_state(self) -> RowBatch:
        return RowBatch("orders", COLUMNS, MUTABLE)

    def end_batch(self, curs: Cursor[DictRow]) -> None:
        self.pending.flush(curs)


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
        placed: Row = {
            "id": e.originator_id, "buyer_id": e.buyer_id, "event_id": e.event_id, "status": "held",
            "items": items, "currency": e.currency, "subtotal": e.subtotal, "fees": e.fees, "total": e.total,
            "ticket_count": sum(i["quantity"] for i in items), "placed_at": e.placed_at,
            "hold_expires_at": e.hold_expires_at, "closed_at": None, "updated_at": e.timestamp,
            "payment_status": "unpaid", "payment_intent_id": None, "amount_paid": 0, "amount_refunded": 0,
            "paid_at": None, "last_payment_error": None, "payment_failures": 0, "number": e.number,
            "refunds": [], "tickets_refunded": 0,
        }  # fmt: skip

        def insert(row: Row | None) -> Row | None:  # ON CONFLICT (id) DO NOTHING
            return placed if row is None else row

        self._change(e, tracking, insert)

    @process_event.register
    def _(self, e: Order.Cancelled, tracking: Tracking) -> None:
        self._set(e, tracking, status="cancelled", closed_at=e.at)

    @process_event.register
    def _(self, e: Order.Expired, tracking: Tracking) -> None:
        self._set(e, tracking, status="expired", closed_at=e.at)

    @process_event.register
    def _(self, e: Order.PaymentStarted, tracking: Tracking) -> None:
        self._set(e, tracking, payment_status="pending", payment_intent_id=e.payment_intent_id, hold_expires_at=e.until)

    @process_event.register
    def _(self, e: Order.PaymentFailed, tracking: Tracking) -> None:
        def fail(row: Row | None) -> Row | None:
            if row is None:
                return None
            return {**row, "payment_status": "failed", "last_payment_error": e.reason,
                    "payment_failures": row["payment_failures"] + 1, "updated_at": e.timestamp}  # fmt: skip

        self._change(e, tracking, fail)

    @process_event.register
    def _(self, e: Order.Paid, tracking: Tracking) -> None:
        self._set(e, tracking, status="paid", payment_status="succeeded", payment_intent_id=e.payment_intent_id,
                  amount_paid=e.amount, paid_at=e.at, closed_at=None)  # fmt: skip

    @process_event.register
    def _(self, e: Order.LatePaymentRefunded, tracking: Tracking) -> None:
        def refund(row: Row | None) -> Row | None:
            if row is None:
                return None
            return {**row, "status": "refunded", "payment_status": "refunded",
                    "payment_intent_id": e.payment_intent_id, "amount_paid": e.amount, "amount_refunded": e.amount,
                    "closed_at": e.at, "updated_at": e.timestamp,
                    "refunds": [*row["refunds"], _refund(e.refund_id, e.amount, [], "late payment", e.at)]}  # fmt: skip

        self._change(e, tracking, refund)

    @process_event.register
    def _(self, e: Order.Refunded, tracking: Tracking) -> None:
        def refund(row: Row | None) -> Row | None:
            if row is None:
                return None
            # As the order decides: refunded once no ticket is left valid, whatever the money.
            voided = row["tickets_refunded"] + len(e.ticket_ids)
            status = "refunded" if voided >= row["ticket_count"] else "partially_refunded"
            return {**row, "amount_refunded": row["amount_refunded"] + e.amount, "status": status,
                    "payment_status": status, "tickets_refunded": voided, "updated_at": e.timestamp,
                    "closed_at": e.at if status == "refunded" else row["closed_at"],
                    "refunds": [*row["refunds"], _refund(e.refund_id, e.amount, e.ticket_ids, e.reason, e.at)],
                    }  # fmt: skip

        self._change(e, tracking, refund)

    @process_event.register
    def _(self, e: Order.AmountRefunded, tracking: Tracking) -> None:
        def refund(row: Row | None) -> Row | None:
            if row is None:
                return None
            return {**row, "amount_refunded": row["amount_refunded"] + e.amount, "status": "partially_refunded",
                    "payment_status": "partially_refunded", "updated_at": e.timestamp,
                    "refunds": [*row["refunds"], _refund(e.refund_id, e.amount, [], e.reason, e.at)]}  # fmt: skip

        self._change(e, tracking, refund)

    def _set(self, e: Any, tracking: Tracking, **columns: Any) -> None:
        columns["updated_at"] = e.timestamp

        def update(row: Row | None) -> Row | None:
            return None if row is None else {**row, **columns}

        self._change(e, tracking, update)

    def _change(self, e: Any, tracking: Tracking, change: Any) -> None:
        with self.view.writing(tracking):
            batch: RowBatch = self.view.pending
            batch.change(e.originator_id, change)


def _refund(refund_id: str, amount: int, ticket_ids: list[Any], reason: str, at: Any) -> dict[str, Any]:
    return {"id": refund_id, "amount": amount, "ticket_ids": [str(t) for t in ticket_ids], "reason": reason,
            "at": at.isoformat()}  # fmt: skip
