"""Check-in with scanners, ticket transfer, and the organizer's reports, over HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import stripe

from tests.e2e.conftest import bearer, order, publish_show, register_with_email
from ticketing import Settings


def buyer_with_email(client: httpx.Client) -> tuple[str, str]:
    return register_with_email(client)


def paid_tickets(client: httpx.Client, settings: Settings, token: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    sdk = stripe.StripeClient(settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base})
    placed = order(client, token, items).json()
    intent = client.post(f"/orders/{placed['id']}/payment", headers=bearer(token)).json()["payment_intent_id"]
    sdk.v1.payment_intents.update(intent, params={"payment_method": "pm_card_visa"})
    sdk.v1.payment_intents.confirm(intent)
    deadline = time.monotonic() + 20
    while True:
        body: dict[str, Any] = client.get(f"/orders/{placed['id']}", headers=bearer(token)).json()
        if body["status"] == "paid":
            return body
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_scanners_check_tickets_in_once_and_forged_codes_are_refused(
    client: httpx.Client, admin_token: str, settings: Settings
) -> None:
    show = publish_show(client, admin_token, ga_quantity=10, seats=3)
    buyer, _ = buyer_with_email(client)
    paid_tickets(client, settings, buyer, [{"offer_id": show.ga_offer, "quantity": 2}])
    tickets = client.get("/me/tickets", headers=bearer(buyer)).json()["data"]
    scanner, scanner_email = buyer_with_email(client)

    url = f"/events/{show.id}/check-ins"
    assert client.post(url, headers=bearer(scanner), json={"qr_data": tickets[0]["qr_data"]}).status_code == 403
    granted = client.post(f"/events/{show.id}/scanners", headers=bearer(show.organizer), json={"email": scanner_email})
    assert granted.status_code == 201
    listed = client.get(f"/events/{show.id}/scanners", headers=bearer(show.organizer)).json()
    assert [s["account_id"] for s in listed] == [granted.json()["account_id"]]

    first = client.post(url, headers=bearer(scanner), json={"qr_data": tickets[0]["qr_data"]})
    assert first.status_code == 200 and first.json()["status"] == "checked_in"
    again = client.post(url, headers=bearer(show.organizer), json={"qr_data": tickets[0]["qr_data"]})
    assert again.status_code == 409 and again.json()["code"] == "already_checked_in"
    assert first.json()["checked_in_at"][:19] in again.json()["error"]

    forged = tickets[1]["qr_data"][:-3] + ("AAA" if not tickets[1]["qr_data"].endswith("AAA") else "BBB")
    r = client.post(url, headers=bearer(scanner), json={"qr_data": forged})
    assert r.status_code == 422 and r.json()["code"] == "invalid_ticket_code"
    assert client.post(url, headers=bearer(scanner), json={"qr_data": "hello"}).status_code == 422
    other = publish_show(client, admin_token)
    wrong_event = client.post(f"/events/{other.id}/check-ins", headers=bearer(other.organizer),
                              json={"qr_data": tickets[1]["qr_data"]})  # fmt: skip
    assert wrong_event.status_code == 404

    mine = {t["ticket_id"]: t["status"] for t in client.get("/me/tickets", headers=bearer(buyer)).json()["data"]}
    assert mine[tickets[0]["ticket_id"]] == "checked_in" and mine[tickets[1]["ticket_id"]] == "valid"

    revoked = client.delete(
        f"/events/{show.id}/scanners/{granted.json()['account_id']}", headers=bearer(show.organizer)
    )
    assert revoked.status_code == 204
    assert client.post(url, headers=bearer(scanner), json={"qr_data": tickets[1]["qr_data"]}).status_code == 403

    sales = client.get(f"/events/{show.id}/sales", headers=bearer(show.organizer)).json()
    assert sales["tickets_sold"] == 2 and sales["tickets_checked_in"] == 1 and sales["revenue"] == "50.00"
    ga_line = next(line for line in sales["lines"] if line["offer_id"] == show.ga_offer)
    assert ga_line["sold"] == 2 and ga_line["checked_in"] == 1
    bookings = client.get(f"/events/{show.id}/orders", headers=bearer(show.organizer)).json()
    assert bookings["pagination"]["total_items"] == 1
    assert client.get(f"/events/{show.id}/sales", headers=bearer(buyer)).status_code == 403


def test_a_transferred_ticket_moves_to_the_new_owner_and_the_old_code_stops_working(
    client: httpx.Client, admin_token: str, settings: Settings
) -> None:
    show = publish_show(client, admin_token, ga_quantity=5, seats=2)
    giver, _ = buyer_with_email(client)
    friend, friend_email = buyer_with_email(client)
    paid_tickets(client, settings, giver, [{"offer_id": show.seat_offer, "seat_id": show.seats[0]}])
    ticket = client.get("/me/tickets", headers=bearer(giver)).json()["data"][0]

    moved = client.post(f"/tickets/{ticket['ticket_id']}/transfer", headers=bearer(giver), json={"email": friend_email})
    assert moved.status_code == 200 and moved.json()["qr_data"] != ticket["qr_data"]
    assert client.get("/me/tickets", headers=bearer(giver)).json()["data"] == []
    theirs = client.get("/me/tickets", headers=bearer(friend)).json()["data"]
    assert [t["ticket_id"] for t in theirs] == [ticket["ticket_id"]] and theirs[0]["seat"] == "1"
    assert client.get(f"/tickets/{ticket['ticket_id']}", headers=bearer(giver)).status_code == 404

    url = f"/events/{show.id}/check-ins"
    old = client.post(url, headers=bearer(show.organizer), json={"qr_data": ticket["qr_data"]})
    assert old.status_code == 409 and old.json()["code"] == "ticket_not_valid"
    new = client.post(url, headers=bearer(show.organizer), json={"qr_data": theirs[0]["qr_data"]})
    assert new.status_code == 200
    back = client.post(f"/tickets/{ticket['ticket_id']}/transfer", headers=bearer(friend), json={"email": "x@y.zz"})
    assert back.status_code in (409, 422)
