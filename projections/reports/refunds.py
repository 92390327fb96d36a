"""Refunds: one row per refund (buyer's, organizer's, a cancelled show's, a late payment's)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from projections.reports.base import iso, money
from projections.reports.orders import OrderBook


class RefundsReport(OrderBook):
    name = "refunds"
    title = "Refunds"
    description = "one row per refund: time, order, tickets, amount, reason"
    columns = ("refunded_at", "order_id", "event", "refund_id", "tickets", "amount", "currency", "reason",
               "order_paid_at", "order_status")  # fmt: skip

    def rows(self) -> Iterator[tuple[Any, ...]]:
        refunds = [(r, order) for order in self.orders.values() for r in order.refunds if self.window.admits(r.at)]
        for refund, order in sorted(refunds, key=lambda pair: (pair[0].at, pair[1].id)):
            yield (
                iso(refund.at), str(order.id), self.show_title(order.event_id), refund.refund_id, refund.tickets,
                money(refund.amount, order.currency), order.currency, refund.reason, iso(order.paid_at), order.status,
            )  # fmt: skip
