"""What a buyer does with a ticket from `/me`: put the attendee's name on it, pass it on to
another account, or ask for its refund. Each form calls the same code as the JSON route
(PATCH /tickets/{id}, POST /tickets/{id}/transfer, POST /orders/{id}/refund with the ticket)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, post

from api.services import Services
from api.tickets import TicketUpdate, TransferCreate, name_attendee, own_ticket, transfer_ticket
from api.web.common import FORM, first, form_of, see_other, to_login, user_of
from domain.errors import DomainError


def _back(message: str, ok: bool = True) -> Response[Any]:
    return see_other(f"/me?{'done' if ok else 'error'}={quote(message[:200], safe='')}")


class MyTicketsPagesController(Controller):
    path = "/me/tickets"
    include_in_schema = False

    @post("/{ticket_id:uuid}/name", exclude_from_auth=True, opt=FORM, status_code=303)
    async def name(self, request: Request[Any, Any, Any], services: Services, ticket_id: UUID) -> Response[Any]:
        user = user_of(request)
        if user is None:
            return to_login(request)
        fields = await form_of(request)
        try:
            data = msgspec.convert({"attendee_name": first(fields, "attendee_name", 1000) or None}, TicketUpdate)
            await name_attendee(services, user, ticket_id, data.attendee_name)
        except msgspec.ValidationError as invalid:
            return _back(f"The name was not saved: {invalid}", ok=False)
        except DomainError as error:
            return _back(str(error), ok=False)
        return _back("The name is on the ticket.")

    @post("/{ticket_id:uuid}/transfer", exclude_from_auth=True, opt=FORM, status_code=303)
    async def transfer(self, request: Request[Any, Any, Any], services: Services, ticket_id: UUID) -> Response[Any]:
        user = user_of(request)
        if user is None:
            return to_login(request)
        fields = await form_of(request)
        try:
            data = msgspec.convert({"email": first(fields, "email", 300)}, TransferCreate)
            await transfer_ticket(services, user, ticket_id, data.email)
        except msgspec.ValidationError as invalid:
            return _back(f"Not passed on: {invalid}", ok=False)
        except DomainError as error:
            return _back(str(error), ok=False)
        return _back(f"The ticket now belongs to {data.email}; its old QR code no longer works.")

    @post("/{ticket_id:uuid}/refund", exclude_from_auth=True, opt=FORM, status_code=303)
    async def refund(self, request: Request[Any, Any, Any], services: Services, ticket_id: UUID) -> Response[Any]:
        user = user_of(request)
        if user is None:
            return to_login(request)
        fields = await form_of(request)
        try:
            row = await own_ticket(services, user, ticket_id)
            await services.command(
                lambda: services.boxoffice.refund_order(
                    row["order_id"],
                    actor_id=user.id,
                    actor_role=user.role,
                    ticket_ids=[ticket_id],
                    amount=None,
                    reason=first(fields, "reason", 500),
                    request_key=None,
                ),
                actor=user.id,
            )
        except DomainError as error:
            return _back(str(error), ok=False)
        return _back("The ticket is refunded; the money goes back to your card.")
