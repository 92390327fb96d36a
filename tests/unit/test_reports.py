"""Each report fed the events of a small show made by the aggregates themselves."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate

from domain.account import Account
from domain.event import Event
from domain.offer import Offer
from domain.order import Order
from domain.waitlist import Waitlist
from projections.reports import REPORTS, Report, Window
from projections.reports.export import chunks, defuse
from projections.reports.orders import OrderBook

T0 = datetime(2031, 3, 1, 10, tzinfo=UTC)
SCANNER = uuid4()


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def events(*aggregates: Aggregate) -> list[Any]:
    return [e for a in aggregates for e in a.collect_events()]


class Show:
    """A show with one GA offer of 5 at 20.00 EUR and four buyers; see `build`."""

    def __init__(self) -> None:
        self.ann = Account(email="ann@example.com", username="ann", password_hash="x", role="attendee",
                           first_name="Ann", last_name="Lee", phone="")  # fmt: skip
        self.bob = Account(email="bob@example.com", username="bob", password_hash="x", role="attendee",
                           first_name="=HYPERLINK(\"http://x\")", last_name="", phone="")  # fmt: skip
        self.show = Event.schedule(organizer_id=uuid4(), venue_id=uuid4(), title="Jazz Night", description="",
                                   start_time=minutes(600), end_time=minutes(700))  # fmt: skip
        self.tier = self.show.add_tier("Standing", "general", [], None, set())
        self.offer = Offer.define(event_id=self.show.id, tier_id=self.tier, tier_kind="general", name="Early bird",
                                  price=2000, currency="EUR", quantity_for_sale=5, sale_start_time=None,
                                  sale_end_time=None, min_per_order=1, max_per_order=6)  # fmt: skip
        self.waitlist = Waitlist(offer_id=self.offer.id, event_id=self.show.id)
        self.orders: list[Order] = []

    def order(self, buyer: Account, quantity: int, at: datetime) -> Order:
        item = {"offer_id": self.offer.id, "tier_id": self.tier, "seat_id": None, "seat_label": None,
                "quantity": quantity, "unit_price": 2000}  # fmt: skip
        order = Order.place(order_id=uuid4(), buyer_id=buyer.id, event_id=self.show.id, items=[item],  # type: ignore[list-item]
                            currency="EUR", fee_basis_points=0, fee_fixed=100, at=at,
                            hold_until=at + timedelta(minutes=15))  # fmt: skip
        self.offer.claim(order.id, quantity)
        self.orders.append(order)
        return order

    def pay(self, order: Order, at: datetime) -> None:
        order.pay("pi_" + order.id.hex, order.total, at)
        self.offer.sell(order.id, order.ticket_count)

    def build(self) -> Show:
        """Ann buys 3 (paid at 0:05), Bob 2 (paid at 1:10: sold out; one refunded at 2:00), a third
        order is cancelled, a fourth stays held; Ann's first ticket is checked in at 10:00."""
        self.a = self.order(self.ann, 3, minutes(1))
        self.pay(self.a, minutes(5))
        self.a.name_attendees({self.a.tickets[1]["id"]: "+Carla Gómez"}, by=self.ann.id)
        self.b = self.order(self.bob, 2, minutes(60))
        self.pay(self.b, minutes(70))
        ticket = self.b.tickets[1]
        self.b.refund("re_1", [ticket["id"]], ticket["price"], "cannot come", minutes(120))
        self.offer.take_back(self.b.id, 1)
        cancelled = self.order(self.bob, 1, minutes(125))
        cancelled.cancel(minutes(126))
        self.offer.release(cancelled.id, 1)
        self.held = self.order(self.ann, 1, minutes(130))
        self.a.check_in(self.a.tickets[0]["id"], 0, SCANNER, minutes(600))
        return self

    def replay(self, report: Report) -> Report:
        for event in self.stream():
            report.feed(event)
        for event in events(self.ann, self.bob):
            if event.originator_id in report.accounts():
                report.feed(event)
        return report

    def stream(self) -> Iterable[Any]:
        if not hasattr(self, "_stream"):
            self._stream = events(self.show, self.offer, self.waitlist, *self.orders)
        return self._stream


@pytest.fixture
def show() -> Show:
    return Show().build()


def table(report: Report) -> list[dict[str, Any]]:
    return [dict(zip(report.columns, row, strict=True)) for row in report.rows()]


def test_sales_has_one_row_per_order_line_with_fees_and_status(show: Show) -> None:
    rows = table(show.replay(REPORTS["sales"]()))
    assert [(r["quantity"], r["order_status"], r["line_status"]) for r in rows] == [
        (3, "paid", "paid"), (2, "partially_refunded", "partially_refunded"), (1, "cancelled", "cancelled"),
        (1, "held", "held"),
    ]  # fmt: skip
    first = rows[0]
    assert (first["offer"], first["tier"], first["unit_price"], first["fees"], first["total"]) == (
        "Early bird", "Standing", "20.00", "1.00", "61.00"
    )  # fmt: skip
    assert first["placed_at"] == "2031-03-01T10:01:00Z" and first["paid_at"] == "2031-03-01T10:05:00Z"
    assert rows[1]["refunded_at"] == "2031-03-01T12:00:00Z"
    assert first["event"] == "Jazz Night"


