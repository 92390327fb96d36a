"""Orders: place (hold inventory), read, cancel."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, cast
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter

from api.common import Page, PageParam, PageSizeParam, money, page_of, to_minor
from api.errors import domain_error
from api.inputs import BadRequest, clean_header
from api.security import ACCESS_COOKIE, Principal, optional_principal, verified_only
from api.services import ReadModelsLagging, Services, queue_follow_up
from commands.claims import PlacedOrder, submit_and_wait
from commands.tickets_signing import human_code
from domain.errors import Conflict, Forbidden, Invalid, NotFound
from domain.order_number import normalise_order_number
from domain.placement import ItemRequest
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


class OrderTicket(msgspec.Struct):
    id: UUID
    code: str
    status: str
    offer_id: UUID
    seat_id: UUID | None
    seat_label: str | None
    price: str


class OrderRefund(msgspec.Struct):
    """One refund of the order: its amount, the tickets it voided (none: money only), why and when."""

    id: str
    amount: str
    ticket_ids: list[UUID]
    reason: str
    at: datetime


class Order(msgspec.Struct):
    id: UUID
    # The short human order number (on mails, PDFs and lists); None for orders placed before numbering.
    number: str | None
    status: str
    payment_status: str
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
    amount_paid: str
    amount_refunded: str
    payment_intent_id: str | None
    paid_at: datetime | None
    last_payment_error: str | None
    tickets: list[OrderTicket]
    refunds: list[OrderRefund] = []


def _item(item: Any, currency: str, names: Names) -> OrderItem:
    offer_id = _uuid(item["offer_id"])
    offer_name, tier_name = names.get(offer_id, (None, None))
    return OrderItem(
        offer_id=offer_id,
        offer_name=offer_name,
        tier_id=_uuid(item["tier_id"]),
        tier_name=tier_name,
        seat_id=_uuid(item["seat_id"]),
        seat_label=item["seat_label"],
        quantity=item["quantity"],
        unit_price=money(item["unit_price"], currency) or "0",
        line_total=money(item["unit_price"] * item["quantity"], currency) or "0",
    )


def _uuid(value: Any) -> Any:
    """Ids in order items: UUIDs when placed, strings in the read model's JSON."""
    return value if value is None or isinstance(value, UUID) else UUID(value)


Names = Mapping[UUID, tuple[str | None, str | None]]  # offer id -> (offer name, tier name)


def order_answer(order: PlacedOrder, names: Names, tickets: list[OrderTicket]) -> Order:
    """The order as answered: from the write that placed it, or from the read model's row
    (`order_of_row`), through this one struct."""
    c = order.currency
    return Order(
        id=order.id,
        number=order.number,
        status=order.status,
        payment_status=order.payment_status,
        event_id=order.event_id,
        buyer_id=order.buyer_id,
        items=[_item(item, c, names) for item in order.items],
        currency=c,
        subtotal=money(order.subtotal, c) or "0",
        fees=money(order.fees, c) or "0",
        total=money(order.total, c) or "0",
        ticket_count=order.ticket_count,
        placed_at=order.placed_at,
        hold_expires_at=order.hold_expires_at,
        closed_at=order.closed_at,
        amount_paid=money(order.amount_paid, c) or "0",
        amount_refunded=money(order.amount_refunded, c) or "0",
        payment_intent_id=order.payment_intent_id,
        paid_at=order.paid_at,
        last_payment_error=order.last_payment_error,
        tickets=tickets,
    )


def order_of_row(row: dict[str, Any], names: dict[UUID, dict[str, Any]], tickets: list[dict[str, Any]]) -> Order:
    currency = row["currency"]
    fields = PlacedOrder(**{name: row[name] for name in PlacedOrder.__struct_fields__})
    answer = order_answer(
        fields,
        {offer_id: (n.get("name"), n.get("tier_name")) for offer_id, n in names.items()},
        [
            OrderTicket(
                id=t["id"],
                code=human_code(t["id"]),
                status=t["status"],
                offer_id=t["offer_id"],
                seat_id=t["seat_id"],
                seat_label=t["seat_label"],
                price=money(t["price"], currency) or "0",
            )
            for t in tickets
        ],
    )
    answer.refunds = [
        OrderRefund(
            id=r["id"],
            amount=money(r["amount"], currency) or "0",
            ticket_ids=[UUID(t) for t in r["ticket_ids"]],
            reason=r["reason"],
            at=datetime.fromisoformat(r["at"]),
        )
        for r in row.get("refunds") or []
    ]
    return answer


