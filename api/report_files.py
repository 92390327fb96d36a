"""Reports computed by replaying one show's events (`projections/reports`), for the organizer
who owns the show or an admin: CSV, JSON, PNG and SVG, streamed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import Parameter, QueryParameter
from litestar.response import Stream

from api.access import owned_event
from api.security import Principal
from api.services import Services
from commands.tickets_signing import human_code
from domain.errors import Invalid, NotFound
from projections.reports import REPORTS, Window
from projections.reports.export import CONTENT_TYPES, chunks
from projections.reports.source import Source

FILES = ", ".join(f"`{name}.{fmt}`" for name, r in REPORTS.items() for fmt in r.formats)
From = Annotated[datetime | None, QueryParameter(name="from", description="rows from this time on (ISO 8601)")]
To = Annotated[datetime | None, QueryParameter(name="to", description="the report as it stood at this time (ISO 8601)")]
Bucket = Annotated[
    str | None, Parameter(pattern="^(minute|5min|hour|day)$", description="time buckets of charts (default: by span)")
]


@dataclass
class ReportFileOperation(Operation):
    """The OpenAPI operation of a report file: its 200 comes in each of the report formats."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            text, binary = Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
            ok.content = {
                CONTENT_TYPES["csv"]: OpenAPIMediaType(schema=text),
                CONTENT_TYPES["json"]: OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT)),
                CONTENT_TYPES["png"]: OpenAPIMediaType(schema=binary),
                CONTENT_TYPES["svg"]: OpenAPIMediaType(schema=text),
            }


class ReportLink(msgspec.Struct):
    name: str
    title: str
    description: str
    formats: list[str]
    urls: list[str]


class ReportFileController(Controller):
    path = "/events"
    tags = ["Reports"]

    @get("/{event_id:uuid}/reports", operation_id="listEventReports")
    async def list_reports(
        self, event_id: UUID, request: Request[Principal, Any, Any], services: Services
    ) -> list[ReportLink]:
        """The reports of a show and where to get them (owner, admin)."""
        await owned_event(services, request.user, event_id)
        base = f"/api/v1/events/{event_id}/reports"
        return [
            ReportLink(name, r.title, r.description, list(r.formats), [f"{base}/{name}.{f}" for f in r.formats])
            for name, r in REPORTS.items()
        ]

    @get("/{event_id:uuid}/reports/summary", operation_id="getEventReportSummary")
    async def summary(
        self,
        event_id: UUID,
        request: Request[Principal, Any, Any],
        services: Services,
        start: From = None,
        end: To = None,
    ) -> dict[str, Any]:
        """Sold, held, refunded, revenue per currency, check-in rate, sell-out time, waitlist
        size and conversion, computed from the show's events (owner, admin)."""
        await owned_event(services, request.user, event_id)
        report = REPORTS["summary"](_window(start, end))
        source = Source(services.boxoffice, services.accounts)
        await services.call(lambda: source.run(report, event_id))
        return {"report": "summary", **_meta(event_id, start, end), **(report.document() or {})}

    @get(
        "/{event_id:uuid}/reports/{file:str}",
        operation_id="getEventReport",
        operation_class=ReportFileOperation,
        response_description="the report: text/csv (UTF-8 with BOM), application/json, image/png or image/svg+xml",
    )
    async def report(
        self,
        event_id: UUID,
        file: Annotated[str, Parameter(description=f"`NAME.FORMAT`, one of {FILES}; others are 404")],
        request: Request[Principal, Any, Any],
        services: Services,
        start: From = None,
        end: To = None,
        bucket: Bucket = None,
    ) -> Stream:
        """A report of the show replayed from its events (owner, admin): `sales.csv`,
        `attendees.csv`, `sales-over-time.png`/`.svg`, `refunds.csv`, `door.png`, each also as
        `.json`; see `GET /events/{id}/reports`."""
        await owned_event(services, request.user, event_id)
        name, _, fmt = file.rpartition(".")
        report_class = REPORTS.get(name)
        if report_class is None or fmt not in report_class.formats:
            raise NotFound(f"no report {file!r} (see /events/{event_id}/reports)", code="report_not_found")
        options = {"bucket": bucket} if bucket else {}
        meta = _meta(event_id, start, end)
        report = report_class(_window(start, end), options, ticket_code=human_code)
        source = Source(services.boxoffice, services.accounts)
        content: Iterator[bytes]
        if report.per_order and fmt in ("csv", "json"):  # replayed while it streams, in flat memory
            content = chunks(report, fmt, meta, source.rows(report, event_id))
        else:
            await services.call(lambda: source.run(report, event_id))
            content = chunks(report, fmt, meta)
        disposition = "attachment" if fmt == "csv" else "inline"
        return Stream(
            content,
            media_type=CONTENT_TYPES[fmt],
            headers={
                "Content-Disposition": f'{disposition}; filename="{name}-{event_id}.{fmt}"',
                "Cache-Control": "private, no-store",
            },
        )


def _window(start: datetime | None, end: datetime | None) -> Window:
    start, end = _utc(start), _utc(end)
    if start and end and start > end:
        raise Invalid("from must not be after to", field="from")
    return Window(start, end)


def _utc(at: datetime | None) -> datetime | None:
    return at if at is None or at.tzinfo else at.replace(tzinfo=UTC)


def _meta(event_id: UUID, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    return {"event_id": str(event_id), "generated_at": datetime.now(UTC).isoformat(),
            "from": start.isoformat() if start else None, "to": end.isoformat() if end else None}  # fmt: skip