def test_sales_window_keeps_orders_placed_in_it(show: Show) -> None:
    report = show.replay(REPORTS["sales"](Window(start=minutes(30), end=minutes(124))))
    assert [r["quantity"] for r in table(report)] == [2]


def test_attendees_lists_valid_tickets_with_holders_and_check_ins(show: Show) -> None:
    report = show.replay(REPORTS["attendees"](ticket_code=lambda t: f"CODE-{str(t)[:4]}"))
    rows = table(report)
    assert len(rows) == 4  # 3 of Ann's, 1 of Bob's (the other refunded); held orders have none
    assert [r["holder_email"] for r in rows] == ["ann@example.com"] * 3 + ["bob@example.com"]
    assert rows[0]["holder_name"] == "Ann Lee" and rows[0]["checked_in_at"] == "2031-03-01T20:00:00Z"
    assert rows[1]["attendee_name"] == "+Carla Gómez" and rows[2]["attendee_name"] == "Ann Lee"
    assert rows[0]["ticket_code"].startswith("CODE-")


def test_refunds_lists_each_refund(show: Show) -> None:
    rows = table(show.replay(REPORTS["refunds"]()))
    assert [(r["tickets"], r["amount"], r["reason"], r["order_status"]) for r in rows] == [
        (1, "20.50", "cannot come", "partially_refunded")
    ]


def test_summary_counts_sold_held_refunded_revenue_and_check_ins(show: Show) -> None:
    doc = show.replay(REPORTS["summary"]()).document()
    assert doc is not None
    assert (doc["tickets_sold"], doc["tickets_held"], doc["tickets_refunded"], doc["checked_in"]) == (4, 1, 1, 1)
    assert doc["revenue"] == {"EUR": "81.50"}  # 61.00 + 41.00 - 20.50
    assert doc["check_in_rate"] == 0.25
    assert doc["sold_out_at"] == doc["offers_sold_out"]["Early bird"]  # 3 + 2 of 5 sold at 11:10
    assert doc["first_sale_at"] == "2031-03-01T10:05:00Z"


def test_summary_waitlist_conversion() -> None:
    show = Show()
    entry = show.waitlist.join(uuid4(), 2, minutes(1))
    other = show.waitlist.join(uuid4(), 1, minutes(2))
    show.waitlist.join(uuid4(), 1, minutes(3))
    show.waitlist.offer(entry, uuid4(), minutes(20))
    show.waitlist.convert(entry)
    show.waitlist.offer(other, uuid4(), minutes(30))
    show.waitlist.lapse(other)
    doc = show.replay(REPORTS["summary"]()).document()
    assert doc is not None
    assert doc["waitlist"] == {"joined": 3, "offered": 2, "converted": 1, "lapsed": 1, "left": 0, "waiting": 1,
                               "waiting_quantity": 1, "conversion_rate": 0.5}  # fmt: skip


def test_sales_over_time_is_cumulative_per_bucket(show: Show) -> None:
    report = show.replay(REPORTS["sales-over-time"](options={"bucket": "hour"}))
    rows = table(report)
    assert rows[0] == {"bucket_start": "2031-03-01T10:00:00Z", "tickets": 3, "cumulative_tickets": 3,
                       "revenue": "61.00", "cumulative_revenue": "61.00", "currency": "EUR", "check_ins": 0,
                       "cumulative_check_ins": 0}  # fmt: skip
    assert [r["cumulative_tickets"] for r in rows][:3] == [3, 5, 4]  # paid at 11:10, refunded at 12:00
    assert rows[-1]["cumulative_check_ins"] == 1 and rows[-1]["bucket_start"] == "2031-03-01T20:00:00Z"
    assert len(rows) == 11  # every hour from 10:00 to 20:00, the empty ones too


def test_door_counts_check_ins_per_five_minutes(show: Show) -> None:
    show.a.check_in(show.a.tickets[1]["id"], 0, SCANNER, minutes(603))
    show.a.check_in(show.a.tickets[2]["id"], 0, SCANNER, minutes(611))
    rows = table(show.replay(REPORTS["door"]()))
    assert [(r["bucket_start"][11:16], r["check_ins"], r["cumulative_check_ins"]) for r in rows] == [
        ("20:00", 2, 2),
        ("20:05", 0, 2),
        ("20:10", 1, 3),
    ]
    assert rows[-1]["share_in"] == 0.75


