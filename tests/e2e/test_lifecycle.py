"""A show's lifecycle over HTTP: never scheduled into the past, completed after its end (and no
longer sold), withdrawn by DELETE; offers with what they sold; seats blocked and unblocked;
human order numbers; refunds by amount; paginated category and offer lists."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
import stripe
from pypdf import PdfReader

from domain.order_number import ALPHABET
from tests.e2e.conftest import bearer, order, publish_show, register
from tests.e2e.test_payments import get_order, is_status, pay, start, wait_for
from ticketing import Settings


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def venue(client: httpx.Client, admin: str) -> str:
    body = {"name": f"Hall {uuid4().hex[:6]}", "city": "Porto", "country": "PT"}
    return str(client.post("/venues", headers=bearer(admin), json=body).json()["id"])


@dataclass
class FreeShow:
    event_id: str
    tier_id: str
    offer_id: str
    organizer: str


def free_show(
    client: httpx.Client,
    admin: str,
    quantity: int,
    starts_in: timedelta = timedelta(days=7),
    lasts: timedelta = timedelta(hours=2),
    title: str = "Open day",
) -> FreeShow:
    """A published show with one free general-admission offer (a week ahead unless told)."""
    organizer = register(client, "organizer")
    h = bearer(organizer)
    place = venue(client, admin)
    start_at = datetime.now(UTC) + starts_in
    body = {"title": title, "venue_id": place, "start_time": iso(start_at), "end_time": iso(start_at + lasts)}
    event = client.post("/events", headers=h, json=body)
    assert event.status_code == 201, event.text
    tier = client.post(f"/events/{event.json()['id']}/tiers", headers=h, json={"name": "Floor", "kind": "general"})
    offer = {"name": "Free", "price": "0.00", "currency": "EUR", "quantity_for_sale": quantity}
    made = client.post(f"/tiers/{tier.json()['id']}/offers", headers=h, json=offer)
    assert made.status_code == 201, made.text
    assert client.post(f"/events/{event.json()['id']}/publish", headers=h).status_code == 200
    return FreeShow(event.json()["id"], tier.json()["id"], made.json()["id"], organizer)


@pytest.fixture(scope="module")
def stripe_client(settings: Settings) -> stripe.StripeClient:
    return stripe.StripeClient(settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base})


def test_a_show_cannot_be_created_or_rescheduled_into_the_past(client: httpx.Client, admin_token: str) -> None:
    organizer = register(client, "organizer")
    h = bearer(organizer)
    now = datetime.now(UTC)
    body = {"title": "Yesterday", "venue_id": venue(client, admin_token), "start_time": iso(now - timedelta(days=1)),
            "end_time": iso(now - timedelta(days=1) + timedelta(hours=2))}  # fmt: skip
    past = client.post("/events", headers=h, json=body)
    assert past.status_code == 422 and "start_time" in past.json()["field_errors"], past.text
    mine = client.get("/organizer/events", headers=h).json()
    assert mine["pagination"]["total_items"] == 0  # nothing was written

    body.update(
        title="Next month", start_time=iso(now + timedelta(days=30)), end_time=iso(now + timedelta(days=30, hours=2))
    )
    show = client.post("/events", headers=h, json=body)
    assert show.status_code == 201, show.text
    past_times = {"start_time": iso(now - timedelta(hours=5)), "end_time": iso(now - timedelta(hours=3))}
    moved = client.patch(f"/events/{show.json()['id']}", headers=h, json=past_times)
    assert moved.status_code == 422 and moved.json()["code"] == "invalid", moved.text
    again = client.get(f"/events/{show.json()['id']}", headers=h).json()
    assert again["start_time"] == show.json()["start_time"]
    new_times = {"start_time": iso(now + timedelta(days=31)), "end_time": iso(now + timedelta(days=31, hours=1))}
    later = client.patch(f"/events/{show.json()['id']}", headers=h, json=new_times)
    assert later.status_code == 200, later.text


def test_a_show_is_completed_after_its_end_and_no_longer_sold(client: httpx.Client, admin_token: str) -> None:
    buyer = register(client)
    free = free_show(client, admin_token, 10, timedelta(seconds=1), timedelta(seconds=3), title="A short set")
    event_id, h = free.event_id, bearer(free.organizer)
    end_at = datetime.fromisoformat(client.get(f"/events/{event_id}").json()["end_time"])
    tier, offer = {"id": free.tier_id}, {"id": free.offer_id}
    time.sleep(max((end_at - datetime.now(UTC)).total_seconds(), 0) + 0.5)

    assert client.get(f"/events/{event_id}").json()["status"] == "completed"
    offers = client.get(f"/events/{event_id}/offers").json()["data"]
    assert [o["status"] for o in offers] == ["ended"]
    late = order(client, buyer, [{"offer_id": offer["id"], "quantity": 1}])
    assert late.status_code == 409 and late.json()["code"] == "event_ended", late.text
    for method, path, payload in (
        ("PATCH", f"/events/{event_id}", {"title": "Encore"}),
        ("POST", f"/events/{event_id}/cancel", None),
        ("DELETE", f"/events/{event_id}", None),
        ("POST", f"/tiers/{tier['id']}/offers", {"name": "More", "price": "1.00", "currency": "EUR"}),
    ):
        r = client.request(method, path, headers=h, json=payload)
        assert r.status_code == 409 and r.json()["code"] == "wrong_event_state", (method, path, r.text)
    assert client.get(f"/events/{event_id}").json()["title"] == "A short set"


def test_deleting_a_published_show_cancels_it_and_releases_its_orders(client: httpx.Client, admin_token: str) -> None:
    show = publish_show(client, admin_token, ga_quantity=5)
    buyer = register(client)
    held = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 2}])
    assert held.status_code == 201, held.text
    gone = client.delete(f"/events/{show.id}", headers=bearer(show.organizer))
    assert gone.status_code == 204, gone.text
    assert client.get(f"/events/{show.id}").json()["status"] == "cancelled"
    wait_for(lambda: is_status(client, buyer, held.json()["id"], "cancelled"))
    assert client.delete(f"/events/{show.id}", headers=bearer(show.organizer)).status_code == 409


def test_offers_show_what_they_sold_and_when_they_are_sold_out(client: httpx.Client, admin_token: str) -> None:
    show = publish_show(client, admin_token, ga_quantity=3, seats=2)
    buyer = register(client)
    placed = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 3}])
    assert placed.status_code == 201, placed.text
    # Read as the buyer: their next request sees their order; anyone else's may lag behind it a
    # moment (the order is answered once stored, before the read models have it).
    h = bearer(buyer)
    page = client.get(f"/events/{show.id}/offers?page=1&page_size=1", headers=h).json()
    assert page["pagination"] == {"total_items": 2, "total_pages": 2, "current_page": 1, "page_size": 1}
    offers = {o["id"]: o for o in client.get(f"/events/{show.id}/offers", headers=h).json()["data"]}
    ga = offers[show.ga_offer]
    assert (ga["status"], ga["available"], ga["sold"]) == ("sold_out", 0, 0)  # held, not sold yet
    assert (offers[show.seat_offer]["status"], offers[show.seat_offer]["sold"]) == ("on_sale", 0)
    cancelled = client.post(f"/orders/{placed.json()['id']}/cancel", headers=bearer(buyer))
    assert cancelled.status_code == 200
    assert client.get(f"/offers/{show.ga_offer}").json()["status"] == "on_sale"


def test_sold_counts_paid_tickets(client: httpx.Client, admin_token: str) -> None:
    buyer = register(client)
    free = free_show(client, admin_token, 2)
    placed = order(client, buyer, [{"offer_id": free.offer_id, "quantity": 2}]).json()
    assert start(client, buyer, placed["id"])["status"] == "paid"
    sold = client.get(f"/offers/{free.offer_id}").json()
    assert (sold["status"], sold["sold"], sold["available"]) == ("sold_out", 2, 0)


def test_an_organizer_blocks_and_unblocks_seats(client: httpx.Client, admin_token: str) -> None:
    show = publish_show(client, admin_token, seats=4)
    h = bearer(show.organizer)
    buyer = register(client)
    first, second, third, fourth = show.seats

    def statuses() -> dict[str, str]:
        seat_map = client.get(f"/events/{show.id}/seat-map").json()
        return {s["id"]: s["status"] for sec in seat_map["sections"] for r in sec["rows"] for s in r["seats"]}

    blocked = client.post(f"/events/{show.id}/seats/block", headers=h, json={"seat_ids": [first, second]})
    assert blocked.status_code == 200, blocked.text
    assert {s["id"]: s["status"] for s in blocked.json()["seats"]} == {first: "blocked", second: "blocked"}
    assert statuses()[first] == statuses()[second] == "blocked"
    taken = order(client, buyer, [{"offer_id": show.seat_offer, "seat_id": first}])
    assert taken.status_code == 409 and taken.json()["code"] == "seat_taken"
    # Again: no change, no error.
    assert client.post(f"/events/{show.id}/seats/block", headers=h, json={"seat_ids": [first]}).status_code == 200

    # All or none: a held seat in the list refuses the whole request.
    held = order(client, buyer, [{"offer_id": show.seat_offer, "seat_id": third}])
    assert held.status_code == 201
    refused = client.post(f"/events/{show.id}/seats/block", headers=h, json={"seat_ids": [fourth, third]})
    assert refused.status_code == 409 and refused.json()["code"] == "seat_taken"
    assert statuses()[fourth] == "available"
    not_blocked = client.post(f"/events/{show.id}/seats/unblock", headers=h, json={"seat_ids": [third]})
    assert not_blocked.status_code == 409 and not_blocked.json()["code"] == "seat_not_blocked"

    other = publish_show(client, admin_token, seats=1)
    foreign = client.post(f"/events/{show.id}/seats/block", headers=h, json={"seat_ids": [other.seats[0]]})
    assert foreign.status_code == 422 and "seat_ids" in foreign.json()["field_errors"]
    bad: dict[str, Any]
    for bad in ({"seat_ids": []}, {"seat_ids": ["nope"]}, {}, {"seat_ids": [first], "extra": 1}):
        r = client.post(f"/events/{show.id}/seats/block", headers=h, json=bad)
        assert r.status_code in (400, 422), (bad, r.text)
    stranger = client.post(f"/events/{show.id}/seats/block", headers=bearer(register(client, "organizer")),
                           json={"seat_ids": [fourth]})  # fmt: skip
    assert stranger.status_code == 403

    unblocked = client.post(f"/events/{show.id}/seats/unblock", headers=h, json={"seat_ids": [first, second]})
    assert unblocked.status_code == 200 and {s["status"] for s in unblocked.json()["seats"]} == {"available"}
    assert order(client, buyer, [{"offer_id": show.seat_offer, "seat_id": first}]).status_code == 201


def test_orders_carry_a_short_unique_number_everywhere(client: httpx.Client, admin_token: str) -> None:
    show = publish_show(client, admin_token, ga_quantity=20)
    buyer, other = register(client), register(client)
    placed = [order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 1}]).json() for _ in range(3)]
    placed.append(order(client, other, [{"offer_id": show.ga_offer, "quantity": 1}]).json())
    numbers = [o["number"] for o in placed]
    assert len(set(numbers)) == 4 and all(len(n) == 8 and set(n) <= set(ALPHABET) for n in numbers)
    assert get_order(client, buyer, placed[0]["id"])["number"] == numbers[0]

    mine = client.get("/orders", headers=bearer(buyer)).json()
    assert {o["number"] for o in mine["data"]} == set(numbers[:3])  # a buyer sees only their own
    typed = f"{numbers[1][:4].lower()}-{numbers[1][4:]}"
    found = client.get(f"/orders?number={typed}", headers=bearer(buyer)).json()["data"]
    assert [o["id"] for o in found] == [placed[1]["id"]]
    assert client.get(f"/orders?number={numbers[3]}", headers=bearer(buyer)).json()["data"] == []
    assert client.get("/orders?number=0O1I", headers=bearer(buyer)).status_code == 422
    assert client.get(f"/orders?buyer_id={uuid4()}", headers=bearer(buyer)).status_code == 403

    # Admins see every order, with filters.
    admin = bearer(admin_token)
    by_show = client.get(f"/orders?event_id={show.id}&page_size=100", headers=admin).json()
    assert {o["number"] for o in by_show["data"]} == set(numbers) and by_show["pagination"]["total_items"] == 4
    theirs = client.get(f"/orders?event_id={show.id}&buyer_id={placed[3]['buyer_id']}", headers=admin).json()
    assert [o["number"] for o in theirs["data"]] == [numbers[3]]
    assert client.get(f"/orders?number={numbers[3]}", headers=admin).json()["data"][0]["id"] == placed[3]["id"]

    # On the tickets and their PDF.
    free = free_show(client, admin_token, 50)
    paid = order(client, buyer, [{"offer_id": free.offer_id, "quantity": 1}]).json()
    assert start(client, buyer, paid["id"])["status"] == "paid"
    tickets = client.get(f"/me/tickets?event_id={free.event_id}", headers=bearer(buyer)).json()["data"]
    assert [t["order_number"] for t in tickets] == [paid["number"]]
    pdf = client.get(f"/tickets/{tickets[0]['ticket_id']}/pdf", headers=bearer(buyer))
    assert pdf.status_code == 200 and paid["number"] in PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()


def test_a_partial_refund_by_amount_keeps_the_tickets_and_is_made_once(
    client: httpx.Client, admin_token: str, stripe_client: stripe.StripeClient
) -> None:
    show = publish_show(client, admin_token)  # standing 25.00 each, starts in 2031
    buyer = register(client)
    placed = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 3}]).json()
    intent = start(client, buyer, placed["id"])["payment_intent_id"]
    pay(stripe_client, intent)
    wait_for(lambda: is_status(client, buyer, placed["id"], "paid"))
    h = {**bearer(buyer), "Idempotency-Key": "goodwill-1"}

    def stripe_refunds() -> list[int]:
        return [r.amount for r in stripe_client.v1.refunds.list(params={"payment_intent": intent}).data]

    r = client.post(f"/orders/{placed['id']}/refund", headers=h, json={"amount": "10.00", "reason": "late doors"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["amount_refunded"]) == ("partially_refunded", "10.00")
    assert [t["status"] for t in body["tickets"]] == ["valid"] * 3
    assert [(x["amount"], x["ticket_ids"], x["reason"]) for x in body["refunds"]] == [("10.00", [], "late doors")]
    assert stripe_refunds() == [1000]

    again = client.post(f"/orders/{placed['id']}/refund", headers=h, json={"amount": "10.00", "reason": "late doors"})
    assert again.status_code == 200 and again.json()["amount_refunded"] == "10.00"
    assert stripe_refunds() == [1000]  # the repeated request refunded nothing more

    for bad, status, code in (({"amount": "65.01"}, 409, "amount_mismatch"), ({"amount": "-1"}, 422, "invalid"),
                              ({"amount": "0"}, 422, "invalid"), ({"amount": "1.001"}, 422, "invalid"),
                              ({"amount": "lots"}, 422, "invalid")):  # fmt: skip
        refused = client.post(f"/orders/{placed['id']}/refund", headers=bearer(buyer), json=bad)
        assert (refused.status_code, refused.json()["code"]) == (status, code), (bad, refused.text)
    assert stripe_refunds() == [1000] and get_order(client, buyer, placed["id"])["amount_refunded"] == "10.00"

    # One ticket, keeping a fee; then the rest of the money is the full refund.
    ticket = body["tickets"][0]["id"]
    one = client.post(
        f"/orders/{placed['id']}/refund", headers=bearer(buyer), json={"ticket_ids": [ticket], "amount": "20.00"}
    )
    assert one.status_code == 200, one.text
    assert sorted(t["status"] for t in one.json()["tickets"]) == ["valid", "valid", "voided"]
    rest = client.post(f"/orders/{placed['id']}/refund", headers=bearer(buyer), json={"amount": "45.00"})
    assert rest.status_code == 200, rest.text
    done = rest.json()
    assert (done["status"], done["amount_refunded"], done["amount_paid"]) == ("refunded", "75.00", "75.00")
    assert {t["status"] for t in done["tickets"]} == {"voided"} and len(done["refunds"]) == 3
    assert sorted(stripe_refunds()) == [1000, 2000, 4500]
    listed: dict[str, Any] = client.get("/orders", headers=bearer(buyer)).json()["data"][0]
    assert listed["number"] == placed["number"] and len(listed["refunds"]) == 3


def test_category_lists_are_paginated(client: httpx.Client, admin_token: str) -> None:
    admin = bearer(admin_token)
    segment = client.post("/segments", headers=admin, json={"name": f"Arts {uuid4().hex[:6]}"}).json()
    for name in ("Opera", "Ballet", "Drama"):
        assert client.post(f"/segments/{segment['id']}/genres", headers=admin, json={"name": name}).status_code == 201
    first = client.get(f"/segments/{segment['id']}/genres?page=1&page_size=2").json()
    assert [g["name"] for g in first["data"]] == ["Ballet", "Drama"]
    assert first["pagination"] == {"total_items": 3, "total_pages": 2, "current_page": 1, "page_size": 2}
    second = client.get(f"/segments/{segment['id']}/genres?page=2&page_size=2").json()
    assert [g["name"] for g in second["data"]] == ["Opera"]
    assert client.get("/segments?page_size=101").status_code in (400, 422)
    assert client.get("/segments").json()["pagination"]["total_items"] >= 1


def test_order_lists_show_each_orders_own_total(client: httpx.Client, admin_token: str) -> None:
    """The lists' row count once shared a column name with the order's total: every listed order
    then showed the number of rows as its total (0.01 for a list of one)."""
    show = publish_show(client, admin_token, ga_quantity=20, seats=2)
    buyer = register(client)
    placed = [order(client, buyer, [{"offer_id": show.ga_offer, "quantity": n}]).json() for n in (1, 3)]
    assert [p["total"] for p in placed] == ["25.00", "75.00"]
    mine = {o["id"]: o["total"] for o in client.get("/orders", headers=bearer(buyer)).json()["data"]}
    assert mine == {p["id"]: p["total"] for p in placed}
    theirs = client.get(f"/events/{show.id}/orders", headers=bearer(show.organizer)).json()["data"]
    assert {o["id"]: o["total"] for o in theirs} == mine
