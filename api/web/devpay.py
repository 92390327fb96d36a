"""Paying in development, against localstripe.

Stripe.js confirms a PaymentIntent from the browser with a card. localstripe's own Stripe.js
stand-in (served by localstripe at `/js.stripe.com/v3/`) cannot do that: its `confirmCardPayment`
only answers the 3-D Secure question of an intent already confirmed with a card on the server,
and its card element only makes tokens. So in development the checkout page offers
localstripe's test cards instead, and this module does what Stripe.js would: attaches the chosen
test payment method to the order's intent and confirms it, with the server's test key (the same
two calls as the README's curl walk-through). The order then becomes paid the usual way, when
localstripe's signed webhook arrives. Nothing here runs outside development, and no page loads
anything from localstripe's port. Outside development the checkout uses Stripe.js itself, with
STRIPE_PUBLISHABLE_KEY (api/web/checkout.py).
"""

from __future__ import annotations

from typing import Any

from api.services import Services
from commands.payments_gateway import PaymentProviderError, StripeGateway

# localstripe's test payment methods: one that pays, one the bank declines.
TEST_CARDS = {"pm_card_visa": "Visa 4242 (pays)", "pm_card_chargeCustomerFail": "Declined card"}


def test_cards(services: Services) -> dict[str, str]:
    """The test cards to offer, or none (outside development, or without a Stripe stand-in)."""
    gateway = services.boxoffice.gateway
    return TEST_CARDS if services.settings.is_development and isinstance(gateway, StripeGateway) else {}


def pay_with_test_card(services: Services, intent_id: str, card: str) -> None:
    """Attach `card` to the intent and confirm it (blocking: run it in a thread)."""
    gateway = services.boxoffice.gateway
    if card not in TEST_CARDS or not isinstance(gateway, StripeGateway) or not services.settings.is_development:
        raise PaymentProviderError("test cards are for development only")
    client: Any = gateway.client
    import stripe

    try:
        intent = client.v1.payment_intents.retrieve(intent_id)
        if intent.status in ("requires_payment_method", "requires_confirmation"):
            if intent.status == "requires_payment_method":
                client.v1.payment_intents.update(intent_id, params={"payment_method": card})
            client.v1.payment_intents.confirm(intent_id)
    except stripe.StripeError as error:
        raise PaymentProviderError(f"the payment provider refused: {error.user_message or error}") from error
