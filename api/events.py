"""Events (shows): the public listing and search, a show's detail, and what its organizer does
with it (create, edit, publish, cancel, delete a draft, the lineup)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, MediaType, Request, Response, delete, get, patch, post, put
from litestar.datastructures import ResponseHeader
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import Parameter

from api.access import event_row, owned_event, visible_row
from api.common import (
    AwareDatetime,
    Page,
    PageParam,
    PageSizeParam,
    Title,
    money,
    page_of,
    patch_changes,
    to_minor,
    utc,
)
from api.inputs import RAW_BODY_TYPES
from api.offers import Offer, Tier, tiers_of
from api.security import Principal, optional_principal, organizers, verified_only
from api.services import Services, queue_follow_up
from commands.media import ACCEPTED_TYPES, MAX_IMAGE_BYTES, MAX_PIXELS
from domain.event import lifecycle_status
from projections import queries

Description = Annotated[str, msgspec.Meta(max_length=20_000)]


class EventCreate(msgspec.Struct, forbid_unknown_fields=True):
    title: Title
    venue_id: UUID
    start_time: AwareDatetime
    end_time: AwareDatetime
    description: Description = ""
    segment_id: UUID | None = None
    genre_id: UUID | None = None
    sub_genre_id: UUID | None = None
    days: Annotated[list[date], msgspec.Meta(max_length=366)] | None = None
    timezone: Annotated[str, msgspec.Meta(max_length=64)] = "UTC"


class EventUpdate(msgspec.Struct, forbid_unknown_fields=True):
    title: Title | None = None
    description: Description | None = None
    venue_id: UUID | None = None
    start_time: AwareDatetime | None = None
    end_time: AwareDatetime | None = None
    segment_id: UUID | None = None
    genre_id: UUID | None = None
    sub_genre_id: UUID | None = None
    days: Annotated[list[date], msgspec.Meta(max_length=366)] | None = None
    timezone: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class CancelRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class PriceRange(msgspec.Struct):
    min: str | None
    max: str | None
    currency: str | None


class EventImage(msgspec.Struct):
    """The show's picture: `url` for the event page (at most 1600 pixels each way), `card_url`
    for listings (at most 480); both WebP, cached for good (their names are their hashes)."""

    url: str
    width: int
    height: int
    card_url: str
    card_width: int
    card_height: int

    @classmethod
    def of(cls, image: dict[str, Any] | None) -> EventImage | None:
        if not image:
            return None
        return cls(url=media_url(image["image_id"]), width=image["width"], height=image["height"],
                   card_url=media_url(image["card_id"]), card_width=image["card_width"],
                   card_height=image["card_height"])  # fmt: skip


def media_url(sha256: str) -> str:
    """Where a stored image variant is served (`api/media.py`)."""
    return f"/media/{sha256}.webp"


class Event(msgspec.Struct):
    id: UUID
    title: str
    description: str
    status: str
    organizer_id: UUID
    venue_id: UUID
    venue_name: str
    city: str
    segment_id: UUID | None
    genre_id: UUID | None
    sub_genre_id: UUID | None
    start_time: datetime
    end_time: datetime
    timezone: str
    days: list[str]
    price_range: PriceRange
    available: int
    featured: bool
    created_at: datetime
    updated_at: datetime
    # Defaults: listings cached (msgpack) before these fields existed still decode.
    image_url: str | None = None
    image: EventImage | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Event:
        image = EventImage.of(row.get("image"))
        return cls(
            id=row["id"],
            title=row["title"],
            description=row["description"],
            status=lifecycle_status(row["status"], row["end_time"], datetime.now(UTC)),
            organizer_id=row["organizer_id"],
            venue_id=row["venue_id"],
            venue_name=row["venue_name"],
            city=row["city"],
            segment_id=row["segment_id"],
            genre_id=row["genre_id"],
            sub_genre_id=row["sub_genre_id"],
            start_time=row["start_time"],
            end_time=row["end_time"],
            timezone=row["timezone"],
            days=list(row["days"] or []),
            price_range=PriceRange(
                min=money(row["min_price"], row["currency"]),
                max=money(row["max_price"], row["currency"]),
                currency=row["currency"],
            ),
            available=row["available"],
            featured=row["featured"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            image_url=image.url if image else None,
            image=image,
        )


class Attraction(msgspec.Struct):
    id: UUID
    name: str
    description: str
    image_url: str


class AttractionCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Title
    description: Annotated[str, msgspec.Meta(max_length=5000)] = ""
    image_url: Annotated[str, msgspec.Meta(max_length=1000, pattern=r"^(https?://\S+)?$")] = ""


class EventDetail(Event):
    tiers: list[Tier] = []
    offers: list[Offer] = []
    attractions: list[Attraction] = []


async def _detail(services: Services, row: dict[str, Any]) -> EventDetail:
    async with services.pool.connection() as conn:
        tier_rows = await queries.tiers(conn, row["id"])
        offer_rows = await queries.offers(conn, row["id"])
        lineup = await queries.attractions(conn, row["id"])
    tiers, offers = tiers_of(tier_rows, offer_rows)
    base = Event.of(row)
    attractions = [Attraction(a["id"], a["name"], a["description"], a["image_url"]) for a in lineup]
    return EventDetail(**msgspec.structs.asdict(base), tiers=tiers, offers=offers, attractions=attractions)


def _filters_digest(filters: queries.EventFilters) -> str:
    what = sorted((k, str(v)) for k, v in vars(filters).items() if k != "sort" and v is not None)
    return hashlib.blake2b(repr(what).encode(), digest_size=12).hexdigest()


@dataclass
class ImageUpload(Operation):
    """The image routes' request body, for the OpenAPI document: the image's bytes as they are
    (Litestar documents JSON bodies only; the handler reads the raw body itself)."""

    def __post_init__(self) -> None:
        binary = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY))
        limits = f"at most {MAX_IMAGE_BYTES // 2**20} MB and {MAX_PIXELS // 10**6} megapixels"
        self.request_body = RequestBody(required=True, content=dict.fromkeys(ACCEPTED_TYPES, binary),
                                        description=f"The image ({limits})")  # fmt: skip


class EventController(Controller):
    path = "/events"
    tags = ["Catalog"]

    @get(
        "/",
        operation_id="searchEvents",
        exclude_from_auth=True,
        responses={200: ResponseSpec(data_container=Page[Event], description="A page of events")},
        response_headers=[ResponseHeader(name="ETag", description="Version of this page", documentation_only=True)],
    )
    async def search(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
        q: Annotated[str | None, Parameter(max_length=200)] = None,
        city: Annotated[str | None, Parameter(max_length=100)] = None,
        venue_id: UUID | None = None,
        segment_id: UUID | None = None,
        genre_id: UUID | None = None,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        price_min: Annotated[str | None, Parameter(max_length=20)] = None,
        price_max: Annotated[str | None, Parameter(max_length=20)] = None,
        available: bool | None = None,
        organizer_id: UUID | None = None,
        featured: bool | None = None,
        sort: Annotated[str, Parameter(pattern=r"^-?(start_time|price)$|^relevance$")] = "start_time",
    ) -> Response[bytes]:
        """Published upcoming events: full-text search, filters, sorting, pagination.

        Answers are cached (in the process and in Redis) under the catalog read model's position:
        the same search is served from the cache until anything more is projected, or for at most
        LISTING_CACHE_SECONDS, since events drop out of the listing when they end."""
        query = sorted(request.query_params.multi_items())
        digest = hashlib.blake2b(repr(query).encode(), digest_size=12).hexdigest()
        async with services.pool.connection() as conn:
            position = await queries.listing_position(conn, services.boxoffice.name)
            etag = f'"{position}-{digest}"'
            headers = {"ETag": etag, "Cache-Control": "no-cache"}
            if request.headers.get("if-none-match") == etag:
                return Response(content=b"", status_code=304, headers=headers)
            key = f"listing:{position}:{digest}"
            cached = await services.listings.get(key)
            if cached is not None:
                return Response(content=cached, media_type=MediaType.JSON, headers=headers)
            filters = queries.EventFilters(
                q=q,
                city=city,
                venue_id=venue_id,
                segment_id=segment_id,
                genre_id=genre_id,
                date_from=utc(date_from) if date_from and date_from.tzinfo else date_from,
                date_to=utc(date_to) if date_to and date_to.tzinfo else date_to,
                price_min=to_minor(price_min, "EUR", "price_min") if price_min else None,
                price_max=to_minor(price_max, "EUR", "price_max") if price_max else None,
                available=available,
                organizer_id=organizer_id,
                featured=featured,
                sort=sort,
            )
            rows = await queries.search_events(conn, filters, page, page_size)
            if page == 1 and len(rows) < page_size:
                total = len(rows)
            else:
                # Totals do not depend on the page or the order: one count serves them all.
                count_key = f"listing-count:{position}:{_filters_digest(filters)}"
                counted = await services.listings.get(count_key)
                total = int(counted) if counted is not None else await queries.count_events(conn, filters)
                if counted is None:
                    await services.listings.put(count_key, str(total).encode())
        encoded = msgspec.json.encode(page_of([Event.of(r) for r in rows], total, page, page_size))
        await services.listings.put(key, encoded)
        return Response(content=encoded, media_type=MediaType.JSON, headers=headers)

    @post("/", operation_id="createEvent", guards=[organizers], status_code=201)
    async def create(self, data: EventCreate, request: Request[Principal, Any, Any], services: Services) -> EventDetail:
        """Create a draft event at a venue (organizer)."""
        show_id = await create_event(services, request.user, data)
        return await _detail(services, await event_row(services, show_id))

    @get("/{event_id:uuid}", operation_id="getEvent", exclude_from_auth=True)
    async def detail(self, event_id: UUID, request: Request[Any, Any, Any], services: Services) -> EventDetail:
        """One event with tiers, offers, price range and availability (drafts: owner/admin only)."""
        async with services.pool.connection() as conn:
            row = visible_row(await queries.event(conn, event_id), optional_principal(request))
        return await _detail(services, row)

    @patch("/{event_id:uuid}", operation_id="updateEvent")
    async def update(
        self, event_id: UUID, data: EventUpdate, request: Request[Principal, Any, Any], services: Services
    ) -> EventDetail:
        """Partial update; a published event keeps its venue, cancelled ones are frozen."""
        await update_event(services, request.user, event_id, data)
        return await _detail(services, await event_row(services, event_id))

    @delete("/{event_id:uuid}", operation_id="deleteEvent", status_code=204)
    async def delete_draft(self, event_id: UUID, request: Request[Principal, Any, Any], services: Services) -> None:
        """Delete a draft; a published event is cancelled instead (holds released, paid orders
        refunded, as `POST /events/{id}/cancel`); 409 for one already cancelled or completed."""
        await owned_event(services, request.user, event_id)

        def withdraw() -> None:
            show = services.boxoffice.delete_event(event_id)
            if show.status == "cancelled":
                queue_follow_up(lambda: services.tasks.queue_settlement(event_id), "settlement")

        await services.command(withdraw, actor=request.user.id)

    @post("/{event_id:uuid}/attractions", operation_id="addAttraction", status_code=201)
    async def add_attraction(
        self, event_id: UUID, data: AttractionCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Attraction:
        """Add a performer or act to the lineup (searchable)."""
        await owned_event(services, request.user, event_id)
        attraction_id = await services.command(
            lambda: services.boxoffice.add_attraction(
                event_id, name=data.name, description=data.description, image_url=data.image_url
            ),
            actor=request.user.id,
        )
        return Attraction(attraction_id, " ".join(data.name.split()), data.description, data.image_url)

    @delete("/{event_id:uuid}/attractions/{attraction_id:uuid}", operation_id="removeAttraction", status_code=204)
    async def remove_attraction(
        self, event_id: UUID, attraction_id: UUID, request: Request[Principal, Any, Any], services: Services
    ) -> None:
        """Take an act off the lineup."""
        await owned_event(services, request.user, event_id)
        await services.command(
            lambda: services.boxoffice.remove_attraction(event_id, attraction_id), actor=request.user.id
        )

    @put(
        "/{event_id:uuid}/image",
        operation_id="setEventImage",
        status_code=200,
        opt={RAW_BODY_TYPES: frozenset(ACCEPTED_TYPES)},
        request_max_body_size=MAX_IMAGE_BYTES,
        operation_class=ImageUpload,
    )
    async def set_image(self, event_id: UUID, request: Request[Principal, Any, Any], services: Services) -> EventDetail:
        """Give the show a picture: the body is the image itself (PNG, JPEG or WebP, at most 5 MB
        and 40 megapixels). It is decoded, stripped of its metadata and re-encoded as WebP (a
        full-size and a card-size variant, served under `image.url` and `image.card_url`); 422
        `not_an_image` / `image_too_large`, 413 over 5 MB, 415 for another type. Owner or admin."""
        if request.content_type[0] not in ACCEPTED_TYPES:
            raise HTTPException(status_code=415, detail=f"send {' or '.join(sorted(ACCEPTED_TYPES))}")
        await set_event_image(services, request.user, event_id, await request.body())
        return await _detail(services, await event_row(services, event_id))

    @delete("/{event_id:uuid}/image", operation_id="removeEventImage", status_code=204)
    async def remove_image(self, event_id: UUID, request: Request[Principal, Any, Any], services: Services) -> None:
        """Take the show's picture off (204 also when it has none). Owner or admin."""
        await remove_event_image(services, request.user, event_id)

    @post("/{event_id:uuid}/publish", operation_id="publishEvent", status_code=200, guards=[verified_only])
    async def publish(self, event_id: UUID, request: Request[Principal, Any, Any], services: Services) -> EventDetail:
        """Put a draft on sale; seated tiers get their seats."""
        await publish_event(services, request.user, event_id)
        return await _detail(services, await event_row(services, event_id))

    @post("/{event_id:uuid}/cancel", operation_id="cancelEvent", status_code=200)
    async def cancel(
        self,
        event_id: UUID,
        request: Request[Principal, Any, Any],
        services: Services,
        data: CancelRequest | None = None,
    ) -> EventDetail:
        """Cancel a draft or published event: holds are released and paid orders refunded."""
        await cancel_event(services, request.user, event_id, data.reason if data else "")
        return await _detail(services, await event_row(services, event_id))


