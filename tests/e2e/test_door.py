"""Check-in with scanners, ticket transfer, and the organizer's reports, over HTTP."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import stripe
from pypdf import PdfReader

from tests.e2e.conftest import bearer, order, publish_show, register_with_email
from tests.e2e.door_helpers import day_pass_show, free_tickets
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
    assert [s["account_id"] for s in listed["data"]] == [granted.json()["account_id"]]
    assert listed["pagination"] == {"total_items": 1, "total_pages": 1, "current_page": 1, "page_size": 20}

    first = client.post(url, headers=bearer(scanner), json={"qr_data": tickets[0]["qr_data"]})
    assert first.status_code == 200 and first.json()["status"] == "checked_in"
    again = client.post(url, headers=bearer(show.organizer), json={"qr_data": tickets[0]["qr_data"]})
    assert again.status_code == 409 and again.json()["code"] == "already_checked_in"
    assert first.json()["checked_in_at"][:19] in again.json()["error"]
    # The first scan's time and scanner as fields, beside the contract's error and code.
    assert again.json()["first_checked_in_at"] == first.json()["checked_in_at"]
    assert again.json()["checked_in_by"] == granted.json()["account_id"] == first.json()["checked_in_by"]
    assert again.json()["ticket_id"] == tickets[0]["ticket_id"]

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


def test_attendee_names_set_on_the_order_and_by_the_holder_appear_everywhere(
    client: httpx.Client, admin_token: str, settings: Settings
) -> None:
    show = publish_show(client, admin_token, ga_quantity=10, seats=2)
    buyer, _ = buyer_with_email(client)
    friend, friend_email = buyer_with_email(client)
    stranger, _ = buyer_with_email(client)
    items: list[dict[str, Any]] = [
        {"offer_id": show.ga_offer, "quantity": 2},
        {"offer_id": show.seat_offer, "seat_id": show.seats[0]},
    ]
    placed = order(client, buyer, items).json()
    url = f"/orders/{placed['id']}/attendees"
    # Right after the order (before payment): one name per ticket, in item order.
    assert client.put(url, headers=bearer(buyer), json={"attendee_names": ["A", "B"]}).status_code == 422
    assert client.put(url, headers=bearer(buyer), json={"attendee_names": ["x" * 101, None, None]}).status_code == 422
    assert client.put(url, headers=bearer(stranger), json={"attendee_names": [None, None, None]}).status_code == 404
    named = client.put(url, headers=bearer(buyer), json={"attendee_names": ["  Βασίλης   Παπαδόπουλος ", None, "Zoë"]})
    assert named.status_code == 200, named.text
    assert [a["attendee_name"] for a in named.json()["attendees"]] == ["Βασίλης Παπαδόπουλος", None, "Zoë"]

    paid_tickets_of(client, settings, buyer, placed["id"])
    mine = client.get("/me/tickets", headers=bearer(buyer)).json()["data"]
    by_id = {t["ticket_id"]: t for t in mine}
    ids = [a["ticket_id"] for a in named.json()["attendees"]]
    assert [by_id[t]["attendee_name"] for t in ids] == ["Βασίλης Παπαδόπουλος", None, "Zoë"]

    # Later, per ticket, by its holder.
    patched = client.patch(f"/tickets/{ids[1]}", headers=bearer(buyer), json={"attendee_name": "Ирина Шевченко"})
    assert patched.status_code == 200 and patched.json()["attendee_name"] == "Ирина Шевченко"
    assert client.patch(f"/tickets/{ids[1]}", headers=bearer(stranger), json={"attendee_name": "X"}).status_code == 404
    assert client.patch(f"/tickets/{ids[1]}", headers=bearer(buyer), json={}).status_code == 422

    for ticket_id, name in ((ids[0], "Βασίλης Παπαδόπουλος"), (ids[1], "Ирина Шевченко")):
        pdf = client.get(f"/tickets/{ticket_id}/pdf", headers=bearer(buyer))
        assert pdf.status_code == 200
        assert name in PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()

    scanned = client.post(f"/events/{show.id}/check-ins", headers=bearer(show.organizer),
                          json={"qr_data": by_id[ids[0]]["qr_data"]})  # fmt: skip
    assert scanned.status_code == 200 and scanned.json()["attendee_name"] == "Βασίλης Παπαδόπουλος"
    used = client.patch(f"/tickets/{ids[0]}", headers=bearer(buyer), json={"attendee_name": "Someone else"})
    assert used.status_code == 409 and used.json()["code"] == "ticket_not_valid"

    attendees = client.get(f"/events/{show.id}/attendees", headers=bearer(show.organizer)).json()
    assert attendees["pagination"]["total_items"] == 3
    listed = {a["ticket_id"]: a for a in attendees["data"]}
    assert listed[ids[0]]["attendee_name"] == "Βασίλης Παπαδόπουλος" and listed[ids[0]]["status"] == "checked_in"
    assert listed[ids[1]]["attendee_name"] == "Ирина Шевченко"
    assert listed[ids[2]]["seat"] == "1"
    checked = client.get(
        f"/events/{show.id}/attendees", headers=bearer(show.organizer), params={"status": "checked_in"}
    )
    assert [a["ticket_id"] for a in checked.json()["data"]] == [ids[0]]
    assert client.get(f"/events/{show.id}/attendees", headers=bearer(buyer)).status_code == 403

    # A ticket given away is reissued without the old name; the new holder names it.
    moved = client.post(f"/tickets/{ids[2]}/transfer", headers=bearer(buyer), json={"email": friend_email})
    assert moved.status_code == 200 and moved.json()["attendee_name"] is None
    renamed = client.patch(f"/tickets/{ids[2]}", headers=bearer(friend), json={"attendee_name": "Đorđe"})
    assert renamed.status_code == 200 and renamed.json()["attendee_name"] == "Đorđe"
    # The buyer's full list still works: entries for tickets no longer theirs are only taken as they stand.
    again = client.put(url, headers=bearer(buyer), json={"attendee_names": ["Βασίλης Παπαδόπουλος", "Ира", "Đorđe"]})
    assert again.status_code == 200 and [a["attendee_name"] for a in again.json()["attendees"]][1] == "Ира"
    taken = client.put(url, headers=bearer(buyer), json={"attendee_names": ["Βασίλης Παπαδόπουλος", "Ира", "Mine"]})
    assert taken.status_code == 404


def paid_tickets_of(client: httpx.Client, settings: Settings, token: str, order_id: str) -> None:
    sdk = stripe.StripeClient(settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base})
    intent = client.post(f"/orders/{order_id}/payment", headers=bearer(token)).json()["payment_intent_id"]
    sdk.v1.payment_intents.update(intent, params={"payment_method": "pm_card_visa"})
    sdk.v1.payment_intents.confirm(intent)
    deadline = time.monotonic() + 20
    while client.get(f"/orders/{order_id}", headers=bearer(token)).json()["status"] != "paid":
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_day_passes_are_valid_at_the_door_only_on_their_day(client: httpx.Client, admin_token: str) -> None:
    show = day_pass_show(client, admin_token, days=2)
    today, tomorrow = show.days
    buyer, _ = buyer_with_email(client)
    [today_pass] = free_tickets(client, buyer, [{"offer_id": show.offers[today], "quantity": 1}])
    [tomorrow_pass] = free_tickets(client, buyer, [{"offer_id": show.offers[tomorrow], "quantity": 1}])
    assert today_pass["day"] == today and tomorrow_pass["day"] == tomorrow
    url = f"/events/{show.id}/check-ins"

    early = client.post(url, headers=bearer(show.organizer), json={"qr_data": tomorrow_pass["qr_data"]})
    assert early.status_code == 409, early.text
    assert early.json()["code"] == "wrong_day" and early.json()["valid_day"] == tomorrow
    assert set(early.json()) >= {"error", "code", "valid_day"}
    ok = client.post(url, headers=bearer(show.organizer), json={"qr_data": today_pass["qr_data"]})
    assert ok.status_code == 200 and ok.json()["day"] == today

    # Synced from an offline scanner: judged by the day of the scan, not of the sync.
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    synced = client.post(f"{url}/batch", headers=bearer(show.organizer),
                         json={"scans": [{"qr_data": tomorrow_pass["qr_data"], "scanned_at": now}]})  # fmt: skip
    assert synced.status_code == 200
    [result] = synced.json()["results"]
    assert result["result"] == "wrong_day" and result["valid_day"] == tomorrow
    mine = {t["ticket_id"]: t["status"] for t in client.get("/me/tickets", headers=bearer(buyer)).json()["data"]}
    assert mine[tomorrow_pass["ticket_id"]] == "valid" and mine[today_pass["ticket_id"]] == "checked_in"
