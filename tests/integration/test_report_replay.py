"""Reports replayed from the real event store: one show's events only, and the CLI."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID, uuid4

from commands.accounts import Accounts
from commands.boxoffice import BoxOffice
from commands.tickets_signing import human_code
from domain.placement import ItemRequest
from projections.reports import REPORTS
from projections.reports.attendees import AttendeesReport
from projections.reports.source import Source
from tests.integration.conftest import OnSale, put_on_sale
from tests.integration.test_projections import catch_up
from ticketing import ROOT, Settings, open_accounts


class Counter:
    def __init__(self) -> None:
        self.total = 0
        self.read = 0

    def start(self, total: int, description: str) -> None:
        self.total = total

    def advance(self, count: int) -> None:
        self.read += count


def sell(app: BoxOffice, sale: OnSale, orders: int, quantity: int = 1) -> list[UUID]:
    ids = []
    for _ in range(orders):
        order, _ = app.place_order(uuid4(), [ItemRequest(sale.ga_offer, quantity)])
        app.capture_payment(order.id, None, order.total)
        ids.append(order.id)
    return ids


def events_of(app: BoxOffice, ids: list[UUID]) -> int:
    with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        row = conn.execute(
            "SELECT count(*) AS n FROM boxoffice_events WHERE originator_id = ANY(%s)", (ids,)
        ).fetchone()
    return int(row["n"])


def test_a_show_report_reads_only_that_shows_events_and_sees_orders_not_yet_projected(
    boxoffice: BoxOffice, settings: Settings
) -> None:
    mine = put_on_sale(boxoffice, ga_quantity=100)
    other = put_on_sale(boxoffice, ga_quantity=100)
    sell(boxoffice, other, 5)
    first = sell(boxoffice, mine, 3, quantity=2)
    catch_up(settings, boxoffice)
    late = sell(boxoffice, mine, 1)  # placed after the read models' position: found in the store's tail

    progress = Counter()
    report = Source(boxoffice).run(REPORTS["sales"](), mine.event_id, progress)
    rows = list(report.rows())
    assert [UUID(r[0]) for r in rows] == [*first, *late]
    assert progress.read == progress.total > 0
    show = Source(boxoffice).originators(mine.event_id, boxoffice.recorder.max_notification_id() or 0)
    assert progress.read <= events_of(boxoffice, [*show[0], *show[1]])
    assert other.ga_offer not in show[0] and set(show[1]) == {*first, *late}


def test_large_reports_stream_a_chunk_of_orders_at_a_time(boxoffice: BoxOffice, settings: Settings) -> None:
    sale = put_on_sale(boxoffice, ga_quantity=100)
    paid = sell(boxoffice, sale, 7, quantity=3)
    catch_up(settings, boxoffice)
    report = AttendeesReport()
    held = []
    streamed = []
    for row in Source(boxoffice, chunk=2).rows(report, sale.event_id):
        held.append(len(report.orders))
        streamed.append(row)
    assert max(held) <= 2  # never more than a chunk of orders in memory
    assert [UUID(r[2]) for r in streamed[::3]] == paid  # every ticket, in the order the orders were placed
    whole = Source(boxoffice).run(REPORTS["attendees"](), sale.event_id)
    assert sorted(streamed) == sorted(whole.rows())


def test_report_work_follows_the_show_not_the_store(boxoffice: BoxOffice, settings: Settings) -> None:
    """The same show replayed before and after the store grows by another show's 300 orders:
    the same events are read (and the time stays of the same order)."""
    mine = put_on_sale(boxoffice, ga_quantity=100)
    sell(boxoffice, mine, 20)
    catch_up(settings, boxoffice)

    def measure() -> tuple[int, float]:
        progress = Counter()
        started = time.perf_counter()
        Source(boxoffice).run(REPORTS["summary"](), mine.event_id, progress)
        return progress.read, time.perf_counter() - started

    before, took_before = measure()
    big = put_on_sale(boxoffice, ga_quantity=1000)
    sell(boxoffice, big, 300)
    catch_up(settings, boxoffice)
    after, took_after = measure()
    assert before == after
    whole = Counter()
    Source(boxoffice).run(REPORTS["summary"](), None, whole)
    assert whole.total > after  # the whole store is larger: it would have read more
    print(f"\nshow of 20 orders: {before} events, {took_before * 1000:.1f} ms; after 300 more orders elsewhere: "
          f"{after} events, {took_after * 1000:.1f} ms")  # fmt: skip


def test_attendees_names_holders_from_the_accounts_store(boxoffice: BoxOffice, settings: Settings) -> None:
    accounts: Accounts = open_accounts(settings)
    try:
        person = accounts.register(email=f"{uuid4().hex[:8]}@example.com", username="p", password="a-long-password",
                                   role="attendee", first_name="Zoë", last_name="=Quinn")  # fmt: skip
        sale = put_on_sale(boxoffice)
        order, _ = boxoffice.place_order(person.id, [ItemRequest(sale.ga_offer, 2)])
        boxoffice.capture_payment(order.id, None, order.total)
        catch_up(settings, boxoffice)
        report = Source(boxoffice, accounts).run(REPORTS["attendees"](ticket_code=human_code), sale.event_id)
        rows = [dict(zip(report.columns, r, strict=True)) for r in report.rows()]
        assert [(r["holder_name"], r["holder_email"]) for r in rows] == [("Zoë =Quinn", person.email)] * 2
        assert rows[0]["ticket_code"] == human_code(UUID(rows[0]["ticket_id"]))
    finally:
        accounts.close()


def test_cli_writes_a_report_with_a_progress_bar(boxoffice: BoxOffice, settings: Settings, stack_env: dict[str, str],
                                                 tmp_path: Path) -> None:  # fmt: skip
    sale = put_on_sale(boxoffice)
    paid = sell(boxoffice, sale, 2)
    catch_up(settings, boxoffice)
    cli = [sys.executable, str(ROOT / "ticketing.py"), "report"]
    listed = subprocess.run([*cli, "--list"], env=stack_env, capture_output=True, text=True, check=True)
    assert all(name in listed.stdout for name in REPORTS)

    out = tmp_path / "sales.csv"
    done = subprocess.run([*cli, "sales", "--event", str(sale.event_id), "--out", str(out)], env=stack_env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert "replaying the show" in done.stderr and "events/s" in done.stderr and "written to" in done.stderr
    body = out.read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert {UUID(r["order_id"]) for r in rows} == set(paid)

    summary = subprocess.run([*cli, "summary", "--event", str(sale.event_id), "--format", "json"], env=stack_env,
                             capture_output=True, check=True)  # fmt: skip
    assert json.loads(summary.stdout)["tickets_sold"] == 2
    chart = tmp_path / "sales.svg"
    subprocess.run([*cli, "sales-over-time", "--event", str(sale.event_id), "--out", str(chart)], env=stack_env,
                   capture_output=True, check=True)  # fmt: skip
    assert b"<svg" in chart.read_bytes()

    wrong = subprocess.run(
        [*cli, "sales", "--format", "png"], env=stack_env, capture_output=True, text=True, check=False
    )
    assert wrong.returncode != 0 and "comes as csv, json" in wrong.stderr
    nowhere = subprocess.run([*cli, "sales", "--event", str(uuid4())], env=stack_env, capture_output=True, text=True,
                             check=False)  # fmt: skip
    assert nowhere.returncode != 0 and "no show" in nowhere.stderr
    rebuilt = subprocess.run([sys.executable, str(ROOT / "ticketing.py"), "projections", "rebuild", "holds"],
                             env=stack_env, capture_output=True, text=True, check=True)  # fmt: skip
    assert "rebuilding holds" in rebuilt.stderr and "events/s" in rebuilt.stderr
    assert rebuilt.stdout.startswith("rebuilt holds:")
    unknown = subprocess.run([*cli, "nope"], env=stack_env, capture_output=True, text=True, check=False)
    assert unknown.returncode != 0 and "unknown report" in unknown.stderr
