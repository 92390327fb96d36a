"""Read models follow the event store exactly once, and a rebuild reproduces them."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import singledispatchmethod
from typing import Any, cast
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import Tracking

from commands.boxoffice import BoxOffice
from commands.door import Scan
from domain.order import Order
from domain.placement import ItemRequest
from projections.apply import apply_batch, record_skipped_positions
from projections.base import ReadModel, ReadModelView, Upkeep
from projections.models import READ_MODELS, open_projection, open_view
from tests.images import png
from tests.integration.conftest import OnSale, put_on_sale
from ticketing import Settings
from workers.projector import Runner, rebuild

TABLES = {
    "catalog": ["venues", "events", "tiers", "offers", "seats", "categories", "attractions", "scanners"],
    "orders": ["orders"],
    "holds": ["holds"],
    "tickets": ["tickets", "ticket_orders", "attendee_names"],
    "waitlist": ["waitlists", "waitlist_entries"],
}


def dump(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(settings.database_url) as conn:
        out = {}
        # The rebuild builds some indexes at its end: the same ones must exist.
        indexes = conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'read' ORDER BY 1").fetchall()
        out["indexes"] = [tuple(row) for row in indexes]
        for tables in TABLES.values():
            for table in tables:
                rows = conn.execute(f"SELECT * FROM read.{table} ORDER BY 1").fetchall()
                out[table] = [tuple(map(str, r)) for r in rows]
        return out


def catch_up(settings: Settings, app: BoxOffice) -> None:
    runners = [Runner(app, [open_projection(settings.eventsourcing_env(), name) for name in READ_MODELS])]
    for runner in runners:
        runner.start()
    head = app.recorder.max_notification_id() or 0
    deadline = time.monotonic() + 30
    try:
        for runner in runners:
            for projection in runner.projections:
                while (projection.view.max_tracking_id(app.name) or 0) < head:
                    assert runner.error is None, runner.error
                    assert time.monotonic() < deadline, "read model did not catch up"
                    time.sleep(0.05)
    finally:
        for runner in runners:
            runner.stop()
        for runner in runners:
            runner.join()


def sales_history(app: BoxOffice, sale: OnSale) -> dict[str, Any]:
    """Orders that go through every state the order, hold and ticket models record: paid (after
    a declined attempt) with a ticket transferred, one checked in and one refunded; paid and
    refunded in full; expired; cancelled; still held with a payment started."""
    buyer = uuid4()
    paid, _ = app.place_order(buyer, [ItemRequest(sale.ga_offer, 2), ItemRequest(sale.seat_offer, 1, sale.seats[0])])
    intent = app.start_payment(paid.id).intent
    assert intent is not None
    assert app.record_payment_failure(paid.id, intent.id, "card declined")
    app.capture_payment(paid.id, intent.id, paid.total)
    tickets = app.get_order(paid.id).tickets
    app.name_order_attendees(paid.id, ["Zoë", "Ирина", None], by=buyer)
    app.transfer_ticket(paid.id, tickets[0]["id"], from_id=buyer, to_id=uuid4())
    app.check_in(event_id=sale.event_id, order_id=paid.id, ticket_id=tickets[1]["id"], generation=0,
                 scanner_id=uuid4(), scanner_is_admin=True)  # fmt: skip
    # An offline scanner syncs a scan of the ticket just checked in (it is reported, not recorded).
    app.check_in_batch(event_id=sale.event_id, scanner_id=uuid4(), scanner_is_admin=True, scans=[
        Scan(index=0, ticket_id=tickets[1]["id"], order_id=paid.id, generation=0, at=datetime.now(UTC))])  # fmt: skip
    app.apply_refund(paid.id, "re_one", [tickets[2]["id"]], tickets[2]["price"], "requested_by_customer")

    refunded, _ = app.place_order(uuid4(), [ItemRequest(sale.seat_offer, 1, sale.seats[1])])
    app.capture_payment(refunded.id, None, refunded.total)
    app.refund_remaining(refunded.id, "re_all", "requested_by_customer")

    expired, _ = app.place_order(
        uuid4(), [ItemRequest(sale.ga_offer, 1), ItemRequest(sale.seat_offer, 1, sale.seats[2])]
    )
    assert app.expire_hold(expired.id, at=datetime.now(UTC) + timedelta(days=1))
    cancelled, _ = app.place_order(uuid4(), [ItemRequest(sale.seat_offer, 1, sale.seats[3])])
    app.cancel_order(cancelled.id)
    held, _ = app.place_order(uuid4(), [ItemRequest(sale.ga_offer, 3), ItemRequest(sale.seat_offer, 1, sale.seats[4])])
    app.start_payment(held.id)
    return {"paid": paid.id, "refunded": refunded.id, "expired": expired.id, "cancelled": cancelled.id,
            "held": held.id}  # fmt: skip


def test_rebuilt_read_models_equal_the_live_ones(settings: Settings, boxoffice: BoxOffice) -> None:
    sale = put_on_sale(boxoffice, ga_quantity=20, seats=6)
    pictured = boxoffice.set_event_image(sale.event_id, png(64, 48)).image
    unpictured = put_on_sale(boxoffice, seats=1).event_id
    boxoffice.set_event_image(unpictured, png(32, 32))
    boxoffice.remove_event_image(unpictured)
    orders = sales_history(boxoffice, sale)
    catch_up(settings, boxoffice)
    live = dump(settings)
    with psycopg.connect(settings.database_url) as conn:
        images: dict[Any, Any] = dict(conn.execute("SELECT id, image FROM read.events WHERE id = ANY(%s)",
                                   ([sale.event_id, unpictured],)).fetchall())  # fmt: skip
    assert pictured is not None and images[unpictured] is None
    assert images[sale.event_id] == {"image_id": pictured.image_id, "width": 64, "height": 48,
                                     "card_id": pictured.card_id, "card_width": 64, "card_height": 48}  # fmt: skip
    statuses = {row[0]: row[3] for row in live["orders"]}
    assert [statuses[str(orders[k])] for k in ("paid", "refunded", "expired", "cancelled", "held")] == [
        "partially_refunded", "refunded", "expired", "cancelled", "held",
    ]  # fmt: skip
    # (Other tests share the database: only this sale's rows are looked at.)
    ours = {str(order_id) for order_id in orders.values()}
    assert [row[0] for row in live["holds"] if row[0] in ours] == [str(orders["held"])]
    tickets = {row[0]: row for row in live["tickets"] if row[1] in ours}
    assert len(tickets) == 4 and sorted(row[10] for row in tickets.values()) == ["valid", "valid", "voided", "voided"]
    assert sum(row[13] != "None" for row in tickets.values()) == 1  # checked in
    assert sorted(row[11] for row in tickets.values()) == ["0", "0", "0", "1"]  # transferred once

    names = sorted(row[2] for row in live["attendee_names"] if row[1] == str(orders["paid"]))
    assert names == ["Ирина"]  # Zoë's ticket was transferred: its new holder names it

    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT payment_status, last_payment_error, payment_failures, amount_paid, amount_refunded "
            "FROM read.orders WHERE id = %s",
            (orders["paid"],),
        ).fetchone()
    paid = boxoffice.get_order(orders["paid"])
    assert row == ("partially_refunded", "card declined", 1, paid.total, paid.tickets[2]["price"])

    # However the log is cut into batches (one event each, a few, one page), the result is the same.
    for page in (1, 7, 5000):
        for _ in range(5):
            # In the whole suite the e2e stack shares this store and its worker may still write
            # (a hold expiring): a rebuild is compared with the live models of the same log.
            head = boxoffice.recorder.max_notification_id()
            catch_up(settings, boxoffice)
            live = dump(settings)
            counts = rebuild(settings.eventsourcing_env(), page=page)
            rebuilt = dump(settings)
            if boxoffice.recorder.max_notification_id() == head:
                break
        assert set(counts) == set(READ_MODELS)
        for table in live:
            assert rebuilt[table] == live[table], (page, table)

    # The live runner resumes after a rebuild without applying anything twice.
    boxoffice.place_order(uuid4(), [ItemRequest(sale.ga_offer, 1)])
    catch_up(settings, boxoffice)
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT held FROM read.offers WHERE id = %s", (sale.ga_offer,)).fetchone()
    assert row is not None and row[0] == 4


class CommitsView(ReadModelView):
    """A view with no tables of its own (only its tracking table): counts its committed batches."""

    commits = 0

    def committed(self) -> None:
        self.commits += 1


class CommitsProjection(ReadModel[CommitsView]):
    name = "commits_probe"
    view_class = CommitsView

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Every event only advances the position."""


