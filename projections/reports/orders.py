"""The orders of a replay, as the reports that need them keep them: compact, per order."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.order import Order
from projections.reports.base import Report, on


@dataclass(slots=True)
class Line:
    offer_id: UUID
    tier_id: UUID
    seat_label: str | None
    quantity: int
    unit_price: int
    fees: int  # this line's share of the order's fees


@dataclass(slots=True)
class TicketRow:
    id: UUID
    line: int  # index of its order line
    price: int
    voided_at: datetime | None = None
    holder_id: UUID | None = None
    attendee_name: str | None = None
    checked_in_at: datetime | None = None


@dataclass(slots=True)
class Refund:
    at: datetime
    amount: int
    tickets: int
    reason: str
    refund_id: str


@dataclass(slots=True)
class OrderRow:
    id: UUID
    event_id: UUID
    buyer_id: UUID
    currency: str
    fees: int
    total: int
    placed_at: datetime
    lines: list[Line]
    status: str = "held"
    paid_at: datetime | None = None
    closed_at: datetime | None = None
    tickets: list[TicketRow] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    names: dict[UUID, str | None] = field(default_factory=dict)  # named before payment

    def holder(self, ticket: TicketRow) -> UUID:
        return ticket.holder_id or self.buyer_id


def spread_fees(fees: int, quantities: list[int]) -> list[int]:
    """Each line's share of the fees, as `Order` spreads them over its tickets (equal shares,
    the remainder on the very first ticket)."""
    count = sum(quantities)
    if not count or not fees:
        return [0] * len(quantities)
    share, rest = divmod(fees, count)
    return [share * q + (rest if i == 0 else 0) for i, q in enumerate(quantities)]


class OrderBook(Report):
    """Keeps every order of the replay (`self.orders`), with its lines, tickets and refunds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.orders: dict[UUID, OrderRow] = {}
        self._tickets: dict[UUID, TicketRow] = {}

    def forget(self) -> None:
        self.orders.clear()
        self._tickets.clear()
        self.people.clear()

    @on(Order.Placed)
    def _placed(self, e: Order.Placed) -> None:
        shares = spread_fees(e.fees, [i["quantity"] for i in e.items])
        lines = [Line(i["offer_id"], i["tier_id"], i["seat_label"], i["quantity"], i["unit_price"], fee)
                 for i, fee in zip(e.items, shares, strict=True)]  # fmt: skip
        self.orders[e.originator_id] = OrderRow(
            e.originator_id, e.event_id, e.buyer_id, e.currency, e.fees, e.total, e.placed_at, lines
        )

    @on(Order.Cancelled, Order.Expired)
    def _closed(self, e: Any) -> None:
        order = self.orders.get(e.originator_id)
        if order:
            order.status = "cancelled" if isinstance(e, Order.Cancelled) else "expired"
            order.closed_at = e.at

    @on(Order.Paid)
    def _paid(self, e: Order.Paid) -> None:
        order = self.orders.get(e.originator_id)
        if order is None:
            return
        order.status, order.paid_at, order.closed_at = "paid", e.at, None
        line_of = [n for n, line in enumerate(order.lines) for _ in range(line.quantity)]
        order.tickets = [TicketRow(t["id"], line_of[k] if k < len(line_of) else 0, t["price"])
                         for k, t in enumerate(e.tickets)]  # fmt: skip
        for ticket in order.tickets:
            ticket.attendee_name = order.names.get(ticket.id)
            self._tickets[ticket.id] = ticket
        order.names = {}

    @on(Order.LatePaymentRefunded)
    def _late_refund(self, e: Order.LatePaymentRefunded) -> None:
        order = self.orders.get(e.originator_id)
        if order:
            order.status, order.closed_at = "refunded", e.at
            order.refunds.append(Refund(e.at, e.amount, 0, "late payment", e.refund_id))

    @on(Order.Refunded)
    def _refunded(self, e: Order.Refunded) -> None:
        order = self.orders.get(e.originator_id)
        if order is None:
            return
        for ticket_id in e.ticket_ids:
            ticket = self._tickets.get(ticket_id)
            if ticket:
                ticket.voided_at = e.at
        order.refunds.append(Refund(e.at, e.amount, len(e.ticket_ids), e.reason, e.refund_id))
        fully = all(t.voided_at is not None for t in order.tickets)
        order.status = "refunded" if fully else "partially_refunded"
        if fully:
            order.closed_at = e.at

    @on(Order.TicketCheckedIn, Order.TicketCheckInAntedated)
    def _checked_in(self, e: Any) -> None:
        ticket = self._tickets.get(e.ticket_id)
        if ticket:
            ticket.checked_in_at = e.at

    @on(Order.TicketTransferred)
    def _transferred(self, e: Order.TicketTransferred) -> None:
        ticket = self._tickets.get(e.ticket_id)
        if ticket:
            ticket.holder_id, ticket.attendee_name = e.to_id, None

    @on(Order.AttendeeNamed)
    def _named(self, e: Order.AttendeeNamed) -> None:
        ticket = self._tickets.get(e.ticket_id)
        if ticket:
            ticket.attendee_name = e.attendee_name
        elif e.originator_id in self.orders:
            self.orders[e.originator_id].names[e.ticket_id] = e.attendee_name
