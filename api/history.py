"""The audit trail of an order and of a show: their stored events, oldest first, with the
account that caused each (`actor_id`; None for the system and for events stored before actors
were recorded). Read from the event store (`commands/history.py`), not from a read model."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.utils import get_topic
from litestar import Controller, Request, get

from api.access import owned_event
from api.common import Page, PageParam, PageSizeParam, page_of
from api.orders import visible_order
from api.security import Principal
from api.services import Services
from commands.history import Recorded, event_data, event_type, history
from domain.audit import actor_of
from domain.seat import Seat
from domain.waitlist import waitlist_id
from projections import queries

# Of a show's seats only who blocked and unblocked them: their sales are in the orders' trails.
SEAT_TOPICS = [get_topic(Seat.Blocked), get_topic(Seat.Unblocked)]


class HistoryEntry(msgspec.Struct):
    at: datetime | None  # None only for an event whose class can no longer decode it
    type: str
    actor_id: UUID | None
    data: dict[str, Any]
    aggregate_id: UUID
    version: int
    position: int


def entry(recorded: Recorded) -> HistoryEntry:
    event = recorded.event
    return HistoryEntry(
        at=event.timestamp if event is not None else None,
        type=event_type(recorded),
        actor_id=actor_of(event),
        data=event_data(recorded),
        aggregate_id=recorded.aggregate_id,
        version=recorded.version,
        position=recorded.position,
    )


async def _page(
    services: Services, ids: list[UUID], page: int, page_size: int, seats: list[UUID] | None = None
) -> Page[HistoryEntry]:
    rows, total = await services.call(
        lambda: history(
            services.boxoffice,
            ids,
            offset=(page - 1) * page_size,
            limit=page_size,
            some_of=seats or [],
            topics=SEAT_TOPICS if seats else [],
        )
    )
    return page_of([entry(r) for r in rows], total, page, page_size)


class HistoryController(Controller):
    tags = ["Audit"]

    @get("/orders/{order_id:uuid}/history", operation_id="getOrderHistory")
    async def order_history(
        self,
        order_id: UUID,
        request: Request[Principal, Any, Any],
        services: Services,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
    ) -> Page[HistoryEntry]:
        """The order's stored events, oldest first (its tickets live in it: issued, named,
        checked in, transferred, refunded), each with the account that caused it (`actor_id`;
        null: the system, e.g. a payment confirmed by Stripe or a hold expiring, or an event
        stored before actors were recorded). The buyer and admins; others 404."""
        await visible_order(services, request.user, order_id)
        return await _page(services, [order_id], page, page_size)

    @get("/events/{event_id:uuid}/history", operation_id="getEventHistory")
    async def event_history(
        self,
        event_id: UUID,
        request: Request[Principal, Any, Any],
        services: Services,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
    ) -> Page[HistoryEntry]:
        """The show's stored events, oldest first: the show itself (edits, publishing,
        cancelling, tiers, lineup, scanners), its offers (edits, pauses, and stock taken and
        returned by orders), their waitlists, and who blocked or unblocked its seats; each
        order has its own trail (`/orders/{id}/history`). Owner and admins (others 403, or 404
        for a draft)."""
        await owned_event(services, request.user, event_id)
        async with services.pool.connection() as conn:
            offers, seats = await queries.show_parts(conn, event_id)
        ids = [event_id, *offers, *(waitlist_id(offer) for offer in offers)]
        return await _page(services, ids, page, page_size, seats)
