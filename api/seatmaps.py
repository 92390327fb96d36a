"""The seat map of a show: sections, rows and seats with status and price, with an ETag that
moves only when seats or prices change (see api/seatmap_cache.py for how it stays cheap)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, MediaType, Request, Response, get
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec

from api.access import visible_row
from api.seatmap_cache import SeatMap
from api.security import optional_principal
from api.services import Services
from projections import queries


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
        """Sections, rows and seats with status and price; send If-None-Match for a 304."""
        async with services.pool.connection() as conn:
            head = visible_row(await queries.seat_map_version(conn, event_id), optional_principal(request))
            etag = f'"{event_id.hex}-{head["version"]}"'
            headers = {"ETag": etag, "Cache-Control": "no-cache"}
            if request.headers.get("if-none-match") == etag:
                return Response(content=b"", status_code=304, headers=headers)
            body = await services.seat_maps.body(conn, event_id, head["layout_version"], head["version"])
        return Response(content=body, media_type=MediaType.JSON, headers=headers)
