"""The checkout outside development, with STRIPE_PUBLISHABLE_KEY: a second deployment on the
same stack as in production (localstripe still answers for Stripe). The page mounts Stripe's
Payment Element for the order's intent, and only that page's CSP lets Stripe.js in.

Stripe.js itself cannot run here (no internet, and localstripe's stand-in cannot confirm a card:
api/web/devpay.py), so these tests check what the page hands it and confirm the intent with the
SDK as Stripe.js would; the order becomes paid by localstripe's webhook as in production.

The organizer's payouts too: the intent of a linked organizer's order names the account and
the platform fee (in its metadata: localstripe takes no destination charges, see
tests/integration/test_payouts.py), and the organizer page's "Get paid" panel."""

from __future__ import annotations

import html
import re
import time

import httpx
import pytest
import stripe

from api.security import API_CSP, STRIPE_JS_CSP, WEB_CSP
from tests.conftest import STRIPEJS_KEY
from tests.e2e.conftest import bearer, order, publish_show, register
from ticketing import Settings

KEY = STRIPEJS_KEY


@pytest.fixture
def deployment(stripejs_deployment: str) -> str:
    return stripejs_deployment


@pytest.fixture(scope="module")
def sdk(settings: Settings) -> stripe.StripeClient:
    return stripe.StripeClient(settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base})


def pages(base_url: str, token: str, csrf: str = "") -> httpx.Client:
    """A browser signed in as `token`. Production cookies are Secure, which httpx keeps off plain
    HTTP, so the session cookies are sent as a header."""
    cookie = f"auth-token={token}" + (f"; csrf-token={csrf}" if csrf else "")
    return httpx.Client(base_url=base_url, timeout=30, follow_redirects=False, headers={"Cookie": cookie})


def data_of(page: str, name: str) -> str:
    match = re.search(rf'{name}="([^"]*)"', page)
    assert match is not None, name
    return html.unescape(match.group(1))


def no_inline_script(page: str) -> bool:
    return all("src=" in tag for tag in re.findall(r"<script[^>]*>", page))


def page_with(web: httpx.Client, path: str, text: str, timeout: float = 30.0) -> httpx.Response:
    """The page once it says `text` (the webhook and the read models have caught up)."""
    deadline = time.monotonic() + timeout
    while text not in (page := web.get(path)).text:
        assert time.monotonic() < deadline, f"{path} never said {text!r}"
        time.sleep(0.3)
    return page


def test_the_checkout_mounts_the_payment_element_and_widens_the_csp_of_that_page_only(
    client: httpx.Client, admin_token: str, deployment: str, sdk: stripe.StripeClient
) -> None:
    organizer = register(client, "organizer")
    linked = httpx.post(f"{deployment}/api/v1/organizer/stripe/onboarding-link", headers=bearer(organizer), timeout=30)
    assert linked.status_code == 200, linked.text
    account = linked.json()["account"]
    show = publish_show(client, admin_token, organizer=organizer, seats=2)
    buyer = register(client)
    placed = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 1}]).json()
    checkout = f"/checkout/{placed['id']}"

    with pages(deployment, buyer) as web:
        first = web.get(checkout)
    assert first.status_code == 200 and f'action="{checkout}/pay"' in first.text and "Continue to payment" in first.text
    assert "payment-element" not in first.text and "js.stripe.com" not in first.text
    assert first.headers["content-security-policy"] == WEB_CSP
    csrf = data_of(first.text, 'name="_csrf" value')

    with pages(deployment, buyer, csrf) as web:
        started = web.post(f"{checkout}/pay", data={"_csrf": csrf})
        assert started.status_code == 303 and started.headers["location"] == checkout  # no test card, no error
        page = web.get(checkout)
        intent_id = client.get(f"/orders/{placed['id']}", headers=bearer(buyer)).json()["payment_intent_id"]
        intent = sdk.v1.payment_intents.retrieve(intent_id)
        assert page.status_code == 200 and 'id="payment-element"' in page.text
        assert data_of(page.text, "data-stripe-key") == KEY
        assert data_of(page.text, "data-client-secret") == intent.client_secret
        assert data_of(page.text, "data-return-url") == f"{deployment}{checkout}"
        assert '<script src="https://js.stripe.com/v3/" defer></script>' in page.text and no_inline_script(page.text)
        assert 'http-equiv="refresh"' not in page.text and "Test card" not in page.text
        assert page.headers["content-security-policy"] == STRIPE_JS_CSP
        assert "x-csp-extension" not in page.headers
        for other in ("/", "/me", f"/e/{show.id}", "/static/web/checkout.js"):
            assert web.get(other).headers["content-security-policy"] == WEB_CSP, other
        assert web.get(f"/api/v1/orders/{placed['id']}").headers["content-security-policy"] == API_CSP

        # The payout: the organizer's account, 2.5 % of 25.00 rounded half up.
        metadata = intent.to_dict()["metadata"]
        assert metadata["payout_destination"] == account and metadata["platform_fee"] == "63"

        # What Stripe.js's confirmPayment does with a card; Stripe then sends the buyer back.
        sdk.v1.payment_intents.update(intent_id, params={"payment_method": "pm_card_visa"})
        sdk.v1.payment_intents.confirm(intent_id)
        back = f"{checkout}?payment_intent={intent_id}&redirect_status=succeeded"
        returned = web.get(back)
        assert returned.status_code == 200 and "payment-element" not in returned.text
        assert "Waiting for the payment" in returned.text or "Your tickets" in returned.text
        paid = page_with(web, back, "Your tickets")
        assert paid.headers["content-security-policy"] == WEB_CSP and "js.stripe.com" not in paid.text

    with pages(deployment, organizer) as web:
        panel = page_with(web, "/organizer", 'class="fee">0.63<')
    text = panel.text
    assert "Get paid" in text and f"<code>{account}</code>" in text and "platform fee of 2.5%" in text
    assert '<td class="revenue">25.00</td><td class="fee">0.63</td><td class="payout">24.37</td>' in text
    assert "Stripe cannot tell its status here." in text  # DevConnect: no onboarding in development
    assert 'id="onboarding"' in text


def test_an_organizer_without_a_payout_account_is_paid_by_the_platform(
    client: httpx.Client, admin_token: str, deployment: str, sdk: stripe.StripeClient
) -> None:
    show = publish_show(client, admin_token, seats=2)
    buyer = register(client)
    placed = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 1}]).json()
    r = httpx.post(f"{deployment}/api/v1/orders/{placed['id']}/payment", headers=bearer(buyer), timeout=30)
    assert r.status_code == 200, r.text
    metadata = sdk.v1.payment_intents.retrieve(r.json()["payment_intent_id"]).to_dict()["metadata"]
    assert metadata["order_id"] == placed["id"] and "payout_destination" not in metadata
    with pages(deployment, buyer) as web:
        page = web.get(f"/checkout/{placed['id']}")
    assert data_of(page.text, "data-client-secret") == r.json()["client_secret"]
    assert page.headers["content-security-policy"] == STRIPE_JS_CSP
    intent_id = r.json()["payment_intent_id"]
    sdk.v1.payment_intents.update(intent_id, params={"payment_method": "pm_card_visa"})
    sdk.v1.payment_intents.confirm(intent_id)
    with pages(deployment, show.organizer) as web:
        panel = page_with(web, "/organizer", "Paid so far, collected by the platform: 25.00 EUR.").text
    assert "No payout account is linked yet" in panel and "<code>acct_" not in panel
    assert 'class="payout"' not in panel  # nothing was routed to the organizer
