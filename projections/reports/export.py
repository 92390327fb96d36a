"""Reports written out: CSV (UTF-8 with BOM, quoted, formulas defused), JSON and charts, as
streams of byte chunks, so a large report never sits in memory as one document."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from projections.reports.base import Report

BOM = "\ufeff"  # spreadsheet apps read the file as UTF-8 only with it
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"-?\d+(\.\d+)?")
ROWS_PER_CHUNK = 500
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "png": "image/png",
    "svg": "image/svg+xml",
}


def defuse(value: Any) -> Any:
    """A cell a spreadsheet will not run as a formula: text starting with = + - @ (or a tab or
    carriage return) gets a leading apostrophe. Plain numbers such as "-5.00" stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_chunks(report: Report, rows: Iterable[tuple[Any, ...]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow(report.columns)
    for count, row in enumerate(rows, 1):
        writer.writerow([defuse(v) for v in row])
        if count % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def json_chunks(report: Report, meta: dict[str, Any], rows: Iterable[tuple[Any, ...]]) -> Iterator[bytes]:
    document = None if report.per_order else report.document()
    if document is not None:
        yield msgspec.json.encode({"report": report.name, **meta, **document})
        return
    head = msgspec.json.encode({"report": report.name, **meta, "columns": list(report.columns)})
    yield head[:-1] + b',"rows":['
    encoder = msgspec.json.Encoder()
    parts: list[bytes] = []
    first = True
    for row in rows:
        parts.append((b"" if first else b",") + encoder.encode(dict(zip(report.columns, row, strict=True))))
        first = False
        if len(parts) >= ROWS_PER_CHUNK:
            yield b"".join(parts)
            parts = []
    parts.append(b"]}")
    yield b"".join(parts)


def chunks(
    report: Report, fmt: str, meta: dict[str, Any], rows: Iterable[tuple[Any, ...]] | None = None
) -> Iterator[bytes]:
    """The report in `fmt` (one of its `formats`), as byte chunks; `rows` (default: the replayed
    report's) may be a stream that replays as it goes (`Source.rows`)."""
    if fmt not in report.formats:
        raise ValueError(f"the {report.name} report comes as {', '.join(report.formats)}, not {fmt}")
    if fmt == "csv":
        return csv_chunks(report, report.rows() if rows is None else rows)
    if fmt == "json":
        return json_chunks(report, meta, report.rows() if rows is None else rows)
    from projections.reports.charts import render

    return iter([render(report.chart(), fmt)])
