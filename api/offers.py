"""Tiers and offers: the price points of a show, their sale status and availability, and the
day x tier price grid."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, patch, post

from api.access import owned_event, visible_row
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
from api.security import Principal, optional_principal
from api.services import Services
from domain.errors import Invalid, NotFound
from projections import queries

Price = str | float
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{3}$")]
Count = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
PerOrder = Annotated[int, msgspec.Meta(ge=1, le=1000)]


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
    sold: int
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
            sold=int(row["sold_count"] or 0),
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

    @classmethod
    def of(cls, row: dict[str, Any], offers: list[Offer]) -> Tier:
        return cls(
            id=row["id"],
            event_id=row["event_id"],
            name=row["name"],
            kind=row["kind"],
            section_ids=list(row["section_ids"]),
            day=row["day"],
            seats_total=row["seats_total"],
            seats_available=row["seats_available"],
            offers=offers,
        )


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


async def tier_answer(services: Services, tier_id: UUID) -> Tier:
    async with services.pool.connection() as conn:
        row = await queries.tier(conn, tier_id)
        if row is None:
            raise NotFound("tier not found", code="tier_not_found")
        offer_rows = [o for o in await queries.offers(conn, row["event_id"]) if o["tier_id"] == tier_id]
    return Tier.of(row, [Offer.of(o) for o in offer_rows])


async def _tier_event(services: Services, user: Principal, tier_id: UUID) -> dict[str, Any]:
    async with services.pool.connection() as conn:
        row = await queries.tier(conn, tier_id)
    if row is None:
        raise NotFound("tier not found", code="tier_not_found")
    try:
        return await owned_event(services, user, row["event_id"])
    except NotFound:
        raise NotFound("tier not found", code="tier_not_found") from None


def tiers_of(tier_rows: list[dict[str, Any]], offer_rows: list[dict[str, Any]]) -> tuple[list[Tier], list[Offer]]:
    """A show's tiers, each with its offers, and all the offers."""
    offers = [Offer.of(o) for o in offer_rows]
    tiers = [Tier.of(t, [o for o in offers if o.tier_id == t["id"]]) for t in tier_rows]
    return tiers, offers


class ShowOffersController(Controller):
    """The tiers and offers of one show, under /events/{event_id}."""

    path = "/events"
    tags = ["Catalog"]

    @post("/{event_id:uuid}/tiers", operation_id="createTier", status_code=201)
    async def add_tier(
        self, event_id: UUID, data: TierCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Tier:
        """Add a general-admission or seated tier (seated: the venue sections it sells)."""
        tier_id = await add_tier(services, request.user, event_id, data)
        return await tier_answer(services, tier_id)

    @get("/{event_id:uuid}/offers", operation_id="listEventOffers", exclude_from_auth=True)
    async def offers(
        self,
        event_id: UUID,
        request: Request[Any, Any, Any],
        services: Services,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
    ) -> Page[Offer]:
        """Offers of an event, cheapest first: sale status (scheduled | on_sale | paused |
        sold_out | ended), price, how many are available and how many were sold."""
        async with services.pool.connection() as conn:
            visible_row(await queries.event(conn, event_id), optional_principal(request))
            rows, total = await queries.offers_page(conn, event_id, page, page_size)
        return page_of([Offer.of(r) for r in rows], total, page, page_size)

    @get("/{event_id:uuid}/pricing-matrix", operation_id="getPricingMatrix", exclude_from_auth=True)
    async def pricing_matrix(
        self, event_id: UUID, request: Request[Any, Any, Any], services: Services
    ) -> PricingMatrix:
        """Day x tier price grid (tiers without a day apply to every day)."""
        async with services.pool.connection() as conn:
            row = visible_row(await queries.event(conn, event_id), optional_principal(request))
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
        await services.command(
            lambda: services.boxoffice.update_tier(show["id"], tier_id, name=data.name, day=day), actor=request.user.id
        )
        return await tier_answer(services, tier_id)

    @delete("/{tier_id:uuid}", operation_id="deleteTier", status_code=204)
    async def remove(self, tier_id: UUID, request: Request[Principal, Any, Any], services: Services) -> None:
        """Remove a tier from a draft event."""
        show = await _tier_event(services, request.user, tier_id)
        await services.command(lambda: services.boxoffice.remove_tier(show["id"], tier_id), actor=request.user.id)

    @post("/{tier_id:uuid}/offers", operation_id="createOffer", status_code=201)
    async def add_offer(
        self, tier_id: UUID, data: OfferCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Offer:
        """Add a price point to a tier, with quantity, sale window and per-order limits."""
        offer_id = await add_offer(services, request.user, tier_id, data)
        return await _offer(services, offer_id)


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
            visible_row(await queries.event(conn, offer.event_id), optional_principal(request))
        return offer

    @patch("/{offer_id:uuid}", operation_id="updateOffer")
    async def update(
        self, offer_id: UUID, data: OfferUpdate, request: Request[Principal, Any, Any], services: Services
    ) -> Offer:
        """Change an offer's terms, or pause/resume it with status paused/on_sale."""
        return await update_offer(services, request.user, offer_id, data)


async def update_offer(services: Services, user: Principal, offer_id: UUID, data: OfferUpdate) -> Offer:
    """The terms of `data` that are set, on an offer of the caller's own show (404 otherwise)."""
    current = await _offer(services, offer_id)
    try:
        await owned_event(services, user, current.event_id)
    except NotFound:
        raise NotFound("offer not found", code="offer_not_found") from None
    if data.status is not None and data.status not in ("paused", "on_sale"):
        raise Invalid("status must be paused or on_sale", field="status")
    currency = (data.currency or current.currency).upper()
    changes = patch_changes(
        data,
        {
            "price": lambda p: to_minor(p, currency),
            "currency": str.upper,
            "sale_start_time": utc,
            "sale_end_time": utc,
        },
    )
    await services.command(lambda: services.boxoffice.update_offer(offer_id, changes), actor=user.id)
    return await _offer(services, offer_id)


async def add_tier(services: Services, user: Principal, event_id: UUID, data: TierCreate) -> UUID:
    """A general-admission or seated tier on the caller's show."""
    await owned_event(services, user, event_id)
    tier_id: UUID = await services.command(
        lambda: services.boxoffice.add_tier(
            event_id,
            name=data.name,
            kind=data.kind,
            section_ids=data.section_ids,
            day=data.day.isoformat() if data.day else None,
        ),
        actor=user.id,
    )
    return tier_id


async def add_offer(services: Services, user: Principal, tier_id: UUID, data: OfferCreate) -> UUID:
    """A price point on a tier of the caller's show."""
    show = await _tier_event(services, user, tier_id)
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
        ),
        actor=user.id,
    )
    return offer.id
