"""`ticketing report`: a report replayed from the event store and written to a file or stdout."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from uuid import UUID

from projections.reports import REPORTS, Report, Window
from projections.reports.export import chunks
from projections.reports.source import Source
from workers import heap
from workers.progress import Bar


def list_reports() -> list[str]:
    return [f"{name:<16} {', '.join(r.formats):<20} {r.description}" for name, r in REPORTS.items()]


def parse_time(value: str | None, flag: str) -> datetime | None:
    """An ISO 8601 time or date (a date is its midnight, UTC; a time without a zone is UTC)."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"{flag}: not an ISO 8601 time: {value!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def make_report(name: str, window: Window, options: dict[str, str], **kwargs: Any) -> Report:
    report_class = REPORTS.get(name)
    if report_class is None:
        raise SystemExit(f"unknown report {name!r}; known: {', '.join(REPORTS)} (see --list)")
    return report_class(window, options, **kwargs)


def run_report(
    source: Source,
    name: str,
    *,
    event_id: UUID | None,
    start: str | None,
    end: str | None,
    fmt: str | None,
    out: str | None,
    options: dict[str, str],
    **kwargs: Any,
) -> str:
    """Replay, then write; returns the line to print when done."""
    window = Window(parse_time(start, "--from"), parse_time(end, "--to"))
    if window.start and window.end and window.start > window.end:
        raise SystemExit("--from must not be after --to")
    report = make_report(name, window, options, **kwargs)
    if event_id is not None and not source.has_show(event_id):
        raise SystemExit(f"--event: no show {event_id} in the store")
    fmt = fmt or (Path(out).suffix.lstrip(".") if out else "") or report.formats[0]
    if fmt not in report.formats:
        raise SystemExit(f"the {name} report comes as {', '.join(report.formats)}, not {fmt}")
    if out is None and fmt in ("png", "svg") and sys.stdout.isatty():
        raise SystemExit(f"a {fmt} chart is not for a terminal: give --out FILE (or redirect)")
    meta = {"event_id": str(event_id) if event_id else None, "generated_at": datetime.now(UTC).isoformat(),
            "from": start, "to": end}  # fmt: skip
    target: BinaryIO
    # A replay allocates objects for every event and keeps many: see workers/heap.py.
    with Bar() as bar, heap.paused():
        if report.per_order and fmt in ("csv", "json"):  # replayed while it is written
            body = chunks(report, fmt, meta, source.rows(report, event_id, bar))
        else:
            source.run(report, event_id, bar)
            body = chunks(report, fmt, meta)
        with open(out, "wb") if out else _Stdout() as target:
            for chunk in body:
                target.write(chunk)
    skipped = f" ({report.skipped} undecodable events skipped, see the log)" if report.skipped else ""
    return f"{name}: {fmt} written to {out or 'stdout'}{skipped}"


class _Stdout:
    def __enter__(self) -> BinaryIO:
        return sys.stdout.buffer

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()
