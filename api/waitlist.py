"""Waitlist: queue for a sold-out offer, see my places in line, leave."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, post

from api.common import Page, PageParam, PageSizeParam, page_of
from api.security import Principal, verified_only
from api.services import Services
from domain.errors import NotFound
from projections import waitlist as queries


class WaitlistJoin(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1


class WaitlistEntry(msgspec.Struct):
    id: UUID
    offer_id: UUID
    event_id: UUID
    # Place in line while waiting (1 = next to be offered); null once offered, converted, lapsed or left.
    position: int | None
    status: str  # waiting | offered | converted | lapsed | left
    quantity: int
    joined_at: datetime
    # The held order kept for you once offered, and until when it waits for your payment.
    order_id: UUID | None = None
    offer_expires_at: datetime | None = None


def _entry(row: dict[str, Any]) -> WaitlistEntry:
    return WaitlistEntry(
        id=row["id"],
        offer_id=row["offer_id"],
        event_id=row["event_id"],
        position=row["position"],
        status=row["status"],
        quantity=row["quantity"],
        joined_at=row["joined_at"],
        order_id=row["order_id"],
        offer_expires_at=row["offer_expires_at"],
    )


async def _own_entry(services: Services, user: Principal, entry_id: UUID) -> dict[str, Any]:
    async with services.pool.connection() as conn:
        row = await queries.entry(conn, entry_id)
    if row is None or row["account_id"] != user.id:
        raise NotFound("waitlist entry not found", code="waitlist_entry_not_found")
    return row


class OfferWaitlistController(Controller):
    path = "/offers/{offer_id:uuid}/waitlist"
    tags = ["Waitlist"]

    @post("/", operation_id="joinWaitlist", status_code=201, guards=[verified_only])
    async def join(
        self,
        offer_id: UUID,
        request: Request[Principal, Any, Any],
        services: Services,
        data: WaitlistJoin | None = None,
    ) -> WaitlistEntry:
        """Queue for a sold-out offer (`quantity` tickets, within the offer's per-order limits).

        When tickets come back, the first in line gets a held order for their quantity
        (`order_id`, `offer_expires_at`); unpaid by then, it lapses and the next in line is offered.
        409 `not_sold_out` while the offer can still be bought, 409 `already_waiting`.
        """
        quantity = data.quantity if data is not None else 1
        joined = await services.command(
            lambda: services.boxoffice.join_waitlist(offer_id, request.user.id, quantity), actor=request.user.id
        )
        return _entry(await _own_entry(services, request.user, joined.entry_id))


class MyWaitlistController(Controller):
    path = "/me/waitlist"
    tags = ["Waitlist"]

    @get("/", operation_id="listMyWaitlist")
    async def mine(
        self,
        request: Request[Principal, Any, Any],
        services: Services,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
    ) -> Page[WaitlistEntry]:
        """The caller's waitlist entries, newest first, with their places in line."""
        async with services.pool.connection() as conn:
            rows, total = await queries.entries_of_account(conn, request.user.id, page, page_size)
        return page_of([_entry(r) for r in rows], total, page, page_size)


class WaitlistController(Controller):
    path = "/waitlist"
    tags = ["Waitlist"]

    @delete("/{entry_id:uuid}", operation_id="leaveWaitlist", status_code=204)
    async def leave(self, entry_id: UUID, request: Request[Principal, Any, Any], services: Services) -> None:
        """Leave the line; an order already offered to you is cancelled and goes to the next in line."""
        row = await _own_entry(services, request.user, entry_id)
        await services.command(
            lambda: services.boxoffice.leave_waitlist(row["offer_id"], entry_id, request.user.id), actor=request.user.id
        )
