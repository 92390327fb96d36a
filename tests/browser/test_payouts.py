"""The payment and payout pages' scripts in a real browser: the organizer's "Set up payouts"
button goes to the onboarding link (development's stand-in for Stripe's), and the production
checkout, where Stripe.js cannot be loaded (no internet here), says payment is unavailable
instead of showing a dead form. Stripe's Payment Element itself is not exercised: it needs
js.stripe.com."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import bearer, order, publish_show, register
from tests.e2e.test_checkout_stripejs import KEY, deployment, sdk  # noqa: F401 - fixtures


def signed_in(browser: Any, base_url: str, token: str) -> Any:
    """A page whose session cookie is set directly (production cookies are Secure; this is HTTP)."""
    context = browser.new_context(base_url=base_url)
    context.add_cookies([{"name": "auth-token", "value": token, "url": base_url}])
    return context.new_page()


def test_the_onboarding_button_goes_to_the_onboarding_link(browser: Any, service: str, client: httpx.Client) -> None:
    organizer = register(client, "organizer")
    page = signed_in(browser, service, organizer)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/organizer")
    button = page.locator("#onboarding")
    assert button.is_visible() and button.inner_text() == "Set up payouts with Stripe"
    with page.expect_navigation(url="**/dev/connect/**"):
        button.click()
    account = client.post("/organizer/stripe/onboarding-link", headers=bearer(organizer)).json()["account"]
    assert f"/dev/connect/{account}/onboarding" in page.url and "return_url=" in page.url
    assert errors == []


def test_without_stripe_js_the_checkout_says_payment_is_unavailable(
    browser: Any,
    deployment: str,  # noqa: F811 - the fixture imported above
    client: httpx.Client,
    admin_token: str,
) -> None:
    show = publish_show(client, admin_token, seats=2)
    buyer = register(client)
    placed = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 1}]).json()
    started = httpx.post(f"{deployment}/api/v1/orders/{placed['id']}/payment", headers=bearer(buyer), timeout=30)
    assert started.status_code == 200, started.text
    page = signed_in(browser, deployment, buyer)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"/checkout/{placed['id']}")
    assert page.locator("#payment-form").get_attribute("data-stripe-key") == KEY
    message = page.locator("#payment-message")
    message.wait_for(state="visible", timeout=30_000)
    assert "Payment is unavailable" in message.inner_text()
    assert page.locator("#payment-submit").is_disabled()
    assert violations == []
