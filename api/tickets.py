"""Tickets: the buyer's wallet, one ticket, its QR code and a printable PDF."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post

from api.common import Page, PageParam, PageSizeParam, money, page_of
from api.security import Principal
from api.services import Services
from commands.tickets_signing import human_code
from domain.errors import Invalid, NotFound
from domain.ids import account_id
from projections import queries
from projections.documents import TicketDocument, qr_png, tickets_pdf


class Ticket(msgspec.Struct):
    ticket_id: UUID
    code: str
    qr_data: str
    status: str
    order_id: UUID
    event_id: UUID
    event_title: str
    event_start_time: datetime
    venue_name: str
    tier_name: str | None
    section: str | None
    row: str | None
    seat: str | None
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
        event_id=row["event_id"],
        event_title=row["event_title"],
        event_start_time=row["event_start_time"],
        venue_name=row["venue_name"],
        tier_name=row["tier_name"],
        section=row["section"],
        row=row["row_label"],
        seat=row["seat"],
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
        status=ticket.status,
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

    @post("/{ticket_id:uuid}/transfer", operation_id="transferTicket", status_code=200)
    async def transfer(
        self, ticket_id: UUID, data: TransferCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Ticket:
        """Give the ticket to another account: it is reissued to them and the old QR code stops working."""
        row = await _owned_ticket(services, request.user, ticket_id)
        if row["owner_id"] != request.user.id:
            raise NotFound("ticket not found", code="ticket_not_found")
        target = account_id(data.email)
        try:
            await services.call(lambda: services.accounts.get_account(target))
        except NotFound:
            raise Invalid("no account with this e-mail", field="email") from None
        await services.command(
            lambda: services.boxoffice.transfer_ticket(
                row["order_id"], ticket_id, from_id=request.user.id, to_id=target
            )
        )
        async with services.pool.connection() as conn:
            moved = await queries.ticket(conn, ticket_id)
        assert moved is not None
        return _ticket(moved, services)
