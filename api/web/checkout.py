"""The checkout (`/checkout/{order_id}`: the hold's countdown, pay, then the tickets with their QR
codes and PDF) and `/me` (my orders and tickets). Pages for the signed-in buyer only.

How the buyer pays depends on the deployment: in development with localstripe's test cards
(api/web/devpay.py); elsewhere with Stripe's Payment Element (Stripe.js, loaded from
js.stripe.com: the one page, and the one host, allowed by its CSP extension in api/security.py)
when STRIPE_PUBLISHABLE_KEY is set; otherwise the page says that payment is unavailable."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.concurrency import sync_to_thread

from api.orders import Order, order_row, orders_for_rows, start_order_payment
from api.security import CSP_EXTENSION, Principal
from api.services import Services
from api.web.common import FORM, first, form_of, page_error, render, see_other, to_login, user_of
from api.web.devpay import pay_with_test_card, test_cards
from commands.payments_gateway import PaymentProviderError, StripeGateway
from domain.errors import DomainError
from projections import queries
from projections import waitlist as waitlist_queries

PAID = ("paid", "partially_refunded")
# A PaymentIntent in these states has the money (or is getting it): the page waits for the webhook.
SETTLING = ("succeeded", "processing", "requires_capture")


@dataclass(frozen=True)
class StripeJs:
    """What the checkout's Payment Element is given (as data- attributes: no inline script)."""

    publishable_key: str
    client_secret: str
    return_url: str


def publishable_key(services: Services) -> str:
    """The key for Stripe.js, outside development only (there, test cards are the way to pay)."""
    gateway = services.boxoffice.gateway
    if services.settings.is_development or not isinstance(gateway, StripeGateway):
        return ""
    return gateway.publishable_key


def _free(order: Order) -> bool:
    return Decimal(order.total) == 0


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
        cards = test_cards(services)
        key = publishable_key(services)
        waiting = order.status == "held" and order.payment_status == "pending"
        stripe_js = None
        if order.status == "held" and key and order.payment_intent_id:
            # The buyer is paying with Stripe.js: the intent itself tells whether they are done
            # (then the page waits for the webhook) or the card form is still to fill in.
            gateway: Any = services.boxoffice.gateway
            try:
                intent = await sync_to_thread(gateway.get_intent, order.payment_intent_id)
            except PaymentProviderError as failure:
                waiting, error = False, error or str(failure)
            else:
                waiting = intent.status in SETTLING
                if not waiting:
                    here = f"{str(request.base_url).rstrip('/')}/checkout/{order.id}"
                    stripe_js = StripeJs(key, intent.client_secret, here)
        page = render(
            request,
            "checkout.html",
            order=order,
            event=event,
            paid=order.status in PAID,
            waiting=waiting,
            cards=cards,
            stripe_js=stripe_js,
            can_pay=bool(cards or key or _free(order)),
            # With Stripe.js the button only starts the payment; the card is asked for next.
            starts_only=bool(key and not cards and not _free(order)),
            error=error[:200],
        )
        if stripe_js is not None:
            page.headers[CSP_EXTENSION] = "stripe-js"  # this response only: see api/security.py
        return page

    @post("/checkout/{order_id:uuid}/pay", exclude_from_auth=True, opt=FORM, status_code=303)
    async def pay(self, request: Request[Any, Any, Any], services: Services, order_id: UUID) -> Response[Any]:
        """Start the payment (the same command as POST /api/v1/orders/{id}/payment) and, in
        development, pay with the chosen test card (api/web/devpay.py); elsewhere the page then
        shows Stripe's card form for the intent."""
        user = user_of(request)
        if user is None:
            return to_login(request)
        fields = await form_of(request)
        cards = test_cards(services)
        try:
            order = await _own_order(services, user, order_id)
            if order is not None and not (cards or publishable_key(services) or _free(order)):
                raise PaymentProviderError("payment is unavailable here: no way to take cards is configured")
            payment = await start_order_payment(services, user, order_id)
            card = first(fields, "card", 50)
            if cards and payment.payment_intent_id and payment.status == "held":
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
