"""Tickets read model: one row per issued ticket, with its owner and status."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from eventsourcing.persistence import Tracking

from domain.order import Order
from projections.base import ReadModel, ReadModelView


class TicketsView(ReadModelView):
    tables = ("tickets", "ticket_orders")
    ddl = (
        """CREATE TABLE IF NOT EXISTS read.ticket_orders (
            order_id uuid PRIMARY KEY, buyer_id uuid NOT NULL, event_id uuid NOT NULL, currency text NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS read.tickets (
            id uuid PRIMARY KEY, order_id uuid NOT NULL, owner_id uuid NOT NULL, event_id uuid NOT NULL,
            offer_id uuid NOT NULL, tier_id uuid NOT NULL, seat_id uuid, seat_label text,
            price bigint NOT NULL, currency text NOT NULL, status text NOT NULL,
            generation integer NOT NULL DEFAULT 0, issued_at timestamptz NOT NULL,
            checked_in_at timestamptz, voided_at timestamptz)""",
        "CREATE INDEX IF NOT EXISTS tickets_owner ON read.tickets (owner_id, issued_at DESC)",
        "CREATE INDEX IF NOT EXISTS tickets_order ON read.tickets (order_id)",
        "CREATE INDEX IF NOT EXISTS tickets_event ON read.tickets (event_id)",
    )


class TicketsProjection(ReadModel[TicketsView]):
    name = "tickets"
    view_class = TicketsView

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Ignored events only advance the position."""

    @process_event.register
    def _(self, e: Order.Placed, tracking: Tracking) -> None:
        # Remember who bought and in which currency; tickets appear only when paid.
        with self.view.writing(tracking) as curs:
            curs.execute(
                "INSERT INTO read.ticket_orders VALUES (%s, %s, %s, %s) ON CONFLICT (order_id) DO NOTHING",
                (e.originator_id, e.buyer_id, e.event_id, e.currency),
            )

    @process_event.register
    def _(self, e: Order.Paid, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute("SELECT * FROM read.ticket_orders WHERE order_id = %s", (e.originator_id,))
            order = curs.fetchone()
            if order is None:
                return
            curs.executemany(
                """INSERT INTO read.tickets (id, order_id, owner_id, event_id, offer_id, tier_id, seat_id, seat_label,
                     price, currency, status, issued_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING""",
                [
                    (t["id"], e.originator_id, order["buyer_id"], order["event_id"], t["offer_id"], t["tier_id"],
                     t["seat_id"], t["seat_label"], t["price"], order["currency"], t["status"], e.at)
                    for t in e.tickets
                ],
            )  # fmt: skip

    @process_event.register
    def _(self, e: Order.Refunded, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                "UPDATE read.tickets SET status = 'voided', voided_at = %s WHERE id = ANY(%s)",
                (e.at, list(e.ticket_ids)),
            )

    @process_event.register
    def _(self, e: Order.TicketCheckedIn, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute("UPDATE read.tickets SET checked_in_at = %s WHERE id = %s", (e.at, e.ticket_id))

    @process_event.register
    def _(self, e: Order.TicketTransferred, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                "UPDATE read.tickets SET owner_id = %s, generation = %s WHERE id = %s",
                (e.to_id, e.generation, e.ticket_id),
            )
