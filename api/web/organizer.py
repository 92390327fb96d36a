"""`/organizer`: the organizer's own events (admins: everyone's) with their sales from the sales
read model, the sales-over-time chart and the attendee CSV from the report routes, and the door
scanner of each show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, Response, get

from api.common import money
from api.events import Event
from api.services import Services
from api.web.common import page_error, render, to_login, user_of
from projections import queries


@dataclass(frozen=True)
class EventSales:
    event: Event
    tickets_sold: int
    held: int
    checked_in: int
    revenue: str


class OrganizerPagesController(Controller):
    path = "/organizer"
    include_in_schema = False

    @get("/", exclude_from_auth=True)
    async def dashboard(self, request: Request[Any, Any, Any], services: Services) -> Response[Any]:
        user = user_of(request)
        if user is None:
            return to_login(request)
        if user.role not in ("organizer", "admin"):
            return page_error(request, "Organizers only", "This page is for event organizers.", 403)
        owner = None if user.is_admin else user.id
        shows: list[EventSales] = []
        async with services.pool.connection() as conn:
            rows, _ = await queries.organizer_events(conn, owner, 1, 50)
            for row in rows:
                lines = await queries.sales(conn, row["id"])
                currency = lines[0]["currency"] if lines else row["currency"]
                shows.append(
                    EventSales(
                        event=Event.of(row),
                        tickets_sold=sum(int(r["valid_tickets"]) for r in lines),
                        held=sum(int(r["held_now"]) for r in lines),
                        checked_in=sum(int(r["checked_in"]) for r in lines),
                        revenue=money(sum(int(r["revenue"]) for r in lines), currency) or "0",
                    )
                )
        return render(request, "organizer.html", shows=shows)