async def place_order(
    services: Services, buyer_id: UUID, data: OrderCreate, idempotency_key: str | None
) -> tuple[int, Order]:
    """Place an order: (201 or, for a repeated Idempotency-Key, 200; the order), answered once
    stored. Raises the domain's errors."""
    items = [ItemRequest(offer_id=i.offer_id, quantity=i.quantity, seat_id=i.seat_id) for i in data.items]
    # The claims port batches this order with everyone else's; its outcome settles the future on
    # this event loop (no worker thread waits).
    outcome = await submit_and_wait(services.boxoffice.claims, buyer_id, items, idempotency_key)
    # Answered from the write itself, without waiting for the read models: the buyer's next
    # reads wait for it instead (`OwnWrites`). Only when that note cannot be taken does the
    # order wait here, a bounded while (stored either way: a lagging projector delays
    # read-your-writes, never the order; a "retry" would make a client buy twice).
    if not await services.own_writes.remember(buyer_id, outcome.position):
        with contextlib.suppress(ReadModelsLagging):
            await services.watcher.wait(outcome.position, services.settings.projection_wait_seconds)
    return 201 if outcome.created else 200, order_answer(outcome.order, outcome.names, [])


async def see_own_writes(request: Request[Any, Any, Any]) -> None:
    """Before any request of a signed-in account (API token or the web pages' session cookie,
    public routes included) except placing an order: wait until the read models show the
    orders it was answered for (`OwnWrites`), so the buyer's next look at the seat map or the
    offers shows their hold too. Anonymous requests read what the read models have (others'
    holds appear within the projector's lag, milliseconds when it runs)."""
    if request.route_handler.operation_id == "placeOrder":
        return
    user = request.scope.get("user")
    if not isinstance(user, Principal):  # a public route: the caller's token, if they sent one
        sent = ACCESS_COOKIE in request.cookies or "authorization" in request.headers
        user = optional_principal(request) if sent else None
    if user is not None:
        services: Services = request.app.state.services
        await services.own_writes.wait(user.id)


async def orders_for_rows(services: Services, rows: list[dict[str, Any]]) -> list[Order]:
    offer_ids = list({UUID(i["offer_id"]) for r in rows for i in r["items"]})
    paid = [r["id"] for r in rows if r["status"] in ("paid", "partially_refunded", "refunded")]
    async with services.pool.connection() as conn:
        names = await queries.offer_names(conn, offer_ids) if offer_ids else {}
        ticket_rows = await queries.tickets_of_orders(conn, paid) if paid else []
    by_order: dict[UUID, list[dict[str, Any]]] = {}
    for t in ticket_rows:
        by_order.setdefault(t["order_id"], []).append(t)
    return [order_of_row(r, names, by_order.get(r["id"], [])) for r in rows]


async def order_row(services: Services, order_id: UUID) -> dict[str, Any] | None:
    """The order's read-model row, None if there is no such order.

    An order is answered before the read models have it (`place_order`). Its buyer's requests
    wait for it (`see_own_writes`); anyone else asking by id (an admin, the box office) finds it
    here too: an order the store holds but the read models do not yet is waited for, a bounded
    while, with no pooled connection held meanwhile."""
    async with services.pool.connection() as conn:
        row = await queries.order(conn, order_id)
        position = await queries.stored_position(conn, order_id) if row is None else None
    if position:
        with contextlib.suppress(ReadModelsLagging):
            await services.watcher.wait(position, services.settings.projection_wait_seconds)
        async with services.pool.connection() as conn:
            row = await queries.order(conn, order_id)
    return row


async def visible_order(services: Services, user: Principal, order_id: UUID) -> dict[str, Any]:
    """The order row if the caller owns it or is an admin; 404 otherwise (not even its existence leaks)."""
    row = await order_row(services, order_id)
    if row is None or not (user.is_admin or row["buyer_id"] == user.id):
        raise NotFound("order not found", code="order_not_found")
    return row


