"""The audit trail over HTTP: an organizer edits and publishes a show, a buyer orders and pays
through localstripe, the organizer refunds a ticket and a scanner checks another in; the order's
and the show's histories list those events oldest first, each with the account that acted."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from tests.e2e.conftest import Show, all_pages, bearer, order, publish_show, register, register_with_email
from tests.e2e.test_payments import pay, start, wait_for
from ticketing import Settings


def me(client: httpx.Client, token: str) -> str:
    account_id: str = client.get("/auth/me", headers=bearer(token)).json()["id"]
    return account_id


def trail(client: httpx.Client, path: str, token: str) -> list[dict[str, Any]]:
    return all_pages(client, path, bearer(token))


def actors(entries: list[dict[str, Any]], kind: str) -> list[str | None]:
    return [e["actor_id"] for e in entries if e["type"] == kind]


@pytest.fixture(scope="module")
def sale(client: httpx.Client, admin_token: str, settings: Settings) -> dict[str, Any]:
    """The story, over HTTP; the ids of everyone in it."""
    show: Show = publish_show(client, admin_token, ga_quantity=10, seats=4)
    organizer = show.organizer
    h = bearer(organizer)
    assert client.patch(f"/events/{show.id}", headers=h, json={"description": "Doors at 7"}).status_code == 200
    blocked = client.post(f"/events/{show.id}/seats/block", headers=h, json={"seat_ids": [show.seats[0]]})
    assert blocked.status_code == 200, blocked.text
    scanner, scanner_email = register_with_email(client)
    granted = client.post(f"/events/{show.id}/scanners", headers=h, json={"email": scanner_email})
    assert granted.status_code == 201, granted.text

    buyer = register(client)
    placed = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 2}])
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    sdk = stripe.StripeClient(settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base})
    pay(sdk, start(client, buyer, order_id)["payment_intent_id"])
    paid = wait_for(
        lambda: (o := client.get(f"/orders/{order_id}", headers=bearer(buyer)).json())["status"] == "paid" and o
    )
    refunded, kept = (t["id"] for t in paid["tickets"])
    r = client.post(f"/orders/{order_id}/refund", headers=h, json={"ticket_ids": [refunded], "reason": "double booked"})
    assert r.status_code == 200, r.text
    qr = client.get(f"/tickets/{kept}", headers=bearer(buyer)).json()["qr_data"]
    checked = client.post(f"/events/{show.id}/check-ins", headers=bearer(scanner), json={"qr_data": qr})
    assert checked.status_code == 200, checked.text
    return {
        "show": show,
        "order": order_id,
        "tokens": {"organizer": organizer, "buyer": buyer, "scanner": scanner, "admin": admin_token},
        "ids": {"organizer": me(client, organizer), "buyer": me(client, buyer), "scanner": me(client, scanner)},
    }


def test_the_orders_trail_names_who_placed_paid_refunded_and_checked_in(client: httpx.Client, sale: Any) -> None:
    ids = sale["ids"]
    entries = trail(client, f"/orders/{sale['order']}/history", sale["tokens"]["buyer"])
    kinds = [e["type"] for e in entries]
    assert kinds[0] == "Order.Placed"
    for kind in ("Order.PaymentStarted", "Order.Paid", "Order.Refunded", "Order.TicketCheckedIn"):
        assert kind in kinds, kinds
    assert kinds.index("Order.Paid") < kinds.index("Order.Refunded") < kinds.index("Order.TicketCheckedIn")
    assert actors(entries, "Order.Placed") == [ids["buyer"]]  # placement: the buyer, by definition
    assert actors(entries, "Order.PaymentStarted") == [ids["buyer"]]
    assert actors(entries, "Order.Paid") == [None]  # Stripe's webhook, applied by a worker: the system
    assert actors(entries, "Order.Refunded") == [ids["organizer"]]
    assert actors(entries, "Order.TicketCheckedIn") == [ids["scanner"]]
    # Oldest first, by the store's position and by time.
    assert [e["position"] for e in entries] == sorted(e["position"] for e in entries)
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    assert [e["version"] for e in entries] == list(range(1, len(entries) + 1))
    placed = entries[0]["data"]
    assert placed["buyer_id"] == ids["buyer"] and placed["items"][0]["quantity"] == 2
    assert "actor_id" not in placed and "originator_id" not in placed
    refund = next(e for e in entries if e["type"] == "Order.Refunded")["data"]
    assert refund["reason"] == "double booked"
    # An admin reads the same trail.
    assert trail(client, f"/orders/{sale['order']}/history", sale["tokens"]["admin"]) == entries


def test_the_shows_trail_names_the_organizer_for_edits_and_blocks(client: httpx.Client, sale: Any) -> None:
    ids, show = sale["ids"], sale["show"]
    entries = trail(client, f"/events/{show.id}/history", sale["tokens"]["organizer"])
    kinds = [e["type"] for e in entries]
    assert kinds[0] == "Event.Created"
    organizer = ids["organizer"]
    for kind in ("Event.Created", "Event.TierAdded", "Offer.Created", "Event.Published", "Event.Described",
                 "Seat.Blocked", "Event.ScannerGranted"):  # fmt: skip
        assert kind in kinds and set(actors(entries, kind)) == {organizer}, (kind, kinds)
    assert kinds.index("Event.Published") < kinds.index("Event.Described") < kinds.index("Seat.Blocked")
    # The offer's stock: taken by the order (the claim writer: the system), given back by the refund.
    assert actors(entries, "Offer.Claimed") == [None]
    assert actors(entries, "Offer.Returned") == [organizer]
    # Seats: only who blocked or unblocked them (their sales are in the orders' trails).
    assert {e["type"] for e in entries if e["type"].startswith("Seat.")} == {"Seat.Blocked"}
    assert not any(k.startswith("Order.") for k in kinds)
    assert [e["position"] for e in entries] == sorted(e["position"] for e in entries)
    described = next(e for e in entries if e["type"] == "Event.Described")
    assert described["data"] == {"description": "Doors at 7"}

    # Pages: the same entries, a few at a time.
    first = client.get(f"/events/{show.id}/history?page=1&page_size=3", headers=bearer(sale["tokens"]["admin"]))
    assert first.status_code == 200
    body = first.json()
    assert body["data"] == entries[:3] and body["pagination"]["total_items"] == len(entries)


def test_only_the_buyer_the_owner_and_admins_read_the_trails(client: httpx.Client, sale: Any) -> None:
    show, tokens = sale["show"], sale["tokens"]
    stranger, other_organizer = register(client), register(client, "organizer")
    order_trail, show_trail = f"/orders/{sale['order']}/history", f"/events/{show.id}/history"
    assert client.get(order_trail).status_code == 401
    assert client.get(show_trail).status_code == 401
    # An order is its buyer's: everyone else is told it does not exist (the show's organizer too).
    for token in (stranger, other_organizer, tokens["organizer"], tokens["scanner"]):
        r = client.get(order_trail, headers=bearer(token))
        assert r.status_code == 404 and r.json()["code"] == "order_not_found"
    # A published show is public: strangers are refused.
    for token in (stranger, other_organizer, tokens["scanner"], tokens["buyer"]):
        assert client.get(show_trail, headers=bearer(token)).status_code == 403
    unknown = "00000000-0000-4000-8000-000000000000"
    assert client.get(f"/orders/{unknown}/history", headers=bearer(tokens["admin"])).status_code == 404
    assert client.get(f"/events/{unknown}/history", headers=bearer(tokens["admin"])).status_code == 404
    assert client.get(f"{show_trail}?page_size=1000", headers=bearer(tokens["admin"])).status_code in (400, 422)
