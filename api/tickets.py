"""Tickets: the buyer's wallet, one ticket, its QR code, a printable PDF, and the attendee
names printed on tickets (set on the order right after placing it, or later per ticket)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, patch, post, put

from api.common import Page, PageParam, PageSizeParam, money, page_of
from api.orders import order_row
from api.security import Principal
from api.services import Services
from commands.tickets_signing import human_code
from domain.errors import Invalid, NotFound
from domain.order import MAX_ATTENDEE_NAME, MAX_ITEMS
from projections import queries
from projections.documents import TicketDocument, qr_png, tickets_pdf


class Ticket(msgspec.Struct):
    ticket_id: UUID
    code: str
    qr_data: str
    status: str
    order_id: UUID
    order_number: str | None
    event_id: UUID
    event_title: str
    event_start_time: datetime
    venue_name: str
    tier_name: str | None
    day: str | None
    section: str | None
    row: str | None
    seat: str | None
    attendee_name: str | None
    price: str
    currency: str
    issued_at: datetime


def _ticket(row: dict[str, Any], services: Services) -> Ticket:
    status = "checked_in" if row["checked_in_at"] and row["status"] == "valid" else row["status"]
    return Ticket(
        ticket_id=row["id"],
        code=human_code(row["id"]),
        qr_data=services.signer.sign(row["id"], row["event_id"], row["generation"]),
        status=status,
        order_id=row["order_id"],
        order_number=row["order_number"],
        event_id=row["event_id"],
        event_title=row["event_title"],
        event_start_time=row["event_start_time"],
        venue_name=row["venue_name"],
        tier_name=row["tier_name"],
        day=row["tier_day"],
        section=row["section"],
        row=row["row_label"],
        seat=row["seat"],
        attendee_name=row["attendee_name"],
        price=money(row["price"], row["currency"]) or "0",
        currency=row["currency"],
        issued_at=row["issued_at"],
    )


def _document(row: dict[str, Any], ticket: Ticket) -> TicketDocument:
    return TicketDocument(
        ticket_id=ticket.ticket_id,
        code=ticket.code,
        qr_data=ticket.qr_data,
        event_title=ticket.event_title,
        venue_name=ticket.venue_name,
        event_start_time=ticket.event_start_time,
        timezone=row["timezone"],
        tier_name=ticket.tier_name or "",
        section=ticket.section,
        row=ticket.row,
        seat=ticket.seat,
        price=ticket.price,
        currency=ticket.currency,
        holder_name=ticket.attendee_name,
        status=ticket.status,
        order_number=ticket.order_number,
    )


async def _owned_ticket(services: Services, user: Principal, ticket_id: UUID) -> dict[str, Any]:
    async with services.pool.connection() as conn:
        row = await queries.ticket(conn, ticket_id)
    if row is None or not (user.is_admin or row["owner_id"] == user.id):
        raise NotFound("ticket not found", code="ticket_not_found")
    return row


class MyTicketsController(Controller):
    path = "/me"
    tags = ["Tickets"]

    @get("/tickets", operation_id="listMyTickets")
    async def my_tickets(
        self,
        request: Request[Principal, Any, Any],
        services: Services,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
        event_id: UUID | None = None,
    ) -> Page[Ticket]:
        """The caller's tickets with their signed QR payloads, soonest show first."""
        async with services.pool.connection() as conn:
            rows, total = await queries.tickets_of_owner(conn, request.user.id, page, page_size, event_id)
        return page_of([_ticket(r, services) for r in rows], total, page, page_size)


class TransferCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]


AttendeeName = Annotated[str, msgspec.Meta(max_length=MAX_ATTENDEE_NAME)]


class TicketUpdate(msgspec.Struct, forbid_unknown_fields=True):
    # null or blank removes the name.
    attendee_name: AttendeeName | None


class OrderAttendeesUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """One name per ticket of the order, in item order (a GA item of quantity 3 is three
    tickets, a seat one); null or blank leaves a ticket unnamed."""

    # An order has at most 50 items of at most 100 each.
    attendee_names: Annotated[list[AttendeeName | None], msgspec.Meta(min_length=1, max_length=MAX_ITEMS * 100)]


class OrderAttendee(msgspec.Struct):
    ticket_id: UUID
    code: str
    attendee_name: str | None


class OrderAttendees(msgspec.Struct):
    order_id: UUID
    attendees: list[OrderAttendee]


