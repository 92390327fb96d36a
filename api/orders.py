"""Orders: place (hold inventory), read, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter

from api.auth import Principal
from api.common import Page, PageParam, PageSizeParam, money, page_of
from api.services import Services
from commands.sales import ItemRequest
from domain.errors import NotFound
from projections import queries

ORDER_STATUSES = r"^(held|paid|cancelled|expired|refunded|partially_refunded)$"


class OrderItemCreate(msgspec.Struct, forbid_unknown_fields=True):
    offer_id: UUID
    quantity: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    seat_id: UUID | None = None


class OrderCreate(msgspec.Struct, forbid_unknown_fields=True):
    items: Annotated[list[OrderItemCreate], msgspec.Meta(min_length=1, max_length=50)]


class OrderItem(msgspec.Struct):
    offer_id: UUID
    offer_name: str | None
    tier_id: UUID
    tier_name: str | None
    seat_id: UUID | None
    seat_label: str | None
    quantity: int
    unit_price: str
    line_total: str


class Order(msgspec.Struct):
    id: UUID
    status: str
    event_id: UUID
    buyer_id: UUID
    items: list[OrderItem]
    currency: str
    subtotal: str
    fees: str
    total: str
    ticket_count: int
    placed_at: datetime
    hold_expires_at: datetime
    closed_at: datetime | None


def _order(row: dict[str, Any], names: dict[UUID, dict[str, Any]]) -> Order:
    currency = row["currency"]
    items = []
    for item in row["items"]:
        offer_id = UUID(item["offer_id"])
        name = names.get(offer_id, {})
        items.append(
            OrderItem(
                offer_id=offer_id,
                offer_name=name.get("name"),
                tier_id=UUID(item["tier_id"]),
                tier_name=name.get("tier_name"),
                seat_id=UUID(item["seat_id"]) if item["seat_id"] else None,
                seat_label=item["seat_label"],
                quantity=item["quantity"],
                unit_price=money(item["unit_price"], currency) or "0",
                line_total=money(item["unit_price"] * item["quantity"], currency) or "0",
            )
        )
    return Order(
        id=row["id"],
        status=row["status"],
        event_id=row["event_id"],
        buyer_id=row["buyer_id"],
        items=items,
        currency=currency,
        subtotal=money(row["subtotal"], currency) or "0",
        fees=money(row["fees"], currency) or "0",
        total=money(row["total"], currency) or "0",
        ticket_count=row["ticket_count"],
        placed_at=row["placed_at"],
        hold_expires_at=row["hold_expires_at"],
        closed_at=row["closed_at"],
    )


async def _orders(services: Services, rows: list[dict[str, Any]]) -> list[Order]:
    offer_ids = list({UUID(i["offer_id"]) for r in rows for i in r["items"]})
    async with services.pool.connection() as conn:
        names = await queries.offer_names(conn, offer_ids) if offer_ids else {}
    return [_order(r, names) for r in rows]


async def _visible_order(services: Services, user: Principal, order_id: UUID) -> dict[str, Any]:
    """The order row if the caller owns it or is an admin; 404 otherwise (not even its existence leaks)."""
    async with services.pool.connection() as conn:
        row = await queries.order(conn, order_id)
    if row is None or not (user.is_admin or row["buyer_id"] == user.id):
        raise NotFound("order not found", code="order_not_found")
    return row


class OrderController(Controller):
    path = "/orders"
    tags = ["Orders"]

    @post("/", operation_id="placeOrder", status_code=201)
    async def place(
        self,
        data: OrderCreate,
        request: Request[Principal, Any, Any],
        services: Services,
        idempotency_key: Annotated[
            str | None, Parameter(header="Idempotency-Key", max_length=200, required=False)
        ] = None,
    ) -> Response[Order]:
        """Hold GA quantity and/or specific seats until `hold_expires_at`.

        409 when sold out or a seat is taken; 422 when per-order limits are broken. The same
        Idempotency-Key returns the order placed the first time.
        """
        items = [ItemRequest(offer_id=i.offer_id, quantity=i.quantity, seat_id=i.seat_id) for i in data.items]
        buyer = request.user.id

        def place() -> tuple[Any, bool]:
            order, created = services.boxoffice.place_order(buyer, items, idempotency_key=idempotency_key)
            if created:
                services.actors.schedule_expiry(order.id, order.hold_expires_at)
            return order, created

        order, created = await services.command(place)
        row = await _visible_order(services, request.user, order.id)
        return Response((await _orders(services, [row]))[0], status_code=201 if created else 200)

    @get("/", operation_id="listOrders")
    async def list_orders(
        self,
        request: Request[Principal, Any, Any],
        services: Services,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
        status: Annotated[str | None, Parameter(pattern=ORDER_STATUSES)] = None,
    ) -> Page[Order]:
        """The caller's orders, newest first (optionally by status)."""
        async with services.pool.connection() as conn:
            rows, total = await queries.orders_of(conn, request.user.id, status, page, page_size)
        return page_of(await _orders(services, rows), total, page, page_size)

    @get("/{order_id:uuid}", operation_id="getOrder")
    async def get_order(self, order_id: UUID, request: Request[Principal, Any, Any], services: Services) -> Order:
        """One order with items, totals and hold deadline (owner or admin)."""
        row = await _visible_order(services, request.user, order_id)
        return (await _orders(services, [row]))[0]

    @post("/{order_id:uuid}/cancel", operation_id="cancelOrder", status_code=200)
    async def cancel(self, order_id: UUID, request: Request[Principal, Any, Any], services: Services) -> Order:
        """Give up a held order; its seats and quantity go straight back on sale."""
        await _visible_order(services, request.user, order_id)
        await services.command(lambda: services.boxoffice.cancel_order(order_id))
        row = await _visible_order(services, request.user, order_id)
        return (await _orders(services, [row]))[0]
