"""Sales over time (cumulative tickets and revenue, check-ins at the door once they start) and
the door (check-ins per five minutes): tables per time bucket, and charts of them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from projections.reports.base import Chart, Series, iso, money
from projections.reports.orders import OrderBook

BUCKETS = {"minute": timedelta(minutes=1), "5min": timedelta(minutes=5), "hour": timedelta(hours=1),
           "day": timedelta(days=1)}  # fmt: skip
MAX_BUCKETS = 20_000


def floor(at: datetime, size: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((at - epoch) // size) * size


class SalesOverTimeReport(OrderBook):
    name = "sales-over-time"
    title = "Sales over time"
    description = "cumulative tickets sold and revenue per minute/hour/day (option bucket), with check-ins"
    formats = ("png", "svg", "csv", "json")
    columns: ClassVar[tuple[str, ...]] = (
        "bucket_start", "tickets", "cumulative_tickets", "revenue", "cumulative_revenue", "currency",
        "check_ins", "cumulative_check_ins",
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.size = BUCKETS["minute"]  # the bucket the last table was made with

    def bucket(self, times: list[datetime]) -> timedelta:
        chosen = self.options.get("bucket")
        if chosen in BUCKETS:
            return BUCKETS[chosen]
        span = (max(times) - min(times)) if times else timedelta(0)
        size = BUCKETS["minute"] if span <= timedelta(hours=6) else BUCKETS["hour"] if span <= timedelta(days=14) \
            else BUCKETS["day"]  # fmt: skip
        while times and span / size > MAX_BUCKETS:
            size *= 2
        return size

    def currency(self) -> str:
        """Revenue is charted in the show's currency (the one most orders were paid in)."""
        counts: dict[str, int] = {}
        for order in self.orders.values():
            counts[order.currency] = counts.get(order.currency, 0) + 1
        return max(counts, key=lambda c: counts[c]) if counts else ""

    def changes(self) -> list[tuple[datetime, int, int, int]]:
        """(time, tickets, revenue, check-ins): +sales at payment, -refunds when refunded."""
        currency = self.currency()
        out: list[tuple[datetime, int, int, int]] = []
        for order in self.orders.values():
            money_counts = order.currency == currency
            if order.paid_at and order.tickets:
                out.append((order.paid_at, len(order.tickets), order.total if money_counts else 0, 0))
            for refund in order.refunds:
                if refund.tickets:
                    out.append((refund.at, -refund.tickets, -refund.amount if money_counts else 0, 0))
            for ticket in order.tickets:
                if ticket.checked_in_at is not None and ticket.voided_at is None:
                    out.append((ticket.checked_in_at, 0, 0, 1))
        return [c for c in out if self.window.admits(c[0])]

    def table(self) -> tuple[str, list[tuple[datetime, int, int, int, int, int, int]]]:
        """Per bucket: start, tickets, cumulative, revenue, cumulative, check-ins, cumulative."""
        changes = self.changes()
        if not changes:
            return self.currency(), []
        size = self.size = self.bucket([c[0] for c in changes])
        per: dict[datetime, list[int]] = {}
        for at, tickets, revenue, check_ins in changes:
            row = per.setdefault(floor(at, size), [0, 0, 0])
            row[0] += tickets
            row[1] += revenue
            row[2] += check_ins
        out = []
        total = [0, 0, 0]
        start, end = min(per), max(per)
        at = start
        while at <= end:  # every bucket, also the empty ones: a chart's x axis is time
            t, r, c = per.get(at, (0, 0, 0))
            total = [total[0] + t, total[1] + r, total[2] + c]
            out.append((at, t, total[0], r, total[1], c, total[2]))
            at += size
        return self.currency(), out

    def rows(self) -> Iterator[tuple[Any, ...]]:
        currency, table = self.table()
        for at, t, ct, r, cr, c, cc in table:
            yield iso(at), t, ct, money(r, currency), money(cr, currency), currency, c, cc

    def chart(self) -> Chart:
        currency, table = self.table()
        if table:  # the last bucket drawn as wide as the others
            table = [*table, (table[-1][0] + self.size, *table[-1][1:])]
        xs = [row[0] for row in table]
        series = [
            Series("tickets sold (cumulative)", xs, [row[2] for row in table], "step"),
            Series(f"revenue ({currency})", xs, [row[4] / 100 for row in table], "step", "right"),
        ]
        first_check_in = next((n for n, row in enumerate(table) if row[6]), None)
        if first_check_in is not None:  # the door line starts when the door does
            series.append(Series("checked in (cumulative)", xs[first_check_in:],
                                 [row[6] for row in table[first_check_in:]], "step"))  # fmt: skip
        titles = ", ".join(s.title for s in self.shows.values()) or "all shows"
        return Chart(f"Sales over time — {titles}", "time (UTC)", "tickets", series, f"revenue ({currency})", currency)


class DoorReport(SalesOverTimeReport):
    name = "door"
    title = "Door"
    description = "check-ins per five minutes, and how many are in"
    columns: ClassVar[tuple[str, ...]] = (
        "bucket_start", "check_ins", "cumulative_check_ins", "valid_tickets", "share_in",
    )  # fmt: skip

    def changes(self) -> list[tuple[datetime, int, int, int]]:
        return [c for c in super().changes() if c[3]]

    def bucket(self, times: list[datetime]) -> timedelta:
        return BUCKETS.get(self.options.get("bucket", "5min"), BUCKETS["5min"])

    def valid_tickets(self) -> int:
        return sum(1 for o in self.orders.values() for t in o.tickets if t.voided_at is None)

    def rows(self) -> Iterator[tuple[Any, ...]]:
        valid = self.valid_tickets()
        for at, _, _, _, _, c, cc in self.table()[1]:
            yield iso(at), c, cc, valid, round(cc / valid, 4) if valid else 0.0

    def chart(self) -> Chart:
        table = self.table()[1]
        if table:
            table = [*table, (table[-1][0] + self.size, 0, *table[-1][2:5], 0, table[-1][6])]
        xs = [row[0] for row in table]
        size = self.bucket([]).total_seconds() / 60
        titles = ", ".join(s.title for s in self.shows.values()) or "all shows"
        return Chart(
            f"Check-ins at the door — {titles}", "time (UTC)", f"check-ins per {size:g} minutes",
            [Series("check-ins", xs, [row[5] for row in table], "bar"),
             Series("checked in (cumulative)", xs, [row[6] for row in table], "step", "right")],
            "checked in", bar_width_minutes=size,
        )  # fmt: skip