class OrderAttendeesController(Controller):
    path = "/orders"
    tags = ["Tickets"]

    @put("/{order_id:uuid}/attendees", operation_id="setOrderAttendees", status_code=200)
    async def set_attendees(
        self, order_id: UUID, data: OrderAttendeesUpdate, request: Request[Principal, Any, Any], services: Services
    ) -> OrderAttendees:
        """Name the attendees of an order's tickets, right after placing it or later (buyer).
        The list has one entry per ticket (422 otherwise); after payment a ticket given away or already used
        keeps its name unless the entry repeats it (409 for a changed one, 404 for one given away)."""
        user = request.user
        row = await order_row(services, order_id)
        if row is None or row["buyer_id"] != user.id:
            raise NotFound("order not found", code="order_not_found")
        order = await services.command(
            lambda: services.boxoffice.name_order_attendees(order_id, data.attendee_names, by=user.id), actor=user.id
        )
        return OrderAttendees(
            order_id=order_id,
            attendees=[
                OrderAttendee(ticket_id=t, code=human_code(t), attendee_name=order.attendee_name(t))
                for t in order.ticket_ids()
            ],
        )


class TicketController(Controller):
    path = "/tickets"
    tags = ["Tickets"]

    @get("/{ticket_id:uuid}", operation_id="getTicket")
    async def get_ticket(self, ticket_id: UUID, request: Request[Principal, Any, Any], services: Services) -> Ticket:
        """One ticket (owner or admin)."""
        return _ticket(await _owned_ticket(services, request.user, ticket_id), services)

    @get("/{ticket_id:uuid}/qr.png", operation_id="getTicketQr", media_type="image/png")
    async def qr(self, ticket_id: UUID, request: Request[Principal, Any, Any], services: Services) -> Response[bytes]:
        """The ticket's QR code (signed payload, no personal data) as a PNG."""
        ticket = _ticket(await _owned_ticket(services, request.user, ticket_id), services)
        return Response(qr_png(ticket.qr_data), media_type="image/png", headers={"Cache-Control": "private, no-store"})

    @get("/{ticket_id:uuid}/pdf", operation_id="getTicketPdf", media_type="application/pdf")
    async def pdf(self, ticket_id: UUID, request: Request[Principal, Any, Any], services: Services) -> Response[bytes]:
        """A printable PDF: event, venue, time, seat and QR code."""
        row = await _owned_ticket(services, request.user, ticket_id)
        ticket = _ticket(row, services)
        body = await services.call(lambda: tickets_pdf([_document(row, ticket)]))
        return Response(
            body,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="ticket-{ticket.code}.pdf"', "Cache-Control": "private"},
        )

    @patch("/{ticket_id:uuid}", operation_id="updateTicket")
    async def update(
        self, ticket_id: UUID, data: TicketUpdate, request: Request[Principal, Any, Any], services: Services
    ) -> Ticket:
        """Put the attendee's name on the ticket (its holder; null or blank removes it): printed
        on the PDF, shown to the door and in the organizer's attendee list. 409 once the ticket
        was used or refunded."""
        return await name_attendee(services, request.user, ticket_id, data.attendee_name)

    @post("/{ticket_id:uuid}/transfer", operation_id="transferTicket", status_code=200)
    async def transfer(
        self, ticket_id: UUID, data: TransferCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Ticket:
        """Give the ticket to another account: it is reissued to them and the old QR code stops working."""
        return await transfer_ticket(services, request.user, ticket_id, data.email)


async def own_ticket(services: Services, user: Principal, ticket_id: UUID) -> dict[str, Any]:
    """The ticket row if the caller holds it (404 otherwise, also for admins)."""
    row = await _owned_ticket(services, user, ticket_id)
    if row["owner_id"] != user.id:
        raise NotFound("ticket not found", code="ticket_not_found")
    return row


async def name_attendee(services: Services, user: Principal, ticket_id: UUID, name: str | None) -> Ticket:
    """Put the attendee's name on the caller's ticket (None or blank removes it)."""
    row = await own_ticket(services, user, ticket_id)
    await services.command(
        lambda: services.boxoffice.name_attendees(row["order_id"], {ticket_id: name}, by=user.id), actor=user.id
    )
    async with services.pool.connection() as conn:
        named = await queries.ticket(conn, ticket_id)
    assert named is not None
    return _ticket(named, services)


async def transfer_ticket(services: Services, user: Principal, ticket_id: UUID, email: str) -> Ticket:
    """Give the caller's ticket to the account with this e-mail (422 if there is none)."""
    row = await own_ticket(services, user, ticket_id)
    found = await services.call(lambda: services.accounts.lookup(email))
    if found is None:
        raise Invalid("no account with this e-mail", field="email")
    target = found
    await services.command(
        lambda: services.boxoffice.transfer_ticket(row["order_id"], ticket_id, from_id=user.id, to_id=target),
        actor=user.id,
    )
    async with services.pool.connection() as conn:
        moved = await queries.ticket(conn, ticket_id)
    assert moved is not None
    return _ticket(moved, services)
