"""Organizer reports for one event: its bookings and its sales by offer, tier and day."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get
from litestar.params import Parameter

from api.access import owned_event
from api.common import Page, PageParam, PageSizeParam, money, page_of
from api.orders import ORDER_STATUSES, Order, orders_for_rows
from api.security import Principal
from api.services import Services
from projections import queries


class SalesLine(msgspec.Struct):
    offer_id: UUID
    offer_name: str
    tier_id: UUID
    tier_name: str
    kind: str
    day: str | None
    price: str
    quantity_for_sale: int | None
    held: int
    sold: int
    valid_tickets: int
    voided_tickets: int
    checked_in: int
    revenue: str


class Sales(msgspec.Struct):
    event_id: UUID
    currency: str | None
    tickets_sold: int
    tickets_checked_in: int
    revenue: str
    lines: list[SalesLine]


class ReportController(Controller):
    path = "/events"
    tags = ["Reports"]

    @get("/{event_id:uuid}/orders", operation_id="listEventOrders")
    async def event_orders(
        self,
        event_id: UUID,
        request: Request[Principal, Any, Any],
        services: Services,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
        status: Annotated[str | None, Parameter(pattern=ORDER_STATUSES)] = None,
    ) -> Page[Order]:
        """Bookings for the event, newest first (owner, admin)."""
        await owned_event(services, request.user, event_id)
        async with services.pool.connection() as conn:
            rows, total = await queries.orders_of(conn, None, status, page, page_size, event_id=event_id)
        return page_of(await orders_for_rows(services, rows), total, page, page_size)

    @get("/{event_id:uuid}/sales", operation_id="getEventSales")
    async def sales(self, event_id: UUID, request: Request[Principal, Any, Any], services: Services) -> Sales:
        """Sold, held, revenue and check-ins per offer (with its tier and day), plus totals."""
        await owned_event(services, request.user, event_id)
        async with services.pool.connection() as conn:
            rows = await queries.sales(conn, event_id)
        currency = rows[0]["currency"] if rows else None
        lines = [
            SalesLine(
                offer_id=r["offer_id"],
                offer_name=r["offer_name"],
                tier_id=r["tier_id"],
                tier_name=r["tier_name"],
                kind=r["kind"],
                day=r["day"],
                price=money(r["price"], r["currency"]) or "0",
                quantity_for_sale=r["quantity_for_sale"],
                held=int(r["held_now"]),
                sold=int(r["valid_tickets"]),
                valid_tickets=int(r["valid_tickets"]),
                voided_tickets=int(r["voided"]),
                checked_in=int(r["checked_in"]),
                revenue=money(int(r["revenue"]), r["currency"]) or "0",
            )
            for r in rows
        ]
        return Sales(
            event_id=event_id,
            currency=currency,
            tickets_sold=sum(line.valid_tickets for line in lines),
            tickets_checked_in=sum(line.checked_in for line in lines),
            revenue=money(sum(int(r["revenue"]) for r in rows), currency) or "0",
            lines=lines,
        )
