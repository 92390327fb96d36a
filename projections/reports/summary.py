"""Summary: the show's figures in one document (sold, held, refunded, revenue per currency,
check-in rate, sell-out time, waitlist conversion)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.offer import Offer
from domain.waitlist import Waitlist
from projections.reports.base import iso, money, on
from projections.reports.orders import OrderBook

SOLD = (Offer.Sold, Offer.SoldWithoutHold)


class SummaryReport(OrderBook):
    name = "summary"
    title = "Summary"
    description = "sold, held, refunded, revenue per currency, check-in rate, sell-out time, waitlist conversion"
    columns = ("metric", "value")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offer_sold: dict[UUID, int] = {}
        self.sold_out_at: dict[UUID, datetime] = {}
        self.waitlist: dict[str, int] = dict.fromkeys(("joined", "offered", "converted", "lapsed", "left"), 0)
        self.waiting: dict[UUID, int] = {}  # entry -> quantity, while waiting

    @on(*SOLD)
    def _offer_sold(self, e: Any) -> None:
        sold = self.offer_sold[e.originator_id] = self.offer_sold.get(e.originator_id, 0) + e.quantity
        offer = self.offers.get(e.originator_id)
        if offer and offer.quantity is not None and sold >= offer.quantity:
            self.sold_out_at.setdefault(e.originator_id, e.timestamp)

    @on(Offer.Returned)
    def _offer_returned(self, e: Offer.Returned) -> None:
        self.offer_sold[e.originator_id] = self.offer_sold.get(e.originator_id, 0) - e.quantity

    @on(Waitlist.Joined)
    def _joined(self, e: Waitlist.Joined) -> None:
        self.waitlist["joined"] += 1
        self.waiting[e.entry_id] = e.quantity

    @on(Waitlist.Offered, Waitlist.Left)
    def _left_line(self, e: Any) -> None:
        self.waitlist["offered" if isinstance(e, Waitlist.Offered) else "left"] += 1
        self.waiting.pop(e.entry_id, None)

    @on(Waitlist.Converted, Waitlist.Lapsed)
    def _settled(self, e: Any) -> None:
        self.waitlist["converted" if isinstance(e, Waitlist.Converted) else "lapsed"] += 1

    def document(self) -> dict[str, Any]:
        w = self.window
        tickets = [(o, t) for o in self.orders.values() if o.paid_at and w.admits(o.paid_at) for t in o.tickets]
        valid = [t for _, t in tickets if t.voided_at is None]
        refunds = [(o, r) for o in self.orders.values() for r in o.refunds if w.admits(r.at)]
        revenue: dict[str, int] = {}
        for order in self.orders.values():
            if order.paid_at and w.admits(order.paid_at):
                revenue[order.currency] = revenue.get(order.currency, 0) + order.total
        refunded: dict[str, int] = {}
        for order, refund in refunds:
            refunded[order.currency] = refunded.get(order.currency, 0) + refund.amount
        checked_in = sum(1 for t in valid if t.checked_in_at is not None)
        held = sum(line.quantity for o in self.orders.values() if o.status == "held" for line in o.lines)
        first_sale = min((o.paid_at for o in self.orders.values() if o.paid_at), default=None)
        limited = [oid for oid, offer in self.offers.items() if offer.quantity is not None]
        sell_out = max(self.sold_out_at.values()) if limited and all(o in self.sold_out_at for o in limited) else None
        currencies = sorted(revenue.keys() | refunded.keys())
        return {
            "events": [{"id": str(i), "title": s.title} for i, s in self.shows.items()],
            "orders_paid": sum(1 for o in self.orders.values() if o.paid_at and w.admits(o.paid_at)),
            "tickets_sold": len(valid),
            "tickets_held": held,
            "tickets_refunded": sum(r.tickets for _, r in refunds),
            "revenue": {c: money(revenue.get(c, 0) - refunded.get(c, 0), c) for c in currencies},
            "gross": {c: money(revenue.get(c, 0), c) for c in currencies},
            "refunded": {c: money(refunded.get(c, 0), c) for c in currencies},
            "checked_in": checked_in,
            "check_in_rate": round(checked_in / len(valid), 4) if valid else 0.0,
            "first_sale_at": iso(first_sale) or None,
            "sold_out_at": iso(sell_out) or None,
            "sell_out_seconds": (sell_out - first_sale).total_seconds() if sell_out and first_sale else None,
            "offers_sold_out": {
                self.offers[o].name: iso(at) for o, at in sorted(self.sold_out_at.items(), key=lambda p: p[1])
            },
            "waitlist": {
                **self.waitlist,
                "waiting": len(self.waiting),
                "waiting_quantity": sum(self.waiting.values()),
                "conversion_rate": round(self.waitlist["converted"] / self.waitlist["offered"], 4)
                if self.waitlist["offered"]
                else 0.0,
            },
        }

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """The document flattened to metric/value pairs (`revenue.EUR`, `waitlist.converted`)."""
        for key, value in self.document().items():
            if key == "events":
                continue
            if isinstance(value, dict):
                for sub, item in value.items():
                    yield f"{key}.{sub}", item
            else:
                yield key, "" if value is None else value
