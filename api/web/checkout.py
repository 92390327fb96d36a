"""The checkout (`/checkout/{order_id}`: the hold's countdown, pay, then the tickets with their QR
codes and PDF) and `/me` (my orders and tickets). Pages for the signed-in buyer only."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.concurrency import sync_to_thread

from api.orders import Order, order_row, orders_for_rows, start_order_payment
from api.security import Principal
from api.services import Services
from api.web.common import FORM, first, form_of, page_error, render, see_other, to_login, user_of
from api.web.devpay import pay_with_test_card, test_cards
from domain.errors import DomainError
from projections import queries
from projections import waitlist as waitlist_queries

PAID = ("paid", "partially_refunded")


async def _own_order(services: Services, user: Principal, order_id: UUID) -> Order | None:
    row = await order_row(services, order_id)
    if row is None or row["buyer_id"] != user.id:
        return None
    return (await orders_for_rows(services, [row]))[0]


class CheckoutController(Controller):
    path = "/"
    include_in_schema = False

    @get("/checkout/{order_id:uuid}", exclude_from_auth=True)
    async def checkout(
        self, request: Request[Any, Any, Any], services: Services, order_id: UUID, error: str = ""
    ) -> Response[Any]:
        user = user_of(request)
        if user is None:
            return to_login(request)
        order = await _own_order(services, user, order_id)
        if order is None:
            return page_error(request, "Order not found", "There is no such order of yours.", 404)
        async with services.pool.connection() as conn:
            event = await queries.event(conn, order.event_id)
        waiting = order.status == "held" and order.payment_status == "pending"
        return render(
            request,
            "checkout.html",
            order=order,
            event=event,
            paid=order.status in PAID,
            waiting=waiting,
            cards=test_cards(services),
            error=error[:200],
        )

    @post("/checkout/{order_id:uuid}/pay", exclude_from_auth=True, opt=FORM, status_code=303)
    async def pay(self, request: Request[Any, Any, Any], services: Services, order_id: UUID) -> Response[Any]:
        """Start the payment (the same command as POST /api/v1/orders/{id}/payment) and, in
        development, pay with the chosen test card (api/web/devpay.py)."""
        user = user_of(request)
        if user is None:
            return to_login(request)
        fields = await form_of(request)
        try:
            payment = await start_order_payment(services, user, order_id)
            card = first(fields, "card", 50)
            if payment.payment_intent_id and payment.status == "held":
                await sync_to_thread(pay_with_test_card, services, payment.payment_intent_id, card)
        except DomainError as error:
            return see_other(f"/checkout/{order_id}?error={_quoted(str(error))}")
        return see_other(f"/checkout/{order_id}")

    @post("/checkout/{order_id:uuid}/cancel", exclude_from_auth=True, opt=FORM, status_code=303)
    async def cancel(self, request: Request[Any, Any, Any], services: Services, order_id: UUID) -> Response[Any]:
        user = user_of(request)
        if user is None:
            return to_login(request)
        await form_of(request)
        order = await _own_order(services, user, order_id)
        if order is None:
            return page_error(request, "Order not found", "There is no such order of yours.", 404)
        try:
            await services.command(lambda: services.boxoffice.cancel_order(order_id), actor=user.id)
        except DomainError as error:
            return see_other(f"/checkout/{order_id}?error={_quoted(str(error))}")
        return see_other(f"/e/{order.event_id}")

    @get("/me", exclude_from_auth=True)
    async def me(
        self, request: Request[Any, Any, Any], services: Services, done: str = "", error: str = ""
    ) -> Response[Any]:
        """My orders (newest first) and my tickets."""
        user = user_of(request)
        if user is None:
            return to_login(request)
        async with services.pool.connection() as conn:
            rows, _ = await queries.orders_of(conn, user.id, None, 1, 50, None)
            tickets, _ = await queries.tickets_of_owner(conn, user.id, 1, 100)
        orders = await orders_for_rows(services, rows)
        async with services.pool.connection() as conn:
            waiting, _ = await waitlist_queries.entries_of_account(conn, user.id, 1, 20)
        return render(
            request, "me.html", orders=orders, tickets=tickets, waiting=waiting, done=done[:200], error=error[:200]
        )


def _quoted(text: str) -> str:
    from urllib.parse import quote

    return quote(text[:200], safe="")