class OrganizerController(Controller):
    path = "/organizer"
    tags = ["Catalog"]

    @get("/events", operation_id="listOrganizerEvents", guards=[organizers])
    async def my_events(
        self,
        request: Request[Principal, Any, Any],
        services: Services,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
    ) -> Page[Event]:
        """The caller's own events in any status (admins: everyone's)."""
        owner = None if request.user.is_admin else request.user.id
        async with services.pool.connection() as conn:
            rows, total = await queries.organizer_events(conn, owner, page, page_size)
        return page_of([Event.of(r) for r in rows], total, page, page_size)


async def create_event(services: Services, user: Principal, data: EventCreate) -> UUID:
    """A new draft event of `user` at a venue."""
    show = await services.command(
        lambda: services.boxoffice.create_event(
            organizer_id=user.id,
            venue_id=data.venue_id,
            title=data.title,
            description=data.description,
            start_time=data.start_time,
            end_time=data.end_time,
            timezone=data.timezone,
            days=[d.isoformat() for d in data.days] if data.days else None,
            segment_id=data.segment_id,
            genre_id=data.genre_id,
            sub_genre_id=data.sub_genre_id,
        ),
        actor=user.id,
    )
    return show.id


async def update_event(services: Services, user: Principal, event_id: UUID, data: EventUpdate) -> None:
    """The fields of `data` that are set, on the caller's own show."""
    await owned_event(services, user, event_id)
    changes = patch_changes(data, {"days": lambda days: [d.isoformat() for d in days]})
    await services.command(lambda: services.boxoffice.update_event(event_id, changes), actor=user.id)


