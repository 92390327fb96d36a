"""How long a show's report takes as the show grows, and as the rest of the store grows.

`.venv/bin/python -m bench.report_scaling` starts embedded Postgres under .data/bench-reports,
sells shows of several sizes (orders of 2 tickets, paid) through the commands, interleaved with
a large other show, catches the read models up, and times `sales` (streamed) and `summary`
for each show, then the whole store. Prints a Markdown table.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from uuid import UUID, uuid4

from commands.boxoffice import BoxOffice
from domain.placement import ItemRequest
from projections.reports import REPORTS
from projections.reports.source import Source
from ticketing import ROOT, Settings, migrate, open_boxoffice
from workers.embedded import EmbeddedServices
from workers.projector import rebuild

SIZES = (100, 1_000, 4_000)
OTHER = 4_000  # orders of the other show, sold between each of ours


def on_sale(app: BoxOffice, quantity: int) -> tuple[UUID, UUID]:
    from datetime import UTC, datetime, timedelta

    venue = app.create_venue(name=f"Hall {uuid4().hex[:6]}", address="", city="Berlin", country="DE", capacity=0)
    start = datetime.now(UTC) + timedelta(days=30)
    show = app.create_event(organizer_id=uuid4(), venue_id=venue.id, title="Bench", description="",
                            start_time=start, end_time=start + timedelta(hours=2))  # fmt: skip
    tier = app.add_tier(show.id, name="GA", kind="general", section_ids=[])
    offer = app.add_offer(show.id, tier, name="GA", price=2500, currency="EUR", quantity_for_sale=quantity,
                          max_per_order=10)  # fmt: skip
    app.publish_event(show.id)
    return show.id, offer.id


def sell(app: BoxOffice, offer: UUID, orders: int) -> None:
    for _ in range(orders):
        order, _ = app.place_order(uuid4(), [ItemRequest(offer, 2)])
        app.capture_payment(order.id, None, order.total)


def timed(source: Source, name: str, event_id: UUID) -> tuple[float, int]:
    report = REPORTS[name]()
    started = time.perf_counter()
    rows = sum(1 for _ in source.rows(report, event_id))
    return time.perf_counter() - started, rows


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    data = ROOT / ".data" / "bench-reports"
    data.mkdir(parents=True, exist_ok=True)
    with EmbeddedServices(Path(data), os.environ, fresh=True) as overrides:
        settings = Settings.from_env({**os.environ, **overrides, "DATA_DIR": str(data)})
        migrate(settings)
        app = open_boxoffice(settings)
        shows = []
        _, other_offer = on_sale(app, OTHER * 2 * len(SIZES) + 10)
        for size in SIZES:
            sell(app, other_offer, OTHER)
            event_id, offer = on_sale(app, size * 2)
            sell(app, offer, size)
            shows.append((size, event_id))
        rebuild(settings.eventsourcing_env())
        store = app.recorder.max_notification_id()
        source = Source(app)
        say(f"store: {store:,} events\n")
        say("| show (orders, tickets) | sales.csv rows | sales | summary |")
        say("|---|---|---|---|")
        for size, event_id in shows:
            sales, rows = timed(source, "sales", event_id)
            summary, _ = timed(source, "summary", event_id)
            took = f"{sales * 1000:,.0f} ms | {summary * 1000:,.0f} ms"
            say(f"| {size:,} orders, {size * 2:,} tickets | {rows:,} | {took} |")
        started = time.perf_counter()
        Source(app).run(REPORTS["summary"]())
        say(f"\nsummary of the whole store: {(time.perf_counter() - started) * 1000:,.0f} ms")
        app.close()


if __name__ == "__main__":
    main()