def test_views_hear_of_the_batches_that_committed(settings: Settings, boxoffice: BoxOffice) -> None:
    put_on_sale(boxoffice)
    view = open_view(settings.eventsourcing_env(), CommitsProjection, create_tables=True)
    projection = CommitsProjection(view=cast(CommitsView, view))
    notifications = boxoffice.recorder.select_notifications(1, 50)
    assert apply_batch([projection], boxoffice, notifications) == len(notifications)
    assert projection.view.commits == 1
    assert apply_batch([projection], boxoffice, notifications) == 0  # nothing new: nothing committed
    assert projection.view.commits == 1


def test_a_batch_reads_the_positions_once_it_holds_the_locks(
    settings: Settings, boxoffice: BoxOffice, caplog: pytest.LogCaptureFixture
) -> None:
    """Another writer of a model (a rebuild) holds its lock and records a position, then commits:
    the live batch that waited for the lock must see that position, not the one of the snapshot
    its locking statement started with (then it would apply the events a second time, which the
    tracking record refuses: the batch fails and is applied again model by model)."""
    put_on_sale(boxoffice)
    view = cast(CommitsView, open_view(settings.eventsourcing_env(), CommitsProjection, create_tables=True))
    projection = CommitsProjection(view=view)
    start = (view.max_tracking_id(boxoffice.name) or 0) + 1  # the probe's table is shared with other tests
    notifications = boxoffice.recorder.select_notifications(start, 50)
    assert notifications
    with ThreadPoolExecutor(1) as pool:
        with view.datastore.transaction(commit=True) as other:
            view.lock(other)
            view.record_position(other, Tracking(boxoffice.name, notifications[-1].id))
            applied = pool.submit(apply_batch, [projection], boxoffice, notifications)
            with psycopg.connect(settings.database_url, autocommit=True) as observer:
                deadline = time.monotonic() + 10
                while not observer.execute(
                    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone():
                    assert time.monotonic() < deadline, "the batch never waited for the model's lock"
                    time.sleep(0.01)
        assert applied.result(timeout=10) == 0
    assert not [r for r in caplog.records if "failed; applying it model by model" in r.getMessage()]
    assert view.commits == 0
    assert view.max_tracking_id(boxoffice.name) == notifications[-1].id


def test_a_table_is_vacuumed_once_enough_of_it_was_written(settings: Settings, boxoffice: BoxOffice) -> None:
    """The listing's upkeep (statistics and the visibility map its index-only counts need),
    instead of waiting for autovacuum."""

    def last_vacuum() -> datetime | None:
        with psycopg.connect(settings.database_url) as conn:
            row = conn.execute(
                "SELECT last_vacuum FROM pg_stat_user_tables WHERE relid = 'read.events'::regclass"
            ).fetchone()
            assert row is not None
            at: datetime | None = row[0]
            return at

    catalog = open_projection(settings.eventsourcing_env(), "catalog")
    upkeep = Upkeep(catalog.view.datastore, "read.events", min_rows=10)
    before = last_vacuum()
    upkeep.note(6)
    assert upkeep.vacuums == 0 and upkeep.churn == 6  # below the threshold: no VACUUM started
    upkeep.note(6)
    deadline = time.monotonic() + 30
    while upkeep.vacuums < 1:
        assert time.monotonic() < deadline, "no VACUUM after enough rows were written"
        time.sleep(0.05)
    after = last_vacuum()
    assert after is not None and (before is None or after > before)
    assert upkeep.churn == 0


class IdleView(CommitsView):
    """Like the notifier's view: a batch with nothing for it may leave its position unrecorded."""

    idle_position_seconds = 0.5


class IdleProjection(ReadModel[IdleView]):
    name = "idle_probe"
    view_class = IdleView

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Other events only advance the position."""

    @process_event.register
    def _(self, e: Order.Cancelled, tracking: Tracking) -> None:
        """The one event it acts on."""


def test_a_model_that_may_skips_batches_with_nothing_for_it_and_records_them_later(
    settings: Settings, boxoffice: BoxOffice
) -> None:
    begin = boxoffice.recorder.max_notification_id() or 0  # the store is shared: this test's events come after
    sale = put_on_sale(boxoffice, ga_quantity=20)
    orders = [boxoffice.place_order(uuid4(), [ItemRequest(sale.ga_offer, 1)])[0].id for _ in range(6)]
    view = cast(IdleView, open_view(settings.eventsourcing_env(), IdleProjection, create_tables=True))
    projection = IdleProjection(view=view)
    start = max(view.max_tracking_id(boxoffice.name) or 0, begin) + 1
    quiet = [n for n in boxoffice.recorder.select_notifications(start, 500) if not n.topic.endswith("Order.Cancelled")]
    assert len(quiet) >= 6
    first, second, third = quiet[0:2], quiet[2:4], quiet[4:6]

    def position() -> int:
        return view.max_tracking_id(boxoffice.name) or 0

    # Never recorded yet: recorded.
    assert apply_batch([projection], boxoffice, first) == 2
    assert (view.commits, position()) == (1, first[-1].id)
    # Nothing for it, recorded just now: skipped (no transaction at all), noted as skipped.
    assert apply_batch([projection], boxoffice, second) == 0
    assert apply_batch([projection], boxoffice, third) == 0
    assert (view.commits, position(), view.skipped) == (1, first[-1].id, Tracking(boxoffice.name, third[-1].id))
    # The runner, once no event has come for a while, records what was skipped.
    record_skipped_positions([projection])
    assert (position(), view.skipped) == (third[-1].id, None)
    record_skipped_positions([projection])  # nothing skipped since: nothing to do
    assert position() == third[-1].id

    # An event it handles is never skipped.
    boxoffice.cancel_order(orders[0])
    cancelled = [n for n in boxoffice.recorder.select_notifications(third[-1].id + 1, 500)
                 if n.topic.endswith("Order.Cancelled") and n.originator_id == orders[0]]  # fmt: skip
    assert len(cancelled) == 1
    assert apply_batch([projection], boxoffice, cancelled) == 1
    assert (view.commits, position()) == (2, cancelled[0].id)

    # Nothing for it, but the last record is older than idle_position_seconds: recorded.
    boxoffice.cancel_order(orders[1])
    later = [n for n in boxoffice.recorder.select_notifications(cancelled[0].id + 1, 500)
             if not n.topic.endswith("Order.Cancelled")]  # fmt: skip
    assert later
    time.sleep(0.6)
    assert apply_batch([projection], boxoffice, later) == len(later)
    assert (view.commits, position(), view.skipped) == (3, later[-1].id, None)


def test_the_runner_records_a_skipped_position_once_no_event_comes(settings: Settings, boxoffice: BoxOffice) -> None:
    """The notifier's runner: under a stream of orders (no mail) its position moves at most once
    a second, and once the stream stops it reaches the end of the store within about a second."""
    from workers.notifier import open_notifier

    sale = put_on_sale(boxoffice, ga_quantity=50)
    notifier = open_notifier(settings.eventsourcing_env())
    runner = Runner(boxoffice, [notifier])
    runner.start()
    try:
        for _ in range(30):
            boxoffice.place_order(uuid4(), [ItemRequest(sale.ga_offer, 1)])
            time.sleep(0.02)
        head = boxoffice.recorder.max_notification_id() or 0
        deadline = time.monotonic() + 10
        while (notifier.view.max_tracking_id(boxoffice.name) or 0) < head:
            assert runner.error is None, runner.error
            assert time.monotonic() < deadline, "the skipped position was never recorded"
            time.sleep(0.05)
    finally:
        runner.stop()
        runner.join()
