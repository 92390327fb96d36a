"""Outside development without STRIPE_PUBLISHABLE_KEY (a deployment against a Stripe stand-in,
which start-up lets through; against Stripe itself start-up refuses: tests/unit/test_payouts.py)
the checkout says that payment is unavailable instead of offering a button that cannot work.
And the development deployment's organizer page: the "Get paid" panel before and after linking."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from api.security import WEB_CSP
from tests.conftest import start_service
from tests.e2e.conftest import bearer, order, publish_show, register
from tests.e2e.test_checkout_stripejs import pages
from ticketing import Settings


@pytest.fixture(scope="module")
def keyless(stack_env: dict[str, str], settings: Settings, service: str) -> Iterator[str]:
    env = {**stack_env, "ENVIRONMENT": "production", "STRIPE_PUBLISHABLE_KEY": ""}
    with start_service(env, "e2e-keyless", web_workers=1) as processes:
        yield processes.base_url


def test_without_a_publishable_key_payment_is_unavailable(client: httpx.Client, admin_token: str, keyless: str) -> None:
    show = publish_show(client, admin_token, seats=2)
    buyer = register(client)
    placed = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 1}]).json()
    checkout = f"/checkout/{placed['id']}"
    with pages(keyless, buyer) as web:
        page = web.get(checkout)
    assert page.status_code == 200 and 'id="payment-unavailable"' in page.text
    assert "Payment is unavailable" in page.text
    assert f'action="{checkout}/pay"' not in page.text and "payment-element" not in page.text
    assert "Test card" not in page.text and "js.stripe.com" not in page.text
    assert page.headers["content-security-policy"] == WEB_CSP

    match = re.search(r'name="_csrf" value="([0-9a-f]+)"', page.text)
    assert match is not None
    with pages(keyless, buyer, match.group(1)) as web:  # a form posted anyway starts no payment
        refused = web.post(f"{checkout}/pay", data={"_csrf": match.group(1)})
    assert refused.status_code == 303 and "error=payment%20is%20unavailable" in refused.headers["location"]
    assert client.get(f"/orders/{placed['id']}", headers=bearer(buyer)).json()["payment_intent_id"] is None


def test_the_organizer_page_shows_the_payouts_panel(client: httpx.Client, service: str) -> None:
    organizer = register(client, "organizer")
    with pages(service, organizer) as web:
        before = web.get("/organizer")
        assert before.status_code == 200 and "Get paid" in before.text
        assert "No payout account is linked yet" in before.text and "Set up payouts with Stripe" in before.text
        assert "No paid orders yet." in before.text
        linked = client.post("/organizer/stripe/onboarding-link", headers=bearer(organizer)).json()["account"]
        after = web.get("/organizer").text
    assert f"<code>{linked}</code> is linked" in after and "platform fee of 0%" in after
    assert "Update payout details with Stripe" in after and "Stripe cannot tell its status here." in after
    assert "No paid orders yet." in after
    with pages(service, register(client)) as web:  # not an organizer
        assert web.get("/organizer").status_code == 403
