"""Reports computed by replaying the event store through a projection held in memory.

Adding one: a `Report` subclass (or an `OrderBook`, which already keeps the orders) with a
`name`, `title`, `columns` and `rows()` (or `chart()`), handlers marked with `@on(EventClass)`,
listed in REPORTS below; then a unit test feeding it events (tests/unit/test_reports.py).
"""

from __future__ import annotations

from projections.reports.attendees import AttendeesReport
from projections.reports.base import Report, Window
from projections.reports.refunds import RefundsReport
from projections.reports.sales import SalesReport
from projections.reports.summary import SummaryReport
from projections.reports.timeline import DoorReport, SalesOverTimeReport

REPORTS: dict[str, type[Report]] = {
    r.name: r for r in (SalesReport, AttendeesReport, SalesOverTimeReport, SummaryReport, RefundsReport, DoorReport)
}

__all__ = ["REPORTS", "Report", "Window"]
