"""Events (shows), their tiers and offers, and the seat map."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

import msgspec
from litestar import Controller, MediaType, Request, Response, delete, get, patch, post
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from api.auth import Principal, optional_principal, organizers, verified_only
from api.common import Page, PageParam, PageSizeParam, money, page_of, to_minor, utc
from api.services import Services, queue_follow_up
from domain.errors import Forbidden, Invalid, NotFound
from projections import queries

T = TypeVar("T")
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=20_000)]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
Price = str | float
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{3}$")]
Count = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
PerOrder = Annotated[int, msgspec.Meta(ge=1, le=1000)]


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


class TierCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Title
    kind: str = "general"
    section_ids: Annotated[list[str], msgspec.Meta(max_length=500)] = []
    day: date | None = None


class TierUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Title | None = None
    day: date | None = None


class OfferCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Title
    price: Price
    currency: Currency
    quantity_for_sale: Count | None = None
    sale_start_time: AwareDatetime | None = None
    sale_end_time: AwareDatetime | None = None
    min_per_order: PerOrder = 1
    max_per_order: PerOrder = 10


class OfferUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Title | None = None
    price: Price | None = None
    currency: Currency | None = None
    quantity_for_sale: Count | None = None
    sale_start_time: AwareDatetime | None = None
    sale_end_time: AwareDatetime | None = None
    min_per_order: PerOrder | None = None
    max_per_order: PerOrder | None = None
    status: str | None = None


class PriceRange(msgspec.Struct):
    min: str | None
    max: str | None
    currency: str | None


class Offer(msgspec.Struct):
    id: UUID
    event_id: UUID
    tier_id: UUID
    tier_name: str
    kind: str
    name: str
    price: str
    currency: str
    quantity_for_sale: int | None
    available: int
    status: str
    sale_start_time: datetime | None
    sale_end_time: datetime | None
    min_per_order: int
    max_per_order: int

    @classmethod
    def of(cls, row: dict[str, Any]) -> Offer:
        return cls(
            id=row["id"],
            event_id=row["event_id"],
            tier_id=row["tier_id"],
            tier_name=row["tier_name"],
            kind=row["tier_kind"],
            name=row["name"],
            price=money(row["price"], row["currency"]) or "0",
            currency=row["currency"],
            quantity_for_sale=row["quantity_for_sale"],
            available=max(int(row["available"] or 0), 0),
            status=row["sale_status"],
            sale_start_time=row["sale_start_time"],
            sale_end_time=row["sale_end_time"],
            min_per_order=row["min_per_order"],
            max_per_order=row["max_per_order"],
        )


class Tier(msgspec.Struct):
    id: UUID
    event_id: UUID
    name: str
    kind: str
    section_ids: list[str]
    day: str | None
    seats_total: int
    seats_available: int
    offers: list[Offer]


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
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> Event:
        return cls(
            id=row["id"],
            title=row["title"],
            description=row["description"],
            status=row["status"],
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
            created_at=row["created_at"],
            updated_at=row["updated_at"],
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


class PriceCell(msgspec.Struct):
    offer_id: UUID
    name: str
    price: str
    available: int
    status: str


class PricingRow(msgspec.Struct):
    day: str | None
    tier_id: UUID
    tier_name: str
    kind: str
    offers: list[PriceCell]


class PricingMatrix(msgspec.Struct):
    event_id: UUID
    currency: str | None
    days: list[str]
    tiers: list[str]
    rows: list[PricingRow]


class SeatOut(msgspec.Struct):
    id: UUID
    label: str
    x: float
    y: float
    status: str
    accessible: bool
    offer_id: UUID | None
    price: str | None


class RowOut(msgspec.Struct):
    label: str
    seats: list[SeatOut]


class SectionOut(msgspec.Struct):
    id: str
    name: str
    day: str | None
    rows: list[RowOut]


class SeatMap(msgspec.Struct):
    event_id: UUID
    version: int
    currency: str | None
    sections: list[SectionOut]


def _visible(row: dict[str, Any] | None, user: Principal | None) -> dict[str, Any]:
    """Drafts are seen only by their organizer and admins; others get 404."""
    if row is None:
        raise NotFound("event not found", code="event_not_found")
    if row["status"] == "draft" and not (user and (user.is_admin or user.id == row["organizer_id"])):
        raise NotFound("event not found", code="event_not_found")
    return row


async def owned_event(services: Services, user: Principal, event_id: UUID) -> dict[str, Any]:
    """The event row if the caller manages it: 404 if they cannot see it, 403 if not theirs."""
    async with services.pool.connection() as conn:
        row = _visible(await queries.event(conn, event_id), user)
    if not (user.is_admin or row["organizer_id"] == user.id):
        raise Forbidden("you do not manage this event")
    return row


async def visible_event(services: Services, user: Principal | None, event_id: UUID) -> dict[str, Any]:
    """The event row if the caller may see it (drafts: owner and admins), else 404."""
    async with services.pool.connection() as conn:
        return _visible(await queries.event(conn, event_id), user)


async def _detail(services: Services, row: dict[str, Any]) -> EventDetail:
    async with services.pool.connection() as conn:
        tier_rows = await queries.tiers(conn, row["id"])
        offer_rows = await queries.offers(conn, row["id"])
        lineup = await queries.attractions(conn, row["id"])
    offers = [Offer.of(o) for o in offer_rows]
    tiers = [
        Tier(
            id=t["id"],
            event_id=t["event_id"],
            name=t["name"],
            kind=t["kind"],
            section_ids=list(t["section_ids"]),
            day=t["day"],
            seats_total=t["seats_total"],
            seats_available=t["seats_available"],
            offers=[o for o in offers if o.tier_id == t["id"]],
        )
        for t in tier_rows
    ]
    base = Event.of(row)
    attractions = [Attraction(a["id"], a["name"], a["description"], a["image_url"]) for a in lineup]
    return EventDetail(**msgspec.structs.asdict(base), tiers=tiers, offers=offers, attractions=attractions)


async def _event_row(services: Services, event_id: UUID) -> dict[str, Any]:
    async with services.pool.connection() as conn:
        row = await queries.event(conn, event_id)
    if row is None:
        raise NotFound("event not found", code="event_not_found")
    return row


def _changes(data: msgspec.Struct, convert: dict[str, Callable[[Any], Any]] | None = None) -> dict[str, Any]:
    """Fields the client actually sent (PATCH semantics; null means 'leave as is')."""
    convert = convert or {}
    out: dict[str, Any] = {}
    for name in data.__struct_fields__:
        value = getattr(data, name)
        if value is not None:
            out[name] = convert[name](value) if name in convert else value
    return out


def _filters_digest(filters: queries.EventFilters) -> str:
    what = sorted((k, str(v)) for k, v in vars(filters).items() if k != "sort" and v is not None)
    return hashlib.blake2b(repr(what).encode(), digest_size=12).hexdigest()


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
        show = await services.command(
            lambda: services.boxoffice.create_event(
                organizer_id=request.user.id,
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
            )
        )
        return await _detail(services, await _event_row(services, show.id))

    @get("/{event_id:uuid}", operation_id="getEvent", exclude_from_auth=True)
    async def detail(self, event_id: UUID, request: Request[Any, Any, Any], services: Services) -> EventDetail:
        """One event with tiers, offers, price range and availability (drafts: owner/admin only)."""
        async with services.pool.connection() as conn:
            row = _visible(await queries.event(conn, event_id), optional_principal(request))
        return await _detail(services, row)

    @patch("/{event_id:uuid}", operation_id="updateEvent")
    async def update(
        self, event_id: UUID, data: EventUpdate, request: Request[Principal, Any, Any], services: Services
    ) -> EventDetail:
        """Partial update; a published event keeps its venue, cancelled ones are frozen."""
        await owned_event(services, request.user, event_id)
        changes = _changes(data, {"days": lambda days: [d.isoformat() for d in days]})
        await services.command(lambda: services.boxoffice.update_event(event_id, changes))
        return await _detail(services, await _event_row(services, event_id))

    @delete("/{event_id:uuid}", operation_id="deleteEvent", status_code=204)
    async def delete_draft(self, event_id: UUID, request: Request[Principal, Any, Any], services: Services) -> None:
        """Delete a draft (published events are cancelled instead: 409)."""
        await owned_event(services, request.user, event_id)
        await services.command(lambda: services.boxoffice.delete_event(event_id))

    @post("/{event_id:uuid}/attractions", operation_id="addAttraction", status_code=201)
    async def add_attraction(
        self, event_id: UUID, data: AttractionCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Attraction:
        """Add a performer or act to the lineup (searchable)."""
        await owned_event(services, request.user, event_id)
        attraction_id = await services.command(
            lambda: services.boxoffice.add_attraction(
                event_id, name=data.name, description=data.description, image_url=data.image_url
            )
        )
        return Attraction(attraction_id, " ".join(data.name.split()), data.description, data.image_url)

    @delete("/{event_id:uuid}/attractions/{attraction_id:uuid}", operation_id="removeAttraction", status_code=204)
    async def remove_attraction(
        self, event_id: UUID, attraction_id: UUID, request: Request[Principal, Any, Any], services: Services
    ) -> None:
        """Take an act off the lineup."""
        await owned_event(services, request.user, event_id)
        await services.command(lambda: services.boxoffice.remove_attraction(event_id, attraction_id))

    @get("/{event_id:uuid}/pricing-matrix", operation_id="getPricingMatrix", exclude_from_auth=True)
    async def pricing_matrix(
        self, event_id: UUID, request: Request[Any, Any, Any], services: Services
    ) -> PricingMatrix:
        """Day x tier price grid (tiers without a day apply to every day)."""
        async with services.pool.connection() as conn:
            row = _visible(await queries.event(conn, event_id), optional_principal(request))
            tier_rows = await queries.tiers(conn, event_id)
            offer_rows = await queries.offers(conn, event_id)
        days: list[str] = list(row["days"] or []) or sorted({t["day"] for t in tier_rows if t["day"]})
        rows: list[PricingRow] = []
        day_slots: list[str | None] = list(days) or [None]
        for day in day_slots:
            for t in tier_rows:
                if t["day"] is not None and t["day"] != day:
                    continue
                cells = [
                    PriceCell(o.id, o.name, o.price, o.available, o.status)
                    for o in map(Offer.of, offer_rows)
                    if o.tier_id == t["id"]
                ]
                rows.append(PricingRow(day=day, tier_id=t["id"], tier_name=t["name"], kind=t["kind"], offers=cells))
        return PricingMatrix(
            event_id=event_id,
            currency=row["currency"],
            days=days,
            tiers=list(dict.fromkeys(t["name"] for t in tier_rows)),
            rows=rows,
        )

    @post("/{event_id:uuid}/publish", operation_id="publishEvent", status_code=200, guards=[verified_only])
    async def publish(self, event_id: UUID, request: Request[Principal, Any, Any], services: Services) -> EventDetail:
        """Put a draft on sale; seated tiers get their seats."""
        await owned_event(services, request.user, event_id)
        await services.command(lambda: services.boxoffice.publish_event(event_id))
        return await _detail(services, await _event_row(services, event_id))

    @post("/{event_id:uuid}/cancel", operation_id="cancelEvent", status_code=200)
    async def cancel(
        self,
        event_id: UUID,
        request: Request[Principal, Any, Any],
        services: Services,
        data: CancelRequest | None = None,
    ) -> EventDetail:
        """Cancel a draft or published event: holds are released and paid orders refunded."""
        await owned_event(services, request.user, event_id)
        reason = data.reason if data else ""

        def cancel() -> None:
            services.boxoffice.cancel_event(event_id, reason)
            # Holds are released and paid orders refunded by a worker, each idempotently.
            queue_follow_up(lambda: services.actors.settle_cancelled_event.send(str(event_id)), "settlement")

        await services.command(cancel)
        return await _detail(services, await _event_row(services, event_id))

    @post("/{event_id:uuid}/tiers", operation_id="createTier", status_code=201)
    async def add_tier(
        self, event_id: UUID, data: TierCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Tier:
        """Add a general-admission or seated tier (seated: the venue sections it sells)."""
        await owned_event(services, request.user, event_id)
        tier_id = await services.command(
            lambda: services.boxoffice.add_tier(
                event_id,
                name=data.name,
                kind=data.kind,
                section_ids=data.section_ids,
                day=data.day.isoformat() if data.day else None,
            )
        )
        return await _tier(services, tier_id)

    @get("/{event_id:uuid}/offers", operation_id="listEventOffers", exclude_from_auth=True)
    async def offers(self, event_id: UUID, request: Request[Any, Any, Any], services: Services) -> list[Offer]:
        """Offers of an event with their sale status, price and availability."""
        async with services.pool.connection() as conn:
            _visible(await queries.event(conn, event_id), optional_principal(request))
            rows = await queries.offers(conn, event_id)
        return [Offer.of(r) for r in rows]

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
            head = _visible(await queries.seat_map_version(conn, event_id), optional_principal(request))
            etag = f'"{event_id.hex}-{head["version"]}"'
            headers = {"ETag": etag, "Cache-Control": "no-cache"}
            if request.headers.get("if-none-match") == etag:
                return Response(content=b"", status_code=304, headers=headers)
            body = await services.seat_maps.body(conn, event_id, head["layout_version"], head["version"])
        return Response(content=body, media_type=MediaType.JSON, headers=headers)


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


async def _tier(services: Services, tier_id: UUID) -> Tier:
    async with services.pool.connection() as conn:
        row = await queries.tier(conn, tier_id)
        if row is None:
            raise NotFound("tier not found", code="tier_not_found")
        offer_rows = [o for o in await queries.offers(conn, row["event_id"]) if o["tier_id"] == tier_id]
    return Tier(
        id=row["id"],
        event_id=row["event_id"],
        name=row["name"],
        kind=row["kind"],
        section_ids=list(row["section_ids"]),
        day=row["day"],
        seats_total=row["seats_total"],
        seats_available=row["seats_available"],
        offers=[Offer.of(o) for o in offer_rows],
    )


async def _tier_event(services: Services, user: Principal, tier_id: UUID) -> dict[str, Any]:
    async with services.pool.connection() as conn:
        row = await queries.tier(conn, tier_id)
    if row is None:
        raise NotFound("tier not found", code="tier_not_found")
    try:
        return await owned_event(services, user, row["event_id"])
    except NotFound:
        raise NotFound("tier not found", code="tier_not_found") from None


class TierController(Controller):
    path = "/tiers"
    tags = ["Catalog"]

    @patch("/{tier_id:uuid}", operation_id="updateTier")
    async def update(
        self, tier_id: UUID, data: TierUpdate, request: Request[Principal, Any, Any], services: Services
    ) -> Tier:
        """Rename a tier or move it to another day of the event."""
        show = await _tier_event(services, request.user, tier_id)
        day = data.day.isoformat() if data.day else None
        await services.command(lambda: services.boxoffice.update_tier(show["id"], tier_id, name=data.name, day=day))
        return await _tier(services, tier_id)

    @delete("/{tier_id:uuid}", operation_id="deleteTier", status_code=204)
    async def remove(self, tier_id: UUID, request: Request[Principal, Any, Any], services: Services) -> None:
        """Remove a tier from a draft event."""
        show = await _tier_event(services, request.user, tier_id)
        await services.command(lambda: services.boxoffice.remove_tier(show["id"], tier_id))

    @post("/{tier_id:uuid}/offers", operation_id="createOffer", status_code=201)
    async def add_offer(
        self, tier_id: UUID, data: OfferCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Offer:
        """Add a price point to a tier, with quantity, sale window and per-order limits."""
        show = await _tier_event(services, request.user, tier_id)
        currency = data.currency.upper()
        offer = await services.command(
            lambda: services.boxoffice.add_offer(
                show["id"],
                tier_id,
                name=data.name,
                price=to_minor(data.price, currency),
                currency=currency,
                quantity_for_sale=data.quantity_for_sale,
                sale_start_time=utc(data.sale_start_time),
                sale_end_time=utc(data.sale_end_time),
                min_per_order=data.min_per_order,
                max_per_order=data.max_per_order,
            )
        )
        return await _offer(services, offer.id)


async def _offer(services: Services, offer_id: UUID) -> Offer:
    async with services.pool.connection() as conn:
        row = await queries.offer(conn, offer_id)
    if row is None:
        raise NotFound("offer not found", code="offer_not_found")
    return Offer.of(row)


class OfferController(Controller):
    path = "/offers"
    tags = ["Catalog"]

    @get("/{offer_id:uuid}", operation_id="getOffer", exclude_from_auth=True)
    async def get_offer(self, offer_id: UUID, request: Request[Any, Any, Any], services: Services) -> Offer:
        """One offer with its sale status and availability."""
        offer = await _offer(services, offer_id)
        async with services.pool.connection() as conn:
            _visible(await queries.event(conn, offer.event_id), optional_principal(request))
        return offer

    @patch("/{offer_id:uuid}", operation_id="updateOffer")
    async def update(
        self, offer_id: UUID, data: OfferUpdate, request: Request[Principal, Any, Any], services: Services
    ) -> Offer:
        """Change an offer's terms, or pause/resume it with status paused/on_sale."""
        current = await _offer(services, offer_id)
        try:
            await owned_event(services, request.user, current.event_id)
        except NotFound:
            raise NotFound("offer not found", code="offer_not_found") from None
        if data.status is not None and data.status not in ("paused", "on_sale"):
            raise Invalid("status must be paused or on_sale", field="status")
        currency = (data.currency or current.currency).upper()
        changes = _changes(
            data,
            {
                "price": lambda p: to_minor(p, currency),
                "currency": str.upper,
                "sale_start_time": utc,
                "sale_end_time": utc,
            },
        )
        await services.command(lambda: services.boxoffice.update_offer(offer_id, changes))
        return await _offer(services, offer_id)


ROUTES = [EventController, OrganizerController, TierController, OfferController]
