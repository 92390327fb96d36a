"""`python -m bench.report_run show EVENT_ID | store`: time reports as `ticketing report` runs them.

Each is timed around the CLI's own function (`workers.reports.run_report`, writing to a file).
`show`: the sales-over-time report of one show (only that show's events, read through the
store's primary key) as JSON, then again as a PNG chart. `store`: the summary of every show, a
replay of the whole store. Prints one JSON object: seconds, events read, and the
process's peak resident memory (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) after start-up and
after the report, so the growth is the report's own.

Run as a child of the benchmark (one process per report, so each peak is its own); the
environment carries the stack's settings (DATABASE_URL, ...).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from commands.tickets_signing import human_code
from projections.reports import REPORTS
from projections.reports.source import Source
from ticketing import Settings, open_accounts, open_boxoffice
from workers.reports import run_report


class Counter:
    """A progress sink that counts: events read (a show) or store positions passed (the store)."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0

    def start(self, total: int, description: str) -> None:
        self.total = total

    def advance(self, count: int) -> None:
        self.done += count


def peak_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def timed(source: Source, name: str, event_id: UUID | None, fmt: str, out: Path) -> float:
    """Seconds `ticketing report NAME [--event ID] --format FMT --out FILE` takes (its own function)."""
    started = time.perf_counter()
    run_report(source, name, event_id=event_id, start=None, end=None, fmt=fmt, out=str(out), options={},
               ticket_code=human_code)  # fmt: skip
    return time.perf_counter() - started


def show(source: Source, event_id: UUID, out: Path) -> dict[str, Any]:
    cpu = cpu_s()
    seconds = timed(source, "sales-over-time", event_id, "json", out / "show.json")
    cpu_json = cpu_s() - cpu
    # The first run reads the show's events from disk or the OS cache (after the rebuild that
    # preceded it); the second finds them in Postgres's buffers, as for a show being sold.
    again = timed(source, "sales-over-time", event_id, "json", out / "show.json")
    png_s = timed(source, "sales-over-time", event_id, "png", out / "show.png")
    # Counted afterwards, untimed: the events the replay read and the orders it found.
    counter, report = Counter(), REPORTS["sales-over-time"]()
    source.run(report, event_id, counter)
    return {
        "events_read": counter.done,
        "orders": len(getattr(report, "orders", {})),
        "seconds": round(seconds, 3),  # replayed and written as JSON (the report's figures)
        "cpu_s": round(cpu_json, 3),
        "seconds_again": round(again, 3),
        "json_bytes": (out / "show.json").stat().st_size,
        "png_s": round(png_s, 3),  # replayed again and drawn as a PNG chart (matplotlib, Agg)
        "png_bytes": (out / "show.png").stat().st_size,
    }


def store(source: Source, out: Path) -> dict[str, Any]:
    events: int = source.boxoffice.recorder.max_notification_id() or 0
    cpu = cpu_s()
    seconds = timed(source, "summary", None, "json", out / "store.json")
    return {
        "store_events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1) if seconds else 0.0,
        "cpu_s": round(cpu_s() - cpu, 3),
        "json_bytes": (out / "store.json").stat().st_size,
    }


def main() -> None:
    settings = Settings.from_env()
    boxoffice, accounts = open_boxoffice(settings), open_accounts(settings)
    try:
        source = Source(boxoffice, accounts)
        before = peak_mib()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            result = show(source, UUID(sys.argv[2]), out) if sys.argv[1] == "show" else store(source, out)
        result["peak_rss_mib"] = {"after_start": before, "after_report": peak_mib()}
        result["memory_growth_mib"] = round(result["peak_rss_mib"]["after_report"] - before, 1)
    finally:
        boxoffice.close()
        accounts.close()
    print(json.dumps(result), flush=True)  # noqa: T201 - the result is the output


if __name__ == "__main__":
    main()
