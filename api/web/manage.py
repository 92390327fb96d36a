"""The organizer's back office for one show: a new draft (`/organizer/events/new`), its page
(`/organizer/events/{id}`) with its details, tiers and offers (each offer's terms editable, paused
or resumed), a form adding a tier with its first offer, seats blocked and unblocked by row,
publish / cancel, its picture, door staff, and the latest bookings. Each form calls the same code
as the JSON route (api/events.py, api/offers.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile

from api.access import owned_event
from api.admin import feature_event
from api.door import ScannerCreate, grant_scanner
from api.events import (
    EventCreate,
    EventImage,
    EventUpdate,
    cancel_event,
    create_event,
    publish_event,
    remove_event_image,
    set_event_image,
    update_event,
)
from api.inputs import FILE_FORM_BODY
from api.offers import OfferCreate, OfferUpdate, TierCreate, add_offer, add_tier, tiers_of, update_offer
from api.orders import orders_for_rows
from api.seatmaps import set_seats_blocked
from api.security import CSRF_IN_FORM, Principal, ensure_verified
from api.services import Services
from api.venues import Venue
from api.web.common import FORM, error_status, first, form_of, page_error, render, see_other, to_login, user_of
from commands.media import MAX_IMAGE_BYTES
from domain.errors import DomainError, Forbidden, Invalid, NotFound
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

    @post("/{event_id:uuid}/details", exclude_from_auth=True, opt=FORM, status_code=303)
    async def details(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        """Title, description and times (as PATCH /events/{id})."""

        async def act(user: Principal, fields: Fields) -> None:
            values = {
                "title": first(fields, "title", 5000),
                "description": first(fields, "description", 20000),
                "start_time": _utc(first(fields, "start", 40)),
                "end_time": _utc(first(fields, "end", 40)),
            }
            await update_event(services, user, event_id, msgspec.convert(values, EventUpdate))

        return await _form_action(request, services, event_id, act)

    @post("/{event_id:uuid}/tiers", exclude_from_auth=True, opt=FORM, status_code=303)
    async def tier(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        """A tier and its first offer (POST /events/{id}/tiers, then POST /tiers/{id}/offers)."""

        async def act(user: Principal, fields: Fields) -> None:
            tier = msgspec.convert(
                {"name": first(fields, "tier_name", 300), "kind": first(fields, "kind", 20) or "general",
                 "section_ids": fields.get("section_id", [])[:500]},
                TierCreate,
            )  # fmt: skip
            offer = msgspec.convert(
                {"name": first(fields, "offer_name", 300) or tier.name, "price": first(fields, "price", 20),
                 "currency": first(fields, "currency", 3) or "EUR",
                 "quantity_for_sale": first(fields, "quantity", 10) or None,
                 "max_per_order": first(fields, "max_per_order", 4) or 10},
                OfferCreate,
                strict=False,
            )  # fmt: skip
            tier_id = await add_tier(services, user, event_id, tier)
            await add_offer(services, user, tier_id, offer)

        return await _form_action(request, services, event_id, act)

    @post("/{event_id:uuid}/offers/{offer_id:uuid}", exclude_from_auth=True, opt=FORM, status_code=303)
    async def offer(
        self, request: Request[Any, Any, Any], services: Services, event_id: UUID, offer_id: UUID
    ) -> Response[Any]:
        """An offer's price, quantity and most per order, or pause/resume it (as PATCH /offers/{id})."""

        async def act(user: Principal, fields: Fields) -> None:
            names = {
                "price": "price",
                "quantity_for_sale": "quantity",
                "max_per_order": "max_per_order",
                "status": "status",
            }
            values = {key: first(fields, name, 20) for key, name in names.items()}
            data = msgspec.convert({k: v for k, v in values.items() if v}, OfferUpdate, strict=False)
            if (await update_offer(services, user, offer_id, data)).event_id != event_id:
                raise NotFound("offer not found", code="offer_not_found")  # changed, but shown on its own page

        return await _form_action(request, services, event_id, act)

    @post("/{event_id:uuid}/seats", exclude_from_auth=True, opt=FORM, status_code=303)
    async def seats(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        """Block or unblock seats of one row by their labels, e.g. `1-10, 14` (as POST
        /events/{id}/seats/block and /unblock: all or none)."""

        async def act(user: Principal, fields: Fields) -> None:
            section, row = first(fields, "section", 200), first(fields, "row", 50)
            labels = seat_labels(first(fields, "seats", 2000))
            async with services.pool.connection() as conn:
                found = {r["label"]: r["id"] for r in await queries.seats_in_row(conn, event_id, section, row)}
            missing = [label for label in labels if label not in found]
            if missing:
                raise Invalid(f"row {row!r} of {section!r} has no seat {', '.join(missing[:5])}", field="seats")
            block = first(fields, "action", 10) != "unblock"
            await set_seats_blocked(services, user, event_id, [found[label] for label in labels], block)

        return await _form_action(request, services, event_id, act)

    @post("/{event_id:uuid}/featured", exclude_from_auth=True, opt=FORM, status_code=303)
    async def featured(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        """Feature the show on the home page, or stop (admins only, as PUT /admin/events/{id}/featured)."""

        async def act(user: Principal, fields: Fields) -> None:
            if not user.is_admin:
                raise Forbidden("only admins feature events", code="forbidden")
            await feature_event(services, user, event_id, first(fields, "featured", 5) == "true")

        return await _form_action(request, services, event_id, act)

    @post(
        "/{event_id:uuid}/image",
        exclude_from_auth=True,
        opt={FILE_FORM_BODY: True, CSRF_IN_FORM: True},
        status_code=303,
        request_max_body_size=MAX_IMAGE_BYTES + 64 * 1024,  # the file and the form around it
    )
    async def image(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        """The show's picture, a file of the form (as PUT /events/{id}/image)."""

        async def act(user: Principal, fields: Fields) -> None:
            upload = (await request.form()).get("image")
            if not isinstance(upload, UploadFile):
                raise Invalid("choose an image file (PNG, JPEG or WebP)", field="image", code="not_an_image")
            await set_event_image(services, user, event_id, await upload.read(MAX_IMAGE_BYTES + 1))

        return await _form_action(request, services, event_id, act)

    @post("/{event_id:uuid}/image/remove", exclude_from_auth=True, opt=FORM, status_code=303)
    async def remove_image(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        """Take the picture off (as DELETE /events/{id}/image)."""

        async def act(user: Principal, fields: Fields) -> None:
            await remove_event_image(services, user, event_id)

        return await _form_action(request, services, event_id, act)

    @post("/{event_id:uuid}/publish", exclude_from_auth=True, opt=FORM, status_code=303)
    async def publish(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        async def act(user: Principal, fields: Fields) -> None:
            await ensure_verified(services, user)
            await publish_event(services, user, event_id)

        return await _form_action(request, services, event_id, act)

    @post("/{event_id:uuid}/cancel", exclude_from_auth=True, opt=FORM, status_code=303)
    async def cancel(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        async def act(user: Principal, fields: Fields) -> None:
            await cancel_event(services, user, event_id, first(fields, "reason", 500))

        return await _form_action(request, services, event_id, act)

    @post("/{event_id:uuid}/scanners", exclude_from_auth=True, opt=FORM, status_code=303)
    async def scanner(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        """Door staff (as POST /events/{id}/scanners)."""

        async def act(user: Principal, fields: Fields) -> None:
            data = msgspec.convert({"email": first(fields, "email", 300)}, ScannerCreate)
            await grant_scanner(services, user, event_id, data.email)

        return await _form_action(request, services, event_id, act)


Fields = dict[str, list[str]]
MAX_SEATS = 1000  # per form: a few rows' worth, and a bounded statement


def seat_labels(text: str) -> list[str]:
    """`"1-4, 7, A12"` → ["1", "2", "3", "4", "7", "A12"]: numeric ranges spelled out, other
    labels as written, each once, in order (Invalid beyond MAX_SEATS or for nothing)."""
    labels: dict[str, None] = {}
    for part in (p.strip() for p in text.split(",")):
        low, dash, high = part.partition("-")
        if dash and low.strip().isdigit() and high.strip().isdigit():
            first_seat, last_seat = int(low), int(high)
            if last_seat < first_seat or last_seat - first_seat >= MAX_SEATS:
                raise Invalid(f"{part!r} is not a range of at most {MAX_SEATS} seats", field="seats")
            labels.update(dict.fromkeys(str(n) for n in range(first_seat, last_seat + 1)))
        elif part:
            labels[part] = None
        if len(labels) > MAX_SEATS:
            raise Invalid(f"at most {MAX_SEATS} seats at a time", field="seats")
    if not labels:
        raise Invalid("name the seats, e.g. 1-10, 14", field="seats")
    return list(labels)


async def _form_action(
    request: Request[Any, Any, Any],
    services: Services,
    event_id: UUID,
    act: Callable[[Principal, Fields], Awaitable[None]],
) -> Response[Any]:
    """What every form of the show's page does: the organizer's form (CSRF checked) handed to
    `act`, then back to the page; a refusal shown on the page with the JSON route's status."""
    user = _organizer(request)
    if not isinstance(user, Principal):
        return user
    fields = await form_of(request)
    try:
        await act(user, fields)
    except msgspec.ValidationError as invalid:
        return await _show_page(request, services, user, event_id, f"Please check the form: {invalid}", 422)
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
        blocked = await queries.blocked_seats(conn, event_id)
    orders = await orders_for_rows(services, order_rows)
    tiers, _ = tiers_of(tier_rows, offer_rows)
    sections = Venue.of(venue).sections if venue else []
    return render(request, "event_manage.html", status=status, event=row, tiers=tiers, sections=sections,
                  scanners=scanners, orders=orders, bookings=bookings, blocked=blocked, error=error,
                  image=EventImage.of(row.get("image")), max_image_mb=MAX_IMAGE_BYTES // (1024 * 1024))  # fmt: skip
