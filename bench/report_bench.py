"""The `report` scenario: reports by replay over a store of a million events.

The store is filled the way `replay` fills it (`seed.seed_history`: real aggregates, saved many
per transaction) up to `report_events`, with one show of `report_show_orders` orders sold in the
middle of it. The events table is then analysed (as autovacuum would have done by then) and the
read models rebuilt (a show's report finds its offers and orders through them). Two reports run,
each in a child process as `ticketing report` runs them (`bench/report_run.py`): the
sales-over-time report of that show, and the summary of the whole store.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from psycopg.sql import SQL, Identifier

from bench import seed
from bench.scenarios import Bench, _rate, _store_size
from bench.stack import log
from ticketing import ROOT


def report(b: Bench, budget_s: float) -> dict[str, Any]:
    """Seed (if the store is smaller than asked), rebuild the read models, time both reports."""
    s = b.scale
    b.stack.stop_app()  # nothing else running: the reports and Postgres have the machine
    buyers = [p.account_id for p in b.people.buyers]
    started = time.monotonic()
    before = _store_size(b)
    first_half = max(0, s.report_events // 2 - before)
    log(f"report: store holds {before} events; history up to {s.report_events // 2}, then the big show")
    if first_half:
        seed.seed_history(b.writer, b.people.organizer_id, buyers, first_half, b.rng)
    venue = seed.history_venue(b.writer)
    show_id, show_events, show_orders = seed.seed_show_sale(
        b.writer, venue, b.people.organizer_id, buyers, s.report_show_orders, b.rng
    )
    rest = max(0, s.report_events - _store_size(b))
    if rest:
        seed.seed_history(b.writer, b.people.organizer_id, buyers, rest, b.rng)
    seeded_s = time.monotonic() - started
    total = _store_size(b)
    log(f"report: {total} events ({seeded_s:.1f}s); show {show_id} has {show_orders} orders; rebuilding read models")
    _analyze(b)
    deadline = time.monotonic() + budget_s
    rebuild = _child(b, ["bench.rebuild", "all"], deadline)
    log(f"report: read models rebuilt in {rebuild.get('seconds')}s; sales-over-time of the show")
    show = _child(b, ["bench.report_run", "show", str(show_id)], deadline)
    log(f"report: show report {show.get('seconds')}s; summary of the whole store")
    store = _child(b, ["bench.report_run", "store"], deadline)
    log(f"report: whole store {store.get('seconds')}s ({store.get('events_per_s')} events/s)")
    return {
        "scenario": "report",
        "events_in_store": total,
        "show": {"event_id": str(show_id), "orders": show_orders, "events_written": show_events, **show},
        "store": store,
        "definition": (
            "show: sales-over-time of one show (ticketing report sales-over-time --event ID), replayed and "
            "written as JSON, in seconds (png_s: drawing the chart on top); store: the summary of every show "
            "(no --event), store events / seconds; memory: peak RSS of the report's own process "
            "(getrusage ru_maxrss) after start-up and after the report"
        ),
        "seed": {
            "seconds": round(seeded_s, 3),
            "events_per_s": _rate(total - before, seeded_s),
            "rebuild_s": rebuild.get("seconds"),
        },
    }


def _analyze(b: Bench) -> None:
    """Statistics for the table just written in bulk, as autovacuum gathers them in a running
    service within a minute or so of such writes (without them the planner guesses)."""
    recorder: Any = b.app.recorder
    table = Identifier(recorder.datastore.schema, recorder.events_table_name)
    with recorder.datastore.get_connection() as conn:
        conn.execute(SQL("ANALYZE {}").format(table))


def _child(b: Bench, module: list[str], deadline: float) -> dict[str, Any]:
    """Run `python -m module ...` with the stack's settings; its last stdout line as JSON."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return {"skipped": "time budget spent"}
    env = {**b.stack.env, "PYTHONUNBUFFERED": "1"}
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and modules
            [sys.executable, "-m", *module], cwd=ROOT, env=env, capture_output=True, timeout=remaining, check=False
        )
    except subprocess.TimeoutExpired:
        return {"timed_out_after_s": round(remaining, 1)}
    if done.returncode != 0:
        return {"failed": done.stderr.decode(errors="replace")[-2000:]}
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result
