"""Holds lapse at their deadline (delayed message) and inventory comes back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe

from tests.conftest import start_service
from tests.e2e.conftest import bearer, order, publish_show, register, stateless_client
from ticketing import Settings


@pytest.fixture(scope="module")
def short_holds(stack_env: dict[str, str], settings: Settings, service: str) -> Iterator[httpx.Client]:
    """A second deployment on the same stack whose holds last 2 s (payments keep them 2 s more).

    It depends on `service` so that localstripe's webhook is registered (either deployment's
    worker applies it: they share the database and the queues)."""
    env = {**stack_env, "HOLD_SECONDS": "2", "PAYMENT_HOLD_SECONDS": "2", "SWEEP_INTERVAL_SECONDS": "1"}
    with start_service(env, "e2e-short-holds", web_workers=1) as processes, stateless_client(processes.base_url) as c:
        yield c


def test_an_expired_hold_returns_seats_and_quantity(short_holds: httpx.Client, admin_token: str) -> None:
    client = short_holds
    show = publish_show(client, admin_token, ga_quantity=3, seats=2)
    buyer = register(client)
    r = order(
        client,
        buyer,
        [{"offer_id": show.ga_offer, "quantity": 3}, {"offer_id": show.seat_offer, "seat_id": show.seats[0]}],
    )
    assert r.status_code == 201, r.text
    placed = r.json()
    assert order(client, register(client), [{"offer_id": show.ga_offer, "quantity": 1}]).status_code == 409

    deadline = time.monotonic() + 20
    status = placed["status"]
    while status != "expired" and time.monotonic() < deadline:
        time.sleep(0.25)
        status = client.get(f"/orders/{placed['id']}", headers=bearer(buyer)).json()["status"]
    assert status == "expired"

    offers = {o["id"]: o for o in client.get(f"/events/{show.id}/offers").json()["data"]}
    assert offers[show.ga_offer]["available"] == 3
    seat_map = client.get(f"/events/{show.id}/seat-map").json()
    assert all(s["status"] == "available" for sec in seat_map["sections"] for row in sec["rows"] for s in row["seats"])
    again = order(client, register(client), [{"offer_id": show.seat_offer, "seat_id": show.seats[0]}])
    assert again.status_code == 201
    gone = client.post(f"/orders/{placed['id']}/cancel", headers=bearer(buyer))
    assert gone.status_code == 409


def wait_status(client: httpx.Client, token: str, order_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/orders/{order_id}", headers=bearer(token)).json()
        if body["status"] == status:
            return body
        assert time.monotonic() < deadline, f"order stayed {body['status']}, expected {status}"
        time.sleep(0.25)


def test_a_payment_after_expiry_is_refunded_when_the_seat_was_resold(
    short_holds: httpx.Client, admin_token: str, settings: Settings
) -> None:
    client = short_holds
    sdk = stripe.StripeClient(settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base})
    show = publish_show(client, admin_token, seats=2)
    late_buyer = register(client)
    placed = order(client, late_buyer, [{"offer_id": show.seat_offer, "seat_id": show.seats[0]}]).json()
    intent = client.post(f"/orders/{placed['id']}/payment", headers=bearer(late_buyer)).json()["payment_intent_id"]
    wait_status(client, late_buyer, placed["id"], "expired")
    resold = order(client, register(client), [{"offer_id": show.seat_offer, "seat_id": show.seats[0]}])
    assert resold.status_code == 201

    sdk.v1.payment_intents.update(intent, params={"payment_method": "pm_card_visa"})
    sdk.v1.payment_intents.confirm(intent)
    refunded = wait_status(client, late_buyer, placed["id"], "refunded")
    assert refunded["payment_status"] == "refunded" and refunded["tickets"] == []
    assert refunded["amount_refunded"] == refunded["amount_paid"] == "40.00"
    refunds = sdk.v1.refunds.list(params={"payment_intent": intent}).data
    assert [r.amount for r in refunds] == [4000]


def test_a_payment_after_expiry_reclaims_a_seat_that_is_still_free(
    short_holds: httpx.Client, admin_token: str, settings: Settings
) -> None:
    client = short_holds
    sdk = stripe.StripeClient(settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base})
    show = publish_show(client, admin_token, seats=2)
    buyer = register(client)
    placed = order(client, buyer, [{"offer_id": show.seat_offer, "seat_id": show.seats[1]}]).json()
    intent = client.post(f"/orders/{placed['id']}/payment", headers=bearer(buyer)).json()["payment_intent_id"]
    wait_status(client, buyer, placed["id"], "expired")
    sdk.v1.payment_intents.update(intent, params={"payment_method": "pm_card_visa"})
    sdk.v1.payment_intents.confirm(intent)
    paid = wait_status(client, buyer, placed["id"], "paid")
    assert len(paid["tickets"]) == 1 and paid["tickets"][0]["seat_id"] == show.seats[1]
