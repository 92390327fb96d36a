"""The buyer's pages: upcoming events with the listing's search (`/`) and an event's page
(`/e/{event_id}`: offers, prices, the seat map) whose form holds seats and GA quantity by the
same command as POST /api/v1/orders."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

import msgspec
from litestar import Controller, Request, Response, get, post

from api.access import visible_row
from api.common import to_minor
from api.events import Event
from api.offers import Offer
from api.orders import OrderCreate, place_order
from api.security import ensure_verified
from api.services import Services
from api.waitlist import WaitlistJoin
from api.web.common import (
    FORM,
    error_status,
    first,
    form_of,
    over_limit,
    page_error,
    render,
    see_other,
    to_login,
    user_of,
)
from api.web.seatlist import SeatLists
from domain.errors import DomainError, NotFound
from projections import queries

PAGE_SIZE = 24
# Per API process, as the seat maps themselves are (api/seatmap_cache.py).
SEAT_LISTS = SeatLists()


def _datetime(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


class ShopController(Controller):
    path = "/"
    include_in_schema = False

    @get("/", exclude_from_auth=True)
    async def home(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        q: str = "",
        city: str = "",
        date_from: str = "",
        date_to: str = "",
        price_max: str = "",
        available: str = "",
        sort: str = "start_time",
        page: int = 1,
    ) -> Response[Any]:
        """Upcoming published events, searched with the listing's filters."""
        search = {"q": q[:200], "city": city[:100], "date_from": date_from[:10], "date_to": date_to[:10],
                  "price_max": price_max[:20], "available": available[:4], "sort": sort}  # fmt: skip
        error = ""
        try:
            filters = queries.EventFilters(
                q=search["q"] or None,
                city=search["city"] or None,
                date_from=_datetime(search["date_from"]),
                date_to=_datetime(search["date_to"]),
                price_max=to_minor(search["price_max"], "EUR", "price_max") if search["price_max"] else None,
                available=True if search["available"] else None,
                sort=sort if sort in ("start_time", "-start_time", "price", "-price", "relevance") else "start_time",
            )
        except DomainError as invalid:
            error, filters = str(invalid), queries.EventFilters()
        page = max(1, min(page, 1000))
        events, more = await _listing(services, filters, page)
        # Featured shows first: above the first page of an unfiltered listing.
        browsing = page == 1 and filters == queries.EventFilters()
        featured = (await _listing(services, queries.EventFilters(featured=True), 1))[0] if browsing else []
        return render(request, "home.html", events=events, featured=featured, search=search, error=error, page=page,
                      more=more)  # fmt: skip

    @get("/e/{event_id:uuid}", exclude_from_auth=True)
    async def event_page(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        event_id: UUID,
        section: int | None = None,
        offset: int = 0,
    ) -> Response[Any]:
        """The event; `section` and `offset` page the list of free seats shown without JavaScript."""
        return await _event_page(request, services, event_id, section=section, offset=offset)

    @post("/e/{event_id:uuid}/hold", exclude_from_auth=True, opt=FORM, status_code=303)
    async def hold(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        """Hold the picked seats and quantities (the same command as POST /api/v1/orders), then
        go to the checkout."""
        user = user_of(request)
        if user is None:
            return to_login(request)
        fields = await form_of(request)
        items: list[dict[str, Any]] = []
        for value in fields.get("seat", [])[:50]:
            offer_id, _, seat_id = value.partition(":")
            items.append({"offer_id": offer_id, "seat_id": seat_id})
        for name, values in fields.items():
            if name.startswith("qty:") and values and values[0].strip() not in ("", "0"):
                items.append({"offer_id": name[4:], "quantity": values[0].strip()})
        if not items:
            return await _event_page(request, services, event_id, "Pick seats or a number of tickets first.", 422)
        refusal = await over_limit(request, services, "placeOrder", f"user:{user.id}")
        if refusal is not None:
            return await _event_page(request, services, event_id, refusal, 429)
        try:
            await ensure_verified(services, user)
            data = msgspec.convert({"items": items}, OrderCreate, strict=False)
            key = first(fields, "hold_key", 100) or None
            _, order = await place_order(services, user.id, data, key)
        except (msgspec.ValidationError, ValueError):
            return await _event_page(request, services, event_id, "That selection is not valid.", 422)
        except DomainError as error:
            return await _event_page(request, services, event_id, str(error), error_status(error))
        return see_other(f"/checkout/{order.id}")

    @post("/e/{event_id:uuid}/waitlist", exclude_from_auth=True, opt=FORM, status_code=303)
    async def join_waitlist(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        """Queue for a sold-out offer, by the same command as POST /api/v1/offers/{id}/waitlist."""
        user = user_of(request)
        if user is None:
            return to_login(request)
        fields = await form_of(request)
        try:
            await ensure_verified(services, user)
            offer_id = UUID(first(fields, "offer_id", 40))
            data = msgspec.convert({"quantity": first(fields, "quantity", 5) or "1"}, WaitlistJoin, strict=False)
            await services.command(
                lambda: services.boxoffice.join_waitlist(offer_id, user.id, data.quantity), actor=user.id
            )
        except (msgspec.ValidationError, ValueError):
            return await _event_page(request, services, event_id, "That is not a valid number of tickets.", 422)
        except DomainError as error:
            return await _event_page(request, services, event_id, str(error), error_status(error))
        return see_other("/me?done=" + quote("You are on the waiting list.", safe=""))


class Listing(msgspec.Struct):
    events: list[Event]
    more: bool


async def _listing(services: Services, filters: queries.EventFilters, page: int) -> tuple[list[Event], bool]:
    """A page of the listing, kept in the listing cache under the catalog's position (as the
    JSON listing is: never older than the read model)."""
    what = repr((sorted((k, str(v)) for k, v in vars(filters).items()), page))
    digest = hashlib.blake2b(what.encode(), digest_size=12).hexdigest()
    async with services.pool.connection() as conn:
        key = f"web-listing:{await queries.listing_position(conn, services.boxoffice.name)}:{digest}"
        cached = await services.listings.get(key)
        if cached is not None:
            found = msgspec.msgpack.decode(cached, type=Listing)
            return found.events, found.more
        rows = await queries.search_events(conn, filters, page, PAGE_SIZE + 1)
    listing = Listing([Event.of(r) for r in rows[:PAGE_SIZE]], len(rows) > PAGE_SIZE)
    await services.listings.put(key, msgspec.msgpack.encode(listing))
    return listing.events, listing.more


async def _event_page(
    request: Request[Any, Any, Any],
    services: Services,
    event_id: UUID,
    error: str = "",
    status: int = 200,
    *,
    section: int | None = None,
    offset: int = 0,
) -> Response[Any]:
    user = user_of(request)
    async with services.pool.connection() as conn:
        try:
            row = visible_row(await queries.event(conn, event_id), user)
        except NotFound:
            return page_error(request, "Event not found", "There is no such event.", 404)
        offer_rows = await queries.offers(conn, event_id)
        lineup = await queries.attractions(conn, event_id)
        head = await queries.seat_map_version(conn, event_id)
        body = await services.seat_maps.body(conn, event_id, head["layout_version"], head["version"]) if head else None
    offers = [Offer.of(o) for o in offer_rows]
    plan = SEAT_LISTS.get(event_id, head["version"], body, section, offset) if head and body else None
    return render(
        request,
        "event.html",
        status=status,
        event=Event.of(row),
        offers=offers,
        general=[o for o in offers if o.kind == "general"],
        lineup=lineup,
        plan=plan,
        error=error,
        hold_key=uuid4().hex,
    )
