"""At the door: scanners granted per event, and check-in by QR code."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, post

from api.access import owned_event, visible_event
from api.security import Principal
from api.services import Services
from commands.tickets_signing import InvalidTicketCode, human_code
from domain.errors import Invalid, NotFound
from domain.ids import account_id
from projections import queries


class CheckInCreate(msgspec.Struct, forbid_unknown_fields=True):
    qr_data: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class CheckIn(msgspec.Struct):
    ticket_id: UUID
    code: str
    status: str
    checked_in_at: datetime
    tier_name: str | None
    section: str | None
    row: str | None
    seat: str | None


class ScannerCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]


class Scanner(msgspec.Struct):
    account_id: UUID
    granted_at: datetime


class DoorController(Controller):
    path = "/events"
    tags = ["Check-in"]

    @post("/{event_id:uuid}/check-ins", operation_id="checkIn", status_code=200)
    async def check_in(
        self, event_id: UUID, data: CheckInCreate, request: Request[Principal, Any, Any], services: Services
    ) -> CheckIn:
        """Scan a ticket: 200 the first time, 409 `already_checked_in` after; forged or
        malformed codes 422, tickets of other events 404. Owner, scanners of the event, admins."""
        user = request.user
        await visible_event(services, user, event_id)
        try:
            verified = services.signer.verify(data.qr_data.strip())
        except InvalidTicketCode:
            raise Invalid("not a valid ticket code", code="invalid_ticket_code", field="qr_data") from None
        async with services.pool.connection() as conn:
            ticket = await queries.ticket(conn, verified.ticket_id)
        if ticket is None or verified.event_id != event_id or ticket["event_id"] != event_id:
            raise NotFound("no such ticket for this event", code="ticket_not_found")
        await services.command(
            lambda: services.boxoffice.check_in(
                event_id=event_id,
                order_id=ticket["order_id"],
                ticket_id=verified.ticket_id,
                generation=verified.generation,
                scanner_id=user.id,
                scanner_is_admin=user.is_admin,
            )
        )
        async with services.pool.connection() as conn:
            row = await queries.ticket(conn, verified.ticket_id)
        assert row is not None and row["checked_in_at"] is not None
        return CheckIn(
            ticket_id=row["id"],
            code=human_code(row["id"]),
            status="checked_in",
            checked_in_at=row["checked_in_at"],
            tier_name=row["tier_name"],
            section=row["section"],
            row=row["row_label"],
            seat=row["seat"],
        )

    @get("/{event_id:uuid}/scanners", operation_id="listScanners")
    async def list_scanners(
        self, event_id: UUID, request: Request[Principal, Any, Any], services: Services
    ) -> list[Scanner]:
        """Door staff allowed to check tickets in for this event (owner)."""
        await owned_event(services, request.user, event_id)
        async with services.pool.connection() as conn:
            rows = await queries.scanners(conn, event_id)
        return [Scanner(account_id=r["account_id"], granted_at=r["granted_at"]) for r in rows]

    @post("/{event_id:uuid}/scanners", operation_id="grantScanner", status_code=201)
    async def grant(
        self, event_id: UUID, data: ScannerCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Scanner:
        """Let an existing account check tickets in for this event (owner)."""
        await owned_event(services, request.user, event_id)
        target = account_id(data.email)
        try:
            await services.call(lambda: services.accounts.get_account(target))
        except NotFound:
            raise Invalid("no account with this e-mail", field="email") from None
        await services.command(lambda: services.boxoffice.grant_scanner(event_id, target))
        async with services.pool.connection() as conn:
            rows = [r for r in await queries.scanners(conn, event_id) if r["account_id"] == target]
        granted = rows[0]["granted_at"] if rows else datetime.now().astimezone()
        return Scanner(account_id=target, granted_at=granted)

    @delete("/{event_id:uuid}/scanners/{account_id:uuid}", operation_id="revokeScanner", status_code=204)
    async def revoke(
        self, event_id: UUID, account_id: UUID, request: Request[Principal, Any, Any], services: Services
    ) -> None:
        """Withdraw a scanner's access (owner)."""
        await owned_event(services, request.user, event_id)
        await services.command(lambda: services.boxoffice.revoke_scanner(event_id, account_id))
