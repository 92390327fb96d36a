"""Venues and their seating layouts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get, patch, post, put

from api.common import Page, PageParam, PageSizeParam, page_of
from api.security import Principal, admin_only
from api.services import Services
from domain.errors import NotFound
from projections import queries

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(max_length=500)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
Coordinate = Annotated[float, msgspec.Meta(ge=-100_000, le=100_000)]


class VenueCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    address: Text = ""
    city: Annotated[str, msgspec.Meta(max_length=100)] = ""
    country: Annotated[str, msgspec.Meta(max_length=100)] = ""
    capacity: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    timezone: Annotated[str, msgspec.Meta(max_length=64)] = "UTC"


class VenueUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Name | None = None
    address: Text | None = None
    city: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    country: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    capacity: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] | None = None
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    timezone: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    active: bool | None = None


class SeatLayout(msgspec.Struct, forbid_unknown_fields=True):
    label: Label
    x: Coordinate
    y: Coordinate
    accessible: bool = False


class RowLayout(msgspec.Struct, forbid_unknown_fields=True):
    label: Label
    seats: Annotated[list[SeatLayout], msgspec.Meta(min_length=1, max_length=2000)]


class SectionLayout(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    rows: Annotated[list[RowLayout], msgspec.Meta(min_length=1, max_length=2000)]


class LayoutUpdate(msgspec.Struct, forbid_unknown_fields=True):
    sections: Annotated[list[SectionLayout], msgspec.Meta(min_length=1, max_length=500)]


class SectionSummary(msgspec.Struct):
    id: str
    name: str
    rows: int
    seats: int


class Venue(msgspec.Struct):
    id: UUID
    name: str
    address: str
    city: str
    country: str
    capacity: int
    latitude: float | None
    longitude: float | None
    timezone: str
    active: bool
    seat_count: int
    sections: list[SectionSummary]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> Venue:
        return cls(
            id=row["id"],
            name=row["name"],
            address=row["address"],
            city=row["city"],
            country=row["country"],
            capacity=row["capacity"],
            latitude=row["latitude"],
            longitude=row["longitude"],
            timezone=row["timezone"],
            active=row["active"],
            seat_count=row["seat_count"],
            sections=[SectionSummary(**s) for s in row["sections"]],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


async def _venue_row(services: Services, venue_id: UUID) -> dict[str, Any]:
    async with services.pool.connection() as conn:
        row = await queries.venue(conn, venue_id)
    if row is None:
        raise NotFound("venue not found", code="venue_not_found")
    return row


class VenueController(Controller):
    path = "/venues"
    tags = ["Catalog"]

    @get("/", operation_id="listVenues", exclude_from_auth=True)
    async def list_venues(
        self, services: Services, page: PageParam = 1, page_size: PageSizeParam = 20, city: str | None = None
    ) -> Page[Venue]:
        """Active venues, by name."""
        async with services.pool.connection() as conn:
            rows, total = await queries.list_venues(conn, page, page_size, city)
        return page_of([Venue.of(r) for r in rows], total, page, page_size)

    @get("/{venue_id:uuid}", operation_id="getVenue", exclude_from_auth=True)
    async def get_venue(self, venue_id: UUID, services: Services) -> Venue:
        """One venue with a summary of its seating."""
        return Venue.of(await _venue_row(services, venue_id))

    @post("/", operation_id="createVenue", guards=[admin_only], status_code=201)
    async def create_venue(self, data: VenueCreate, request: Request[Principal, Any, Any], services: Services) -> Venue:
        """Create a venue (admin)."""
        venue = await services.command(
            lambda: services.boxoffice.create_venue(**msgspec.structs.asdict(data)), actor=request.user.id
        )
        return Venue.of(await _venue_row(services, venue.id))

    @patch("/{venue_id:uuid}", operation_id="updateVenue", guards=[admin_only])
    async def update_venue(
        self, venue_id: UUID, data: VenueUpdate, request: Request[Principal, Any, Any], services: Services
    ) -> Venue:
        """Change a venue's details (admin)."""
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        await services.command(lambda: services.boxoffice.update_venue(venue_id, changes), actor=request.user.id)
        return Venue.of(await _venue_row(services, venue_id))

    @put("/{venue_id:uuid}/layout", operation_id="setVenueLayout", guards=[admin_only])
    async def set_layout(
        self, venue_id: UUID, data: LayoutUpdate, request: Request[Principal, Any, Any], services: Services
    ) -> Venue:
        """Replace the seating layout: sections -> rows -> seats with x/y (admin)."""
        sections = msgspec.to_builtins(data.sections)
        await services.command(lambda: services.boxoffice.set_venue_layout(venue_id, sections), actor=request.user.id)
        return Venue.of(await _venue_row(services, venue_id))