@pytest.mark.parametrize("name", ["sales-over-time", "door"])
@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_charts_render_titled_and_labelled(show: Show, name: str, fmt: str) -> None:
    report = show.replay(REPORTS[name]())
    body = b"".join(chunks(report, fmt, {}))
    if fmt == "png":
        assert body.startswith(b"\x89PNG\r\n\x1a\n") and len(body) > 10_000
    else:
        text = body.decode()
        assert text.lstrip().startswith("<?xml") and "<svg" in text
        assert "Jazz Night" in text or "Jazz" in text  # the title is drawn (as text or glyph ids)


def test_csv_has_bom_quotes_and_defuses_formulas(show: Show) -> None:
    body = b"".join(chunks(show.replay(REPORTS["attendees"]()), "csv", {}))
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    cells = [c for row in rows for c in row]
    assert "'+Carla Gómez" in cells  # an attendee name starting with + is text, not a formula
    assert '\'=HYPERLINK("http://x")' in cells
    assert not any(c.startswith(("=", "+", "@")) for c in cells)


@pytest.mark.parametrize(("value", "safe"), [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-cmd", "'-cmd"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("-5.00", "-5.00"), ("a=b", "a=b"), (3, 3),
])  # fmt: skip
def test_defuse(value: Any, safe: Any) -> None:
    assert defuse(value) == safe


def test_json_rows_are_objects_and_summary_a_document(show: Show) -> None:
    sales = json.loads(b"".join(chunks(show.replay(REPORTS["sales"]()), "json", {"event_id": "x"})))
    assert sales["report"] == "sales" and sales["event_id"] == "x" and len(sales["rows"]) == 4
    assert sales["rows"][0]["quantity"] == 3
    summary = json.loads(b"".join(chunks(show.replay(REPORTS["summary"]()), "json", {})))
    assert summary["tickets_sold"] == 4


def test_a_format_a_report_does_not_have_is_refused(show: Show) -> None:
    with pytest.raises(ValueError, match="comes as"):
        chunks(REPORTS["sales"](), "png", {})


def test_handled_topics_are_the_events_the_report_needs() -> None:
    topics = REPORTS["attendees"].handled_topics()
    assert "domain.order:Order.Paid" in topics and "domain.account:Account.Registered" in topics
    assert "domain.seat:Seat.Held" not in topics
    assert "domain.account:Account.Registered" not in REPORTS["sales"].handled_topics()


def test_an_empty_show_gives_headers_only_and_an_empty_chart() -> None:
    show = Show()
    body = b"".join(chunks(show.replay(REPORTS["sales"]()), "csv", {}))
    assert body.decode("utf-8-sig").strip() == ",".join(REPORTS["sales"].columns)
    assert b"".join(chunks(show.replay(REPORTS["sales-over-time"]()), "png", {})).startswith(b"\x89PNG")


def test_ids_of_orders_are_uuids(show: Show) -> None:
    assert all(UUID(r["order_id"]) for r in table(show.replay(REPORTS["sales"]())))


def test_a_100000_ticket_attendee_list_streams_in_flat_memory() -> None:
    """2,500 orders of 40 tickets, fed a chunk of 500 orders at a time as `Source.rows` does
    (rows handed on, orders forgotten) and written as CSV: ~15 MB out, a few MB held at most
    (kept whole, the same replay holds ~44 MB)."""
    show = Show()
    item = {"offer_id": show.offer.id, "tier_id": show.tier, "seat_id": None, "seat_label": None,
            "quantity": 40, "unit_price": 2000}  # fmt: skip
    report = REPORTS["attendees"]()

    def stream() -> Iterable[tuple[Any, ...]]:
        for event in events(show.show, show.offer):
            report.feed(event)
        for _ in range(5):
            for n in range(500):
                order = Order.place(order_id=uuid4(), buyer_id=show.ann.id, event_id=show.show.id,
                                    items=[item], currency="EUR", fee_basis_points=0, fee_fixed=0,  # type: ignore[list-item]
                                    at=minutes(n), hold_until=minutes(n + 15))  # fmt: skip
                order.pay(None, order.total, minutes(n + 1))
                for event in order.collect_events():
                    report.feed(event)
            yield from report.rows()
            report.forget()

    tracemalloc.start()
    try:
        size = lines = 0
        for chunk in chunks(report, "csv", {}, stream()):
            size += len(chunk)
            lines += chunk.count(b"\r\n")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lines == 100_001 and size > 14_000_000
    assert peak < 12_000_000, f"peak {peak / 1e6:.1f} MB"


class TiersReport(OrderBook):  # the example in the README, as written there
    name, title, description = "tiers", "Tickets per tier", "valid tickets per tier"
    columns = ("tier", "tickets")

    def rows(self) -> Iterator[tuple[Any, ...]]:
        count = Counter(o.lines[t.line].tier_id for o in self.orders.values() for t in o.tickets if not t.voided_at)
        for tier_id, n in count.most_common():
            yield self.tiers.get(tier_id, ""), n


def test_the_readme_example_report(show: Show) -> None:
    assert table(show.replay(TiersReport())) == [{"tier": "Standing", "tickets": 4}]
