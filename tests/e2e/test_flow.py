"""The organizer -> buyer flow over HTTP against the running service."""

from __future__ import annotations

from uuid import uuid4

import httpx

from tests.e2e.conftest import bearer, order, publish_show, register


def test_organizer_puts_an_event_on_sale_and_a_buyer_holds_seats_and_tickets(
    client: httpx.Client, admin_token: str
) -> None:
    show = publish_show(client, admin_token, ga_quantity=10, seats=5)

    listing = client.get("/events", params={"q": "show", "available": "true", "page_size": 100}).json()
    assert show.id in [e["id"] for e in listing["data"]]
    detail = client.get(f"/events/{show.id}").json()
    assert detail["status"] == "published"
    assert detail["price_range"] == {"min": "25.00", "max": "40.00", "currency": "EUR"}
    assert detail["available"] == 15

    buyer = register(client)
    r = order(
        client,
        buyer,
        [{"offer_id": show.ga_offer, "quantity": 3}, {"offer_id": show.seat_offer, "seat_id": show.seats[0]}],
    )
    assert r.status_code == 201, r.text
    placed = r.json()
    assert placed["status"] == "held"
    assert placed["total"] == "115.00" and placed["currency"] == "EUR"
    assert placed["hold_expires_at"].endswith("Z")

    # Reads right after the write see it.
    assert client.get(f"/orders/{placed['id']}", headers=bearer(buyer)).json()["status"] == "held"
    mine = client.get("/orders", headers=bearer(buyer)).json()
    assert [o["id"] for o in mine["data"]] == [placed["id"]]
    seat_map = client.get(f"/events/{show.id}/seat-map").json()
    statuses = {s["id"]: s["status"] for sec in seat_map["sections"] for row in sec["rows"] for s in row["seats"]}
    assert statuses[show.seats[0]] == "held"
    offers = {o["id"]: o for o in client.get(f"/events/{show.id}/offers").json()["data"]}
    assert offers[show.ga_offer]["available"] == 7
    assert offers[show.seat_offer]["available"] == 4

    # Other people cannot see the order.
    stranger = register(client)
    assert client.get(f"/orders/{placed['id']}", headers=bearer(stranger)).status_code == 404

    # Cancelling returns everything at once.
    cancelled = client.post(f"/orders/{placed['id']}/cancel", headers=bearer(buyer))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    offers = {o["id"]: o for o in client.get(f"/events/{show.id}/offers").json()["data"]}
    assert offers[show.ga_offer]["available"] == 10
    assert client.post(f"/orders/{placed['id']}/cancel", headers=bearer(buyer)).status_code == 409


def test_a_held_seat_is_not_sold_twice(client: httpx.Client, admin_token: str) -> None:
    show = publish_show(client, admin_token, seats=3)
    first, second = register(client), register(client)
    seat = [{"offer_id": show.seat_offer, "seat_id": show.seats[1]}]
    assert order(client, first, seat).status_code == 201
    r = order(client, second, seat)
    assert r.status_code == 409
    assert r.json()["code"] == "seat_taken"


def test_an_idempotency_key_replays_the_same_order(client: httpx.Client, admin_token: str) -> None:
    show = publish_show(client, admin_token, ga_quantity=5)
    buyer = register(client)
    items = [{"offer_id": show.ga_offer, "quantity": 2}]
    first = order(client, buyer, items, **{"Idempotency-Key": "checkout-1"})
    again = order(client, buyer, items, **{"Idempotency-Key": "checkout-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    # Read as the buyer: their next reads wait for their order (anonymous ones may lag a little).
    offers = {o["id"]: o for o in client.get(f"/events/{show.id}/offers", headers=bearer(buyer)).json()["data"]}
    assert offers[show.ga_offer]["available"] == 3


def test_seat_map_supports_etags(client: httpx.Client, admin_token: str) -> None:
    show = publish_show(client, admin_token, seats=4)
    first = client.get(f"/events/{show.id}/seat-map")
    etag = first.headers["etag"]
    assert client.get(f"/events/{show.id}/seat-map", headers={"If-None-Match": etag}).status_code == 304
    buyer = register(client)
    assert order(client, buyer, [{"offer_id": show.seat_offer, "seat_id": show.seats[0]}]).status_code == 201
    changed = client.get(f"/events/{show.id}/seat-map", headers={"If-None-Match": etag, **bearer(buyer)})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_drafts_are_hidden_from_everyone_but_their_organizer(client: httpx.Client, admin_token: str) -> None:
    venue = client.post("/venues", headers=bearer(admin_token), json={"name": "Draft Hall", "city": "Oslo"}).json()
    organizer = register(client, "organizer")
    body = {"title": "Secret", "venue_id": venue["id"], "start_time": "2031-01-01T19:00:00Z",
            "end_time": "2031-01-01T21:00:00Z"}  # fmt: skip
    draft = client.post("/events", headers=bearer(organizer), json=body).json()
    assert client.get(f"/events/{draft['id']}").status_code == 404
    assert client.get(f"/events/{draft['id']}", headers=bearer(register(client, "organizer"))).status_code == 404
    assert client.get(f"/events/{draft['id']}", headers=bearer(organizer)).status_code == 200
    assert client.get(f"/events/{draft['id']}", headers=bearer(admin_token)).status_code == 200
    attendee = register(client)
    assert client.post("/events", headers=bearer(attendee), json=body).status_code == 403
    assert client.post("/venues", headers=bearer(organizer), json={"name": "x"}).status_code == 403


def test_login_sets_an_httponly_cookie_that_authenticates(service: str) -> None:
    with httpx.Client(base_url=f"{service}/api/v1", timeout=30) as browser:
        email = f"cookie-{uuid4().hex[:8]}@example.com"
        r = browser.post("/auth/register", json={"email": email, "username": "cookie", "password": "cookie-pass-1"})
        assert r.status_code == 201
        browser.cookies.clear()
        login = browser.post("/auth/login", json={"email": email, "password": "cookie-pass-1"})
        assert login.status_code == 200
        body = login.json()
        assert body["token_type"] == "bearer" and body["user"]["email"] == email
        assert "password" not in str(body["user"]).lower()
        set_cookie = login.headers.get_list("set-cookie")
        assert any(c.startswith("auth-token=") and "HttpOnly" in c for c in set_cookie)
        me = browser.get("/auth/me")
        assert me.status_code == 200 and me.json()["email"] == email
        browser.cookies.clear()
        assert browser.get("/auth/me").status_code == 401