async def publish_event(services: Services, user: Principal, event_id: UUID) -> None:
    """Put the caller's draft on sale (the route's guard checks the caller is verified)."""
    await owned_event(services, user, event_id)
    await services.command(lambda: services.boxoffice.publish_event(event_id), actor=user.id)


async def cancel_event(services: Services, user: Principal, event_id: UUID, reason: str) -> None:
    """Cancel the caller's show: holds are released and paid orders refunded by a worker."""
    await owned_event(services, user, event_id)

    def cancel() -> None:
        services.boxoffice.cancel_event(event_id, reason)
        # Holds are released and paid orders refunded by a worker, each idempotently.
        queue_follow_up(lambda: services.tasks.queue_settlement(event_id), "settlement")

    await services.command(cancel, actor=user.id)


async def set_event_image(services: Services, user: Principal, event_id: UUID, data: bytes) -> None:
    """The picture in `data` (an upload) on the caller's own show (`commands/media.py` checks it)."""
    await owned_event(services, user, event_id)
    await services.command(lambda: services.boxoffice.set_event_image(event_id, data), actor=user.id)


async def remove_event_image(services: Services, user: Principal, event_id: UUID) -> None:
    """Take the picture off the caller's own show."""
    await owned_event(services, user, event_id)
    await services.command(lambda: services.boxoffice.remove_event_image(event_id), actor=user.id)
