"""Read models follow the event store exactly once, and a rebuild reproduces them."""

from __future__ import annotations

import time
from typing import Any
from uuid import uuid4

import psycopg

from commands.boxoffice import BoxOffice
from commands.sales import ItemRequest
from projections.runner import READ_MODELS, Runner, open_projection, rebuild
from tests.integration.conftest import put_on_sale
from ticketing import Settings

TABLES = {
    "catalog": ["venues", "events", "tiers", "offers", "seats", "categories", "attractions", "scanners"],
    "orders": ["orders"],
    "holds": ["holds"],
    "tickets": ["tickets", "ticket_orders"],
}


def dump(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(settings.database_url) as conn:
        out = {}
        for tables in TABLES.values():
            for table in tables:
                rows = conn.execute(f"SELECT * FROM read.{table} ORDER BY 1").fetchall()
                out[table] = [tuple(map(str, r)) for r in rows]
        return out


def catch_up(settings: Settings, app: BoxOffice) -> None:
    runners = [Runner(app, [open_projection(settings, name) for name in READ_MODELS])]
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


def test_rebuilt_read_models_equal_the_live_ones(settings: Settings, boxoffice: BoxOffice) -> None:
    sale = put_on_sale(boxoffice, ga_quantity=20, seats=6)
    kept, _ = boxoffice.place_order(
        uuid4(), [ItemRequest(sale.ga_offer, 3), ItemRequest(sale.seat_offer, 1, sale.seats[0])]
    )
    dropped, _ = boxoffice.place_order(uuid4(), [ItemRequest(sale.seat_offer, 1, sale.seats[1])])
    boxoffice.cancel_order(dropped.id)
    catch_up(settings, boxoffice)
    live = dump(settings)
    assert any(str(kept.id) == row[0] for row in live["orders"])

    counts = rebuild(settings)
    assert set(counts) == set(READ_MODELS)
    rebuilt = dump(settings)
    for table in live:
        assert rebuilt[table] == live[table], table

    # The live runner resumes after a rebuild without applying anything twice.
    boxoffice.place_order(uuid4(), [ItemRequest(sale.ga_offer, 1)])
    catch_up(settings, boxoffice)
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT held FROM read.offers WHERE id = %s", (sale.ga_offer,)).fetchone()
    assert row is not None and row[0] == 4
