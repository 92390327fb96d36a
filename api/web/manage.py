"""The organizer's back office for one show: a new draft (`/organizer/events/new`), its page
(`/organizer/events/{id}`) with its tiers and offers, a form adding a tier with its first offer,
publish / cancel, door staff, and the latest bookings. Each form calls the same code as the JSON route (api/events.py,
api/offers.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post

from api.access import owned_event
from api.door import ScannerCreate, grant_scanner
from api.events import EventCreate, cancel_event, create_event, publish_event
from api.offers import OfferCreate, TierCreate, add_offer, add_tier, tiers_of
from api.orders import orders_for_rows
from api.security import Principal, ensure_verified
from api.services import Services
from api.venues import Venue
from api.web.common import FORM, error_status, first, form_of, page_error, render, see_other, to_login, user_of
from domain.errors import DomainError
from projections import queries


def _organizer(request: Request[Any, Any, Any]) -> Principal | Response[Any]:
    """The signed-in organizer (or admin), else the answer to give instead."""
    user = user_of(request)
    if user is None:
        return to_login(request)
    if user.role not in ("organizer", "admin"):
        return page_error(request, "Organizers only", "This page is for event organizers.", 403)
    return user


def _utc(value: str) -> str:
    """A `datetime-local` field's value, read as UTC."""
    return value + ":00Z" if len(value) == 16 else value + "Z" if value else value


class ManageController(Controller):
    path = "/organizer/events"
    include_in_schema = False

    @get("/new", exclude_from_auth=True)
    async def new(self, request: Request[Any, Any, Any], services: Services) -> Response[Any]:
        user = _organizer(request)
        if not isinstance(user, Principal):
            return user
        return await _new_page(request, services, {}, "")

    @post("/", exclude_from_auth=True, opt=FORM, status_code=303)
    async def create(self, request: Request[Any, Any, Any], services: Services) -> Response[Any]:
        user = _organizer(request)
        if not isinstance(user, Principal):
            return user
        fields = await form_of(request)
        values = {name: first(fields, name, 5000) for name in ("title", "description", "venue_id", "start", "end")}
        try:
            data = msgspec.convert(
                {"title": values["title"], "description": values["description"], "venue_id": values["venue_id"],
                 "start_time": _utc(values["start"]), "end_time": _utc(values["end"])},
                EventCreate,
            )  # fmt: skip
            event_id = await create_event(services, user, data)
        except msgspec.ValidationError as invalid:
            return await _new_page(request, services, values, f"Please check the form: {invalid}", 422)
        except DomainError as error:
            return await _new_page(request, services, values, str(error), error_status(error))
        return see_other(f"/organizer/events/{event_id}")

    @get("/{event_id:uuid}", exclude_from_auth=True)
    async def show(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        user = _organizer(request)
        if not isinstance(user, Principal):
            return user
        return await _show_page(request, services, user, event_id, "")

    @post("/{event_id:uuid}/tiers", exclude_from_auth=True, opt=FORM, status_code=303)
    async def tier(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        """A tier and its first offer (POST /events/{id}/tiers, then POST /tiers/{id}/offers)."""
        user = _organizer(request)
        if not isinstance(user, Principal):
            return user
        fields = await form_of(request)
        quantity = first(fields, "quantity", 10)
        try:
            tier = msgspec.convert(
                {"name": first(fields, "tier_name", 300), "kind": first(fields, "kind", 20) or "general",
                 "section_ids": fields.get("section_id", [])[:500]},
                TierCreate,
            )  # fmt: skip
            offer = msgspec.convert(
                {"name": first(fields, "offer_name", 300) or tier.name, "price": first(fields, "price", 20),
                 "currency": first(fields, "currency", 3) or "EUR", "quantity_for_sale": quantity or None,
                 "max_per_order": first(fields, "max_per_order", 4) or 10},
                OfferCreate,
                strict=False,
            )  # fmt: skip
            tier_id = await add_tier(services, user, event_id, tier)
            await add_offer(services, user, tier_id, offer)
        except msgspec.ValidationError as invalid:
            return await _show_page(request, services, user, event_id, f"Please check the form: {invalid}", 422)
        except DomainError as error:
            return await _show_page(request, services, user, event_id, str(error), error_status(error))
        return see_other(f"/organizer/events/{event_id}")

    @post("/{event_id:uuid}/publish", exclude_from_auth=True, opt=FORM, status_code=303)
    async def publish(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        user = _organizer(request)
        if not isinstance(user, Principal):
            return user
        await form_of(request)
        try:
            await ensure_verified(services, user)
            await publish_event(services, user, event_id)
        except DomainError as error:
            return await _show_page(request, services, user, event_id, str(error), error_status(error))
        return see_other(f"/organizer/events/{event_id}")

    @post("/{event_id:uuid}/cancel", exclude_from_auth=True, opt=FORM, status_code=303)
    async def cancel(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        user = _organizer(request)
        if not isinstance(user, Principal):
            return user
        fields = await form_of(request)
        try:
            await cancel_event(services, user, event_id, first(fields, "reason", 500))
        except DomainError as error:
            return await _show_page(request, services, user, event_id, str(error), error_status(error))
        return see_other(f"/organizer/events/{event_id}")

    @post("/{event_id:uuid}/scanners", exclude_from_auth=True, opt=FORM, status_code=303)
    async def scanner(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        """Door staff (as POST /events/{id}/scanners)."""
        user = _organizer(request)
        if not isinstance(user, Principal):
            return user
        fields = await form_of(request)
        try:
            data = msgspec.convert({"email": first(fields, "email", 300)}, ScannerCreate)
            await grant_scanner(services, user, event_id, data.email)
        except msgspec.ValidationError as invalid:
            return await _show_page(request, services, user, event_id, f"Please check the e-mail: {invalid}", 422)
        except DomainError as error:
            return await _show_page(request, services, user, event_id, str(error), error_status(error))
        return see_other(f"/organizer/events/{event_id}")


async def _new_page(
    request: Request[Any, Any, Any], services: Services, values: dict[str, str], error: str, status: int = 200
) -> Response[Any]:
    async with services.pool.connection() as conn:
        venues, _ = await queries.list_venues(conn, 1, 100, None)
    return render(request, "event_new.html", status=status, venues=venues, values=values, error=error)


async def _show_page(
    request: Request[Any, Any, Any], services: Services, user: Principal, event_id: UUID, error: str, status: int = 200
) -> Response[Any]:
    try:
        row = await owned_event(services, user, event_id)
    except DomainError as refused:
        return page_error(request, "Not yours", str(refused), error_status(refused))
    async with services.pool.connection() as conn:
        tier_rows = await queries.tiers(conn, event_id)
        offer_rows = await queries.offers(conn, event_id)
        venue = await queries.venue(conn, row["venue_id"])
        scanners = await queries.scanners(conn, event_id)
        order_rows, bookings = await queries.orders_of(conn, None, None, 1, 50, event_id)
    orders = await orders_for_rows(services, order_rows)
    tiers, _ = tiers_of(tier_rows, offer_rows)
    sections = Venue.of(venue).sections if venue else []
    return render(request, "event_manage.html", status=status, event=row, tiers=tiers, sections=sections,
                  scanners=scanners, orders=orders, bookings=bookings, error=error)  # fmt: skip
