"""Attendees: one row per valid (not refunded) ticket, with its holder and check-in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

from projections.reports.base import PeopleReport, iso
from projections.reports.orders import OrderBook


class AttendeesReport(OrderBook, PeopleReport):
    name = "attendees"
    title = "Attendees"
    per_order = True
    description = "one row per valid ticket: code, holder name and e-mail, tier, seat, check-in time"
    columns = ("ticket_code", "ticket_id", "order_id", "event", "attendee_name", "holder_name", "holder_email",
               "offer", "tier", "day", "seat", "checked_in_at")  # fmt: skip

    def accounts(self) -> set[UUID]:
        return {order.holder(t) for order in self.orders.values() for t in order.tickets if t.voided_at is None}

    def rows(self) -> Iterator[tuple[Any, ...]]:
        for order in sorted(self.orders.values(), key=lambda o: (o.paid_at or o.placed_at, o.id)):
            if order.paid_at is None or not self.window.admits(order.paid_at):
                continue
            for ticket in order.tickets:
                if ticket.voided_at is not None:
                    continue
                line = order.lines[ticket.line]
                name, email = self.people.get(order.holder(ticket), ("", ""))
                yield (
                    self.ticket_code(ticket.id), str(ticket.id), str(order.id), self.show_title(order.event_id),
                    ticket.attendee_name or name,
                    name, email, self.offer_name(line.offer_id), self.tiers.get(line.tier_id, ""),
                    self.tier_days.get(line.tier_id) or "", line.seat_label or "", iso(ticket.checked_in_at),
                )  # fmt: skip