class OrderController(Controller):
    path = "/orders"
    tags = ["Orders"]

    @post("/", operation_id="placeOrder", status_code=201, guards=[verified_only])
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
        if idempotency_key is not None and clean_header(idempotency_key.encode("latin-1", "replace")) is None:
            raise BadRequest("the Idempotency-Key contains a control character")
        try:
            status, body = await place_order(services, request.user.id, data, idempotency_key)
        except Conflict as conflict:
            # In a rush most answers are 409 (seat taken, sold out): answered here, with the body
            # and status the exception handler would give, instead of unwinding every middleware.
            return cast("Response[Order]", domain_error(request, conflict))
        return Response(body, status_code=status)

    @get("/", operation_id="listOrders")
    async def list_orders(
        self,
        request: Request[Principal, Any, Any],
        services: Services,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
        status: Annotated[str | None, Parameter(pattern=ORDER_STATUSES)] = None,
        event_id: UUID | None = None,
        buyer_id: UUID | None = None,
        number: Annotated[str | None, Parameter(max_length=20)] = None,
    ) -> Page[Order]:
        """The caller's orders, newest first; an admin sees everyone's. Filters: `status`,
        `event_id`, `number` (the human order number, dashes and case ignored) and, for admins,
        `buyer_id`."""
        user = request.user
        if buyer_id is not None and not user.is_admin and buyer_id != user.id:
            raise Forbidden("only admins list other people's orders", code="forbidden")
        wanted = None
        if number is not None:
            wanted = normalise_order_number(number)
            if wanted is None:
                raise Invalid("not an order number (8 characters, e.g. K7QF3MZX)", field="number")
        owner = buyer_id if user.is_admin else user.id
        async with services.pool.connection() as conn:
            rows, total = await queries.orders_of(conn, owner, status, page, page_size, event_id, number=wanted)
        return page_of(await orders_for_rows(services, rows), total, page, page_size)

    @get("/{order_id:uuid}", operation_id="getOrder")
    async def get_order(self, order_id: UUID, request: Request[Principal, Any, Any], services: Services) -> Order:
        """One order with items, totals and hold deadline (owner or admin)."""
        row = await visible_order(services, request.user, order_id)
        return (await orders_for_rows(services, [row]))[0]

    @post("/{order_id:uuid}/cancel", operation_id="cancelOrder", status_code=200)
    async def cancel(self, order_id: UUID, request: Request[Principal, Any, Any], services: Services) -> Order:
        """Give up a held order; its seats and quantity go straight back on sale."""
        await visible_order(services, request.user, order_id)
        await services.command(lambda: services.boxoffice.cancel_order(order_id), actor=request.user.id)
        row = await visible_order(services, request.user, order_id)
        return (await orders_for_rows(services, [row]))[0]

    @post("/{order_id:uuid}/payment", operation_id="startPayment", status_code=200)
    async def start_payment(self, order_id: UUID, request: Request[Principal, Any, Any], services: Services) -> Payment:
        """Create (or return the existing) Stripe PaymentIntent; free orders are confirmed at once.

        Confirm the returned client_secret with Stripe.js (or, against localstripe, with the test
        card `pm_card_visa`); the order becomes paid when Stripe's webhook arrives.
        """
        return await start_order_payment(services, request.user, order_id)

    @post("/{order_id:uuid}/refund", operation_id="refundOrder", status_code=200)
    async def refund(
        self,
        order_id: UUID,
        request: Request[Principal, Any, Any],
        services: Services,
        data: RefundCreate | None = None,
        idempotency_key: Annotated[
            str | None, Parameter(header="Idempotency-Key", max_length=200, required=False)
        ] = None,
    ) -> Order:
        """Refund through Stripe: all valid tickets, or those named in `ticket_ids` (voided, their
        seats and quantity back on sale; `amount` may be less than they cost, to keep a fee), or,
        with only an `amount`, part of the money while every ticket stays valid (the whole
        remainder is a full refund). 409 `amount_mismatch` for more than can be refunded. The
        order lists each refund in `refunds`. Send an `Idempotency-Key` to make a retry safe: a
        repeated key answers the order without refunding again. Buyers until the refund cutoff,
        organizers and admins any time."""
        data = data or RefundCreate()
        user = request.user
        if idempotency_key is not None and clean_header(idempotency_key.encode("latin-1", "replace")) is None:
            raise BadRequest("the Idempotency-Key contains a control character")
        row = await _order_row(services, order_id)
        amount = to_minor(data.amount, row["currency"], "amount") if data.amount is not None else None
        await services.command(
            lambda: services.boxoffice.refund_order(
                order_id,
                actor_id=user.id,
                actor_role=user.role,
                ticket_ids=data.ticket_ids,
                amount=amount,
                reason=data.reason,
                request_key=idempotency_key,
            ),
            actor=user.id,
        )
        return (await orders_for_rows(services, [await _order_row(services, order_id)]))[0]


class RefundCreate(msgspec.Struct, forbid_unknown_fields=True):
    amount: str | float | None = None
    ticket_ids: Annotated[list[UUID], msgspec.Meta(max_length=500)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class Payment(msgspec.Struct):
    order_id: UUID
    status: str
    payment_status: str
    amount: str
    currency: str
    hold_expires_at: datetime
    payment_intent_id: str | None
    client_secret: str | None


async def _order_row(services: Services, order_id: UUID) -> dict[str, Any]:
    row = await order_row(services, order_id)
    if row is None:
        raise NotFound("order not found", code="order_not_found")
    return row


async def start_order_payment(services: Services, user: Principal, order_id: UUID) -> Payment:
    """Create (or return the existing) PaymentIntent of the caller's own order (404 for anyone
    else's); a held order's expiry is scheduled again (payment may keep the hold longer)."""
    row = await visible_order(services, user, order_id)
    if row["buyer_id"] != user.id:
        raise NotFound("order not found", code="order_not_found")

    def start() -> Any:
        started = services.boxoffice.start_payment(order_id)
        if started.order.status == "held":
            deadline = started.order.hold_expires_at
            queue_follow_up(lambda: services.tasks.schedule_expiry(order_id, deadline), "hold expiry")
        return started

    started = await services.command(start, actor=user.id)
    order, intent = started.order, started.intent
    return Payment(
        order_id=order.id,
        status=order.status,
        payment_status=order.payment_status,
        amount=money(order.total, order.currency) or "0",
        currency=order.currency,
        hold_expires_at=order.hold_expires_at,
        payment_intent_id=intent.id if intent else None,
        client_secret=intent.client_secret if intent else None,
    )
