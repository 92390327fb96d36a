"""The seat map of a show: sections, rows and seats with status and price, with an ETag that
moves only when seats or prices change (see api/seatmap_cache.py for how it stays cheap)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec

from api.access import owned_event, visible_row
from api.seatmap_cache import SeatMap
from api.security import Principal, optional_principal
from api.services import Services
from projections import queries


class SeatsChange(msgspec.Struct, forbid_unknown_fields=True):
    seat_ids: Annotated[list[UUID], msgspec.Meta(min_length=1, max_length=1000)]


class SeatState(msgspec.Struct):
    id: UUID
    section: str
    row: str
    label: str
    status: str


class SeatsChanged(msgspec.Struct):
    event_id: UUID
    seats: list[SeatState]


async def set_seats_blocked(
    services: Services, user: Principal, event_id: UUID, seat_ids: list[UUID], blocked: bool
) -> SeatsChanged:
    await owned_event(services, user, event_id)
    seats = await services.command(
        lambda: services.boxoffice.set_seats_blocked(event_id, seat_ids, blocked), actor=user.id
    )
    return SeatsChanged(event_id, [SeatState(s.id, s.section, s.row, s.label, s.status) for s in seats])


class SeatMapController(Controller):
    path = "/events"
    tags = ["Catalog"]

    @get(
        "/{event_id:uuid}/seat-map",
        operation_id="getSeatMap",
        exclude_from_auth=True,
        responses={200: ResponseSpec(data_container=SeatMap, description="The seat map")},
        response_headers=[ResponseHeader(name="ETag", description="Version of the seat map", documentation_only=True)],
    )
    async def seat_map(self, event_id: UUID, request: Request[Any, Any, Any], services: Services) -> Response[bytes]:
        """Sections, rows and seats with status and price; send If-None-Match for a 304. Gzipped
        for clients that accept it (a 20,000-seat map is ~4 MB of JSON)."""
        async with services.pool.connection() as conn:
            head = visible_row(await queries.seat_map_version(conn, event_id), optional_principal(request))
            etag = f'"{event_id.hex}-{head["version"]}"'
            headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
            if request.headers.get("if-none-match") == etag:
                return Response(content=b"", status_code=304, headers=headers)
            args = (conn, event_id, head["layout_version"], head["version"])
            if "gzip" in request.headers.get("accept-encoding", ""):
                body = await services.seat_maps.gzipped(*args)
                headers["Content-Encoding"] = "gzip"
            else:
                body = await services.seat_maps.body(*args)
        return Response(content=body, media_type=MediaType.JSON, headers=headers)

    @post("/{event_id:uuid}/seats/block", operation_id="blockSeats", status_code=200)
    async def block(
        self, event_id: UUID, data: SeatsChange, request: Request[Principal, Any, Any], services: Services
    ) -> SeatsChanged:
        """Take seats off sale (house seats, broken chairs): all or none; 409 `seat_taken` if one
        is held or sold, 422 if one is not this event's. Blocking a blocked seat changes nothing."""
        return await set_seats_blocked(services, request.user, event_id, data.seat_ids, True)

    @post("/{event_id:uuid}/seats/unblock", operation_id="unblockSeats", status_code=200)
    async def unblock(
        self, event_id: UUID, data: SeatsChange, request: Request[Principal, Any, Any], services: Services
    ) -> SeatsChanged:
        """Put blocked seats back on sale: all or none; 409 `seat_not_blocked` if one is held or sold."""
        return await set_seats_blocked(services, request.user, event_id, data.seat_ids, False)
