"""Tickets read model: one row per issued ticket, with its owner and status, and the names
attendees put on tickets (kept apart: a name can be given before its ticket is issued, and it
is personal data the erasure of an account will scrub)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from psycopg import Cursor
from psycopg.rows import DictRow

from domain.order import Order, Ticket
from domain.privacy import Erasure
from projections.base import ReadModel, ReadModelView, Row, RowBatch

ORDER_COLUMNS = {"order_id": "uuid", "buyer_id": "uuid", "event_id": "uuid", "currency": "text"}
ORDER_READ = ("buyer_id", "event_id", "currency")
TICKET_COLUMNS = {
    "id": "uuid", "order_id": "uuid", "owner_id": "uuid", "event_id": "uuid", "offer_id": "uuid", "tier_id": "uuid",
    "seat_id": "uuid", "seat_label": "text", "price": "bigint", "currency": "text", "status": "text",
    "generation": "integer", "issued_at": "timestamptz", "checked_in_at": "timestamptz", "voided_at": "timestamptz",
    "checked_in_by": "uuid",
}  # fmt: skip
# What a ticket's later events change.
TICKET_MUTABLE = ("owner_id", "status", "generation", "checked_in_at", "voided_at", "checked_in_by")
NAME_COLUMNS = {"ticket_id": "uuid", "order_id": "uuid", "attendee_name": "text"}
NAME_MUTABLE = ("attendee_name",)
# An erased person's attendee names: on the tickets they hold, and on their orders not yet paid
# (named before any ticket was issued). A rebuild never writes them: they read as None.
SCRUB_NAMES = """DELETE FROM read.attendee_names n WHERE
    n.ticket_id IN (SELECT t.id FROM read.tickets t WHERE t.owner_id = ANY(%(people)s))
    OR (n.order_id IN (SELECT o.order_id FROM read.ticket_orders o WHERE o.buyer_id = ANY(%(people)s))
        AND NOT EXISTS (SELECT 1 FROM read.tickets t WHERE t.id = n.ticket_id))"""


class TicketsView(ReadModelView):
    tables = ("tickets", "ticket_orders", "attendee_names")
    bulk_tables = ("tickets", "ticket_orders", "attendee_names")
    ddl = (
        """CREATE TABLE IF NOT EXISTS read.ticket_orders (
            order_id uuid PRIMARY KEY, buyer_id uuid NOT NULL, event_id uuid NOT NULL, currency text NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS read.tickets (
            id uuid PRIMARY KEY, order_id uuid NOT NULL, owner_id uuid NOT NULL, event_id uuid NOT NULL,
            offer_id uuid NOT NULL, tier_id uuid NOT NULL, seat_id uuid, seat_label text,
            price bigint NOT NULL, currency text NOT NULL, status text NOT NULL,
            generation integer NOT NULL DEFAULT 0, issued_at timestamptz NOT NULL,
            checked_in_at timestamptz, voided_at timestamptz, checked_in_by uuid)""",
        "ALTER TABLE read.tickets ADD COLUMN IF NOT EXISTS checked_in_by uuid",
        """CREATE TABLE IF NOT EXISTS read.attendee_names (
            ticket_id uuid PRIMARY KEY, order_id uuid NOT NULL, attendee_name text NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS tickets_owner ON read.tickets (owner_id, issued_at DESC)",
        "CREATE INDEX IF NOT EXISTS tickets_order ON read.tickets (order_id)",
        # A show's tickets in id order: the scanner kit pages through them by id.
        "CREATE INDEX IF NOT EXISTS tickets_event_id ON read.tickets (event_id, id)",
    )

    # Both tables are written set-based at the end of each batch (see RowBatch).

    def new_batch_state(self) -> TicketsBatch:
        return TicketsBatch()

    def end_batch(self, curs: Cursor[DictRow]) -> None:
        b: TicketsBatch = self.pending
        # Orders first: a payment issues tickets to the buyer its order row names.
        b.buyers.update(b.orders.flush(curs))
        b.tickets.flush(curs)
        b.names.flush(curs)
        if b.erased:
            curs.execute(SCRUB_NAMES, {"people": list(b.erased)})


@dataclass
class TicketsBatch:
    # Never changed once written, but read in full: the tickets of a payment need them.
    orders: RowBatch = field(default_factory=lambda: RowBatch("ticket_orders", ORDER_COLUMNS, ORDER_READ))
    tickets: RowBatch = field(default_factory=lambda: RowBatch("tickets", TICKET_COLUMNS, TICKET_MUTABLE))
    names: RowBatch = field(default_factory=lambda: RowBatch("attendee_names", NAME_COLUMNS, NAME_MUTABLE))
    # The ticket_orders rows of the orders paid in this batch, filled in before tickets are written.
    buyers: dict[UUID, Row] = field(default_factory=dict)
    # People erased in this batch: the names on their tickets go once the batch's rows are written.
    erased: set[UUID] = field(default_factory=set)


class TicketsProjection(ReadModel[TicketsView]):
    name = "tickets"
    view_class = TicketsView

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Ignored events only advance the position."""

    @process_event.register
    def _(self, e: Order.Placed, tracking: Tracking) -> None:
        # Remember who bought and in which currency; tickets appear only when paid.
        order: Row = {
            "order_id": e.originator_id, "buyer_id": e.buyer_id, "event_id": e.event_id, "currency": e.currency,
        }  # fmt: skip

        def insert(row: Row | None) -> Row | None:  # ON CONFLICT (order_id) DO NOTHING
            return order if row is None else row

        with self.view.writing(tracking):
            b: TicketsBatch = self.view.pending
            b.orders.change(e.originator_id, insert)

    @process_event.register
    def _(self, e: Order.Paid, tracking: Tracking) -> None:
        with self.view.writing(tracking):
            b: TicketsBatch = self.view.pending
            b.orders.wanted.add(e.originator_id)
            for ticket in e.tickets:
                b.tickets.change(ticket["id"], _issue(b.buyers, e.originator_id, ticket, e.at))

    @process_event.register
    def _(self, e: Order.Refunded, tracking: Tracking) -> None:
        self._set(tracking, e.ticket_ids, status="voided", voided_at=e.at)

    @process_event.register
    def _(self, e: Order.TicketCheckedIn, tracking: Tracking) -> None:
        self._set(tracking, [e.ticket_id], checked_in_at=e.at, checked_in_by=e.scanner_id)

    @process_event.register
    def _(self, e: Order.TicketCheckInAntedated, tracking: Tracking) -> None:
        self._set(tracking, [e.ticket_id], checked_in_at=e.at, checked_in_by=e.scanner_id)

    @process_event.register
    def _(self, e: Order.TicketTransferred, tracking: Tracking) -> None:
        self._set(tracking, [e.ticket_id], owner_id=e.to_id, generation=e.generation)
        self._name(tracking, e.originator_id, e.ticket_id, None)

    @process_event.register
    def _(self, e: Order.AttendeeNamed, tracking: Tracking) -> None:
        self._name(tracking, e.originator_id, e.ticket_id, e.attendee_name)

    @process_event.register
    def _(self, e: Erasure.Recorded, tracking: Tracking) -> None:
        with self.view.writing(tracking):
            b: TicketsBatch = self.view.pending
            b.erased.add(e.person_id)

    def _name(self, tracking: Tracking, order_id: UUID, ticket_id: UUID, name: str | None) -> None:
        named: Row | None = (
            None if name is None else {"ticket_id": ticket_id, "order_id": order_id, "attendee_name": name}
        )

        def update(_: Row | None) -> Row | None:
            return named

        with self.view.writing(tracking):
            b: TicketsBatch = self.view.pending
            b.names.change(ticket_id, update)

    def _set(self, tracking: Tracking, ticket_ids: list[UUID], **columns: Any) -> None:
        def update(row: Row | None) -> Row | None:
            return None if row is None else {**row, **columns}

        with self.view.writing(tracking):
            b: TicketsBatch = self.view.pending
            for ticket_id in ticket_ids:
                b.tickets.change(ticket_id, update)


def _issue(buyers: dict[UUID, Row], order_id: UUID, ticket: Ticket, at: Any) -> Any:
    """A new ticket row (ON CONFLICT (id) DO NOTHING) for a paid order, owned by its buyer;
    none if the order was never placed. `buyers` is filled in before the change is applied."""

    def issue(row: Row | None) -> Row | None:
        if row is not None:
            return row
        order = buyers.get(order_id)
        if order is None:
            return None
        return {
            "id": ticket["id"], "order_id": order_id, "owner_id": order["buyer_id"], "event_id": order["event_id"],
            "offer_id": ticket["offer_id"], "tier_id": ticket["tier_id"], "seat_id": ticket["seat_id"],
            "seat_label": ticket["seat_label"], "price": ticket["price"], "currency": order["currency"],
            "status": ticket["status"], "generation": 0, "issued_at": at, "checked_in_at": None, "voided_at": None,
            "checked_in_by": None,
        }  # fmt: skip

    return issue
