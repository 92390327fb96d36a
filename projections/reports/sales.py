"""Sales: one row per order line (every order placed in the window, whatever became of it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from projections.reports.base import iso, money
from projections.reports.orders import OrderBook


class SalesReport(OrderBook):
    name = "sales"
    title = "Sales"
    per_order = True
    description = "one row per order line: times, offer, tier, day, seat, quantity, prices, fees, status"
    columns = (
        "order_id", "event", "placed_at", "paid_at", "refunded_at", "offer", "tier", "day", "seat",
        "quantity", "unit_price", "fees", "total", "currency", "order_status", "line_status",
    )  # fmt: skip

    def rows(self) -> Iterator[tuple[Any, ...]]:
        for order in sorted(self.orders.values(), key=lambda o: (o.placed_at, o.id)):
            if not self.window.admits(order.placed_at):
                continue
            for n, line in enumerate(order.lines):
                tickets = [t for t in order.tickets if t.line == n]
                voided = [t.voided_at for t in tickets if t.voided_at is not None]
                refunded_at = max(voided) if voided else None
                if order.status == "refunded" and not order.tickets:  # a late payment sent back
                    refunded_at = order.closed_at
                if not tickets:
                    line_status = "refunded" if refunded_at else order.status
                elif len(voided) == len(tickets):
                    line_status = "refunded"
                else:
                    line_status = "partially_refunded" if voided else "paid"
                yield (
                    str(order.id), self.show_title(order.event_id), iso(order.placed_at), iso(order.paid_at),
                    iso(refunded_at), self.offer_name(line.offer_id), self.tiers.get(line.tier_id, ""),
                    self.tier_days.get(line.tier_id) or "", line.seat_label or "", line.quantity,
                    money(line.unit_price, order.currency), money(line.fees, order.currency),
                    money(line.unit_price * line.quantity + line.fees, order.currency), order.currency,
                    order.status, line_status,
                )  # fmt: skip
