"""The web pages over HTTP (no browser): headers, sessions and CSRF, redirects to /login, and bad
or hostile input answered with a page and a 4xx, never a 500. tests/browser walks the journey."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from uuid import UUID, uuid4

import httpx
import pytest

from tests.e2e.conftest import PASSWORD, bearer, publish_show, register_with_email
from tests.e2e.test_identity import mailbox, reset_code  # noqa: F401
from tests.mailbox import Mailbox


@pytest.fixture
def web(service: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service, timeout=30, follow_redirects=False) as c:
        yield c


def csrf_of(web: httpx.Client, path: str = "/login") -> str:
    r = web.get(path)
    assert r.status_code == 200, r.text
    match = re.search(r'name="_csrf" value="([0-9a-f]+)"', r.text)
    assert match is not None
    assert web.cookies.get("csrf-token") == match.group(1)
    return match.group(1)


def sign_in(web: httpx.Client, email: str, target: str = "/") -> httpx.Response:
    token = csrf_of(web)
    return web.post("/login", data={"_csrf": token, "email": email, "password": PASSWORD, "next": target})


def test_pages_have_a_strict_csp_and_load_nothing_from_elsewhere(web: httpx.Client) -> None:
    for path in ("/", "/login", "/register", "/static/web/web.css", "/static/web/seatmap.js"):
        r = web.get(path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe" not in csp and "default-src 'none'" in csp
    home = web.get("/").text
    assert "<script>" not in home and " style=" not in home
    assert not re.search(r'(src|href)="(https?:)?//', home)
    assert web.get("/").headers["cache-control"] == "no-store"


# Fixed ids: pytest-xdist needs every worker to collect the same test names.
@pytest.mark.parametrize("path", ["/me", "/organizer", f"/checkout/{UUID(int=1)}", f"/scan/{UUID(int=2)}"])
def test_pages_for_people_signed_in_send_the_others_to_login(web: httpx.Client, path: str) -> None:
    r = web.get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=%2F")


def test_forms_need_their_csrf_token(web: httpx.Client, client: httpx.Client) -> None:
    _, email = register_with_email(client)
    assert web.post("/login", data={"email": email, "password": PASSWORD}).status_code == 403
    csrf_of(web)
    wrong = web.post("/login", data={"_csrf": "0" * 80, "email": email, "password": PASSWORD})
    assert wrong.status_code == 403
    assert web.post("/logout", data={}).status_code == 403


def test_sign_in_and_out(web: httpx.Client, client: httpx.Client) -> None:
    _, email = register_with_email(client)
    token = csrf_of(web)
    bad = web.post("/login", data={"_csrf": token, "email": email, "password": "wrong-password-1", "next": "/me"})
    assert bad.status_code == 401 and "Wrong e-mail address or password" in bad.text
    r = sign_in(web, email, "/me")
    assert r.status_code == 303 and r.headers["location"] == "/me"
    assert web.cookies.get("auth-token")
    me = web.get("/me")
    assert me.status_code == 200 and email in me.text
    out = web.post("/logout", data={"_csrf": web.cookies["csrf-token"]})
    assert out.status_code == 303
    assert web.get("/me").status_code == 303


FOREIGN = ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"]


@pytest.mark.parametrize("target", FOREIGN)
def test_sign_in_never_sends_people_to_another_host(web: httpx.Client, client: httpx.Client, target: str) -> None:
    _, email = register_with_email(client)
    r = sign_in(web, email, target)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_register_page(web: httpx.Client) -> None:
    token = csrf_of(web, "/register")
    email = f"web-{uuid4().hex[:10]}@example.com"
    short = web.post("/register", data={"_csrf": token, "email": email, "username": "webby", "password": "short"})
    assert short.status_code == 422 and "Please check the form" in short.text
    fields = {"_csrf": token, "email": email, "username": "webby", "password": PASSWORD, "role": "organizer"}
    r = web.post("/register", data=fields)
    assert r.status_code == 303 and web.cookies.get("auth-token")
    assert "Organizer" in web.get("/").text
    again = web.post("/register", data=fields)
    assert again.status_code == 409


def test_bad_and_hostile_input_gets_a_page_and_a_4xx(web: httpx.Client, client: httpx.Client, admin_token: str) -> None:
    organizer, _ = register_with_email(client, "organizer")
    show = publish_show(client, admin_token, organizer=organizer, seats=4)
    title = f"<script>alert(1)</script> Gig {uuid4().hex[:6]}"
    assert client.patch(f"/events/{show.id}", headers=bearer(organizer), json={"title": title}).status_code == 200
    page = web.get(f"/e/{show.id}")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>alert" not in page.text
    assert 'id="seatmap"' in page.text and "4 of 4 seats free." in page.text

    for query in ("price_max=abc", "date_from=yesterday", "sort=drop%20table", "q=%3Cb%3E"):
        r = web.get(f"/?{query}")
        assert r.status_code == 200, query
    assert web.get("/?page=x").status_code == 422
    assert web.get(f"/e/{uuid4()}").status_code == 404
    assert web.get("/e/not-a-uuid").status_code == 404

    _, email = register_with_email(client)
    sign_in(web, email)
    csrf = web.cookies["csrf-token"]
    hold = f"/e/{show.id}/hold"
    cases = [
        ({}, 422),
        ({"seat": "garbage"}, 422),
        ({"seat": f"{show.seat_offer}:{uuid4()}"}, 404),
        ({f"qty:{show.ga_offer}": "abc"}, 422),
        ({f"qty:{show.ga_offer}": "1000"}, 422),
        ({f"qty:{uuid4()}": "1"}, 404),
        ({f"qty:{show.ga_offer}": "1\x00"}, 422),  # refused before the page, as JSON (api/inputs.py)
    ]
    for fields, status in cases:
        r = web.post(hold, data={"_csrf": csrf, **fields})
        assert r.status_code == status, (fields, r.status_code, r.text[:300])
        if not any("\x00" in value for value in fields.values()):
            assert "text/html" in r.headers["content-type"], (fields, r.text[:300])
    ok = web.post(hold, data={"_csrf": csrf, "hold_key": "k1", f"qty:{show.ga_offer}": "2"})
    assert ok.status_code == 303 and ok.headers["location"].startswith("/checkout/")
    checkout = web.get(ok.headers["location"])
    assert checkout.status_code == 200 and "50.00 EUR" in checkout.text and 'id="hold-deadline"' in checkout.text
    # Without JavaScript the seats come from the <noscript> list, as `seat` fields.
    assert f'<option value="{show.seat_offer}:{show.seats[0]}">' in page.text
    seats = web.post(hold, data={"_csrf": csrf, "seat": [f"{show.seat_offer}:{s}" for s in show.seats[:2]]})
    assert seats.status_code == 303, seats.text
    assert "80.00 EUR" in web.get(seats.headers["location"]).text


def test_unverified_buyers_are_told_to_verify(web: httpx.Client, client: httpx.Client, admin_token: str) -> None:
    organizer, _ = register_with_email(client, "organizer")
    show = publish_show(client, admin_token, organizer=organizer, seats=2)
    _, email = register_with_email(client, verified=False)
    sign_in(web, email)
    r = web.post(f"/e/{show.id}/hold", data={"_csrf": web.cookies["csrf-token"], f"qty:{show.ga_offer}": "1"})
    assert r.status_code == 403 and "verify your e-mail address" in r.text


def test_other_peoples_orders_and_doors_are_not_shown(
    web: httpx.Client, client: httpx.Client, admin_token: str
) -> None:
    organizer, _ = register_with_email(client, "organizer")
    show = publish_show(client, admin_token, organizer=organizer, seats=2)
    buyer, _ = register_with_email(client)
    order = client.post("/orders", headers=bearer(buyer), json={"items": [{"offer_id": show.ga_offer, "quantity": 1}]})
    assert order.status_code == 201, order.text
    _, stranger = register_with_email(client)
    sign_in(web, stranger)
    assert web.get(f"/checkout/{order.json()['id']}").status_code == 404
    assert web.get(f"/scan/{show.id}").status_code == 403
    assert web.get("/organizer").status_code == 403


def test_reset_password_page(web: httpx.Client, client: httpx.Client, mailbox: Mailbox) -> None:  # noqa: F811
    _, email = register_with_email(client)
    token = csrf_of(web, "/reset")
    sent = web.post("/reset/code", data={"_csrf": token, "email": email})
    assert sent.status_code == 200 and "a 6-digit code is on its way" in sent.text
    code = reset_code(mailbox.wait(email, "Your password reset code"))
    wrong = web.post("/reset", data={"_csrf": token, "email": email, "code": "000000", "new_password": "x" * 12})
    assert wrong.status_code == 422 and "wrong, used or expired" in wrong.text
    weak = web.post("/reset", data={"_csrf": token, "email": email, "code": "12", "new_password": "x" * 12})
    assert weak.status_code == 422
    done = web.post("/reset", data={"_csrf": token, "email": email, "code": code, "new_password": "a-new-password-1"})
    assert done.status_code == 303 and web.cookies.get("auth-token")
    assert client.post("/auth/login", json={"email": email, "password": "a-new-password-1"}).status_code == 200


def test_pay_then_name_pass_on_and_refund_tickets_from_the_pages(
    web: httpx.Client, client: httpx.Client, admin_token: str
) -> None:
    organizer, _ = register_with_email(client, "organizer")
    show = publish_show(client, admin_token, organizer=organizer, seats=2)
    _, email = register_with_email(client)
    _, friend = register_with_email(client)
    sign_in(web, email)
    csrf = web.cookies["csrf-token"]
    held = web.post(f"/e/{show.id}/hold", data={"_csrf": csrf, f"qty:{show.ga_offer}": "2"})
    checkout = held.headers["location"]
    paid = web.post(f"{checkout}/pay", data={"_csrf": csrf, "card": "pm_card_visa"})
    assert paid.status_code == 303 and paid.headers["location"] == checkout
    deadline = time.monotonic() + 30
    while "Your tickets" not in (page := web.get(checkout)).text:
        assert time.monotonic() < deadline, page.text
        time.sleep(0.5)
    ids = re.findall(r"/api/v1/tickets/([0-9a-f-]{36})/pdf", page.text)
    assert len(ids) == 2
    assert web.get(f"/api/v1/tickets/{ids[0]}/qr.png").headers["content-type"] == "image/png"

    named = web.post(f"/me/tickets/{ids[0]}/name", data={"_csrf": csrf, "attendee_name": "Ada <b>Lovelace</b>"})
    assert named.status_code == 303 and "done=" in named.headers["location"]
    me = web.get("/me").text
    assert "for Ada &lt;b&gt;Lovelace&lt;/b&gt;" in me

    nobody = web.post(f"/me/tickets/{ids[0]}/transfer", data={"_csrf": csrf, "email": "nobody@example.com"})
    assert "error=" in nobody.headers["location"]
    moved = web.post(f"/me/tickets/{ids[0]}/transfer", data={"_csrf": csrf, "email": friend})
    assert "done=" in moved.headers["location"]
    refunded = web.post(f"/me/tickets/{ids[1]}/refund", data={"_csrf": csrf, "reason": "cannot come"})
    assert "done=" in refunded.headers["location"], refunded.headers["location"]
    me = web.get("/me").text
    assert me.count('class="ticket"') == 1 and "voided" in me  # the refunded one; the other was passed on
    assert web.post(f"/me/tickets/{ids[0]}/refund", data={"_csrf": csrf}).headers["location"].startswith("/me?error=")


def test_join_the_waiting_list_of_a_sold_out_offer(web: httpx.Client, client: httpx.Client, admin_token: str) -> None:
    organizer, _ = register_with_email(client, "organizer")
    show = publish_show(client, admin_token, organizer=organizer, seats=1, ga_quantity=1)
    first_buyer, _ = register_with_email(client)
    order = client.post(
        "/orders", headers=bearer(first_buyer), json={"items": [{"offer_id": show.ga_offer, "quantity": 1}]}
    )
    assert order.status_code == 201, order.text
    _, email = register_with_email(client)
    sign_in(web, email)
    page = web.get(f"/e/{show.id}").text
    assert "Join the waiting list" in page
    csrf = web.cookies["csrf-token"]
    bad = web.post(f"/e/{show.id}/waitlist", data={"_csrf": csrf, "offer_id": "nope", "quantity": "1"})
    assert bad.status_code == 422
    joined = web.post(f"/e/{show.id}/waitlist", data={"_csrf": csrf, "offer_id": show.ga_offer, "quantity": "1"})
    assert joined.status_code == 303, joined.text
    assert "number 1 in line" in web.get("/me").text
    again = web.post(f"/e/{show.id}/waitlist", data={"_csrf": csrf, "offer_id": show.ga_offer, "quantity": "1"})
    assert again.status_code == 409


def test_an_organizer_creates_fills_publishes_and_cancels_a_show(
    web: httpx.Client, client: httpx.Client, admin_token: str
) -> None:
    place = {"name": f"Club {uuid4().hex[:6]}", "city": "Oslo", "country": "NO"}
    venue = client.post("/venues", headers=bearer(admin_token), json=place).json()
    _, email = register_with_email(client, "organizer")
    sign_in(web, email)
    csrf = web.cookies["csrf-token"]
    assert venue["name"] in web.get("/organizer/events/new").text
    title = f"Jazz {uuid4().hex[:6]}"
    fields = {"_csrf": csrf, "title": title, "description": "late", "venue_id": venue["id"]}
    backwards = web.post("/organizer/events", data={**fields, "start": "2031-05-01T22:00", "end": "2031-05-01T19:00"})
    assert backwards.status_code == 422 and "text/html" in backwards.headers["content-type"]
    garbage = web.post("/organizer/events", data={**fields, "start": "soon", "end": "later"})
    assert garbage.status_code == 422
    created = web.post("/organizer/events", data={**fields, "start": "2031-05-01T19:00", "end": "2031-05-01T22:00"})
    assert created.status_code == 303, created.text
    manage = created.headers["location"]
    event_id = manage.rsplit("/", 1)[1]

    tier = {"_csrf": csrf, "tier_name": "Standing", "kind": "general", "currency": "EUR", "quantity": "100"}
    assert web.post(f"{manage}/tiers", data={**tier, "price": "abc"}).status_code == 422
    assert web.post(f"{manage}/tiers", data={**tier, "price": "19.90"}).status_code == 303
    page = web.get(manage).text
    assert "19.90 EUR" in page and "Standing (general)" in page
    assert web.post(f"{manage}/publish", data={"_csrf": csrf}).status_code == 303
    public = web.get(f"/e/{event_id}")
    assert public.status_code == 200 and title in public.text and "19.90 EUR" in public.text
    assert title in web.get("/organizer").text
    _, door = register_with_email(client)
    unknown = web.post(f"{manage}/scanners", data={"_csrf": csrf, "email": "nobody@example.com"})
    assert unknown.status_code == 422 and "no account with this e-mail" in unknown.text
    assert web.post(f"{manage}/scanners", data={"_csrf": csrf, "email": door}).status_code == 303
    page = web.get(manage).text
    assert "1 account may check tickets in" in page and "Bookings (0)" in page

    _, other = register_with_email(client, "organizer")
    with httpx.Client(base_url=str(web.base_url), follow_redirects=False) as stranger:
        sign_in(stranger, other)
        assert stranger.get(manage).status_code == 403
        assert stranger.post(f"{manage}/cancel", data={"_csrf": stranger.cookies["csrf-token"]}).status_code == 403

    assert web.post(f"{manage}/cancel", data={"_csrf": csrf, "reason": "rain"}).status_code == 303
    assert "(cancelled)" in web.get(manage).text


def test_an_organizer_edits_details_and_offers_and_blocks_seats_from_the_page(
    web: httpx.Client, client: httpx.Client, admin_token: str
) -> None:
    token, email = register_with_email(client, "organizer")
    show = publish_show(client, admin_token, seats=12, organizer=token)
    sign_in(web, email)
    csrf = web.cookies["csrf-token"]
    manage = f"/organizer/events/{show.id}"
    page = web.get(manage).text
    assert 'value="2031-05-01T19:00"' in page and "House seats" in page

    details = {"_csrf": csrf, "title": "Renamed night", "description": "Doors at 7", "start": "2031-05-02T20:00",
               "end": "2031-05-02T23:00"}  # fmt: skip
    assert web.post(f"{manage}/details", data={**details, "end": "2031-05-02T19:00"}).status_code == 422
    assert web.post(f"{manage}/details", data={**details, "title": ""}).status_code == 422
    assert web.post(f"{manage}/details", data=details).status_code == 303
    public = client.get(f"/events/{show.id}").json()
    assert public["title"] == "Renamed night" and public["start_time"] == "2031-05-02T20:00:00Z"

    offer = f"{manage}/offers/{show.ga_offer}"
    assert web.post(offer, data={"_csrf": csrf, "price": "abc"}).status_code == 422
    assert (
        web.post(offer, data={"_csrf": csrf, "price": "29.50", "quantity": "40", "max_per_order": "3"}).status_code
        == 303
    )
    terms = client.get(f"/offers/{show.ga_offer}").json()
    assert (terms["price"], terms["quantity_for_sale"], terms["max_per_order"]) == ("29.50", 40, 3)
    assert web.post(offer, data={"_csrf": csrf, "status": "paused"}).status_code == 303
    assert "Resume sales" in web.get(manage).text
    buyer = register_with_email(client)[0]
    paused = client.post("/orders", headers=bearer(buyer), json={"items": [{"offer_id": show.ga_offer, "quantity": 1}]})
    assert paused.status_code == 409
    assert web.post(offer, data={"_csrf": csrf, "status": "on_sale"}).status_code == 303
    # Another organizer's offer, through this show's page: refused as by PATCH /offers/{id}, nothing changed.
    other = publish_show(client, admin_token)
    assert web.post(f"{manage}/offers/{other.ga_offer}", data={"_csrf": csrf, "price": "1.00"}).status_code == 403
    assert client.get(f"/offers/{other.ga_offer}").json()["price"] == "25.00"

    seats = {"_csrf": csrf, "section": "Floor", "row": "A", "action": "block"}
    assert web.post(f"{manage}/seats", data={**seats, "seats": "11-14"}).status_code == 422  # no 13, 14
    assert web.post(f"{manage}/seats", data={**seats, "seats": "9-1"}).status_code == 422
    assert web.post(f"{manage}/seats", data={**seats, "seats": "1-3, 7"}).status_code == 303
    statuses = {s["label"]: s["status"] for sec in client.get(f"/events/{show.id}/seat-map").json()["sections"]
                for r in sec["rows"] for s in r["seats"]}  # fmt: skip
    assert [label for label, status in statuses.items() if status == "blocked"] == ["1", "2", "3", "7"]
    assert "Floor A-1, Floor A-2, Floor A-3, Floor A-7" in web.get(manage).text
    assert web.post(f"{manage}/seats", data={**seats, "seats": "2", "action": "unblock"}).status_code == 303
    held = client.post("/orders", headers=bearer(buyer), json={"items": [{"offer_id": show.seat_offer,
                                                                          "seat_id": show.seats[1]}]})  # fmt: skip
    assert held.status_code == 201, held.text
    taken = web.post(f"{manage}/seats", data={**seats, "seats": "2-4"})  # 2 is held now: all or none
    assert taken.status_code == 409 and "text/html" in taken.headers["content-type"]
    statuses = {s["label"]: s["status"] for sec in client.get(f"/events/{show.id}/seat-map").json()["sections"]
                for r in sec["rows"] for s in r["seats"]}  # fmt: skip
    assert statuses["4"] == "available"


def test_an_admin_features_a_show_first_on_the_home_page(
    web: httpx.Client, client: httpx.Client, admin_token: str
) -> None:
    show = publish_show(client, admin_token)
    listing = client.get("/events", params={"featured": "true", "page_size": 100}).json()["data"]
    assert show.id not in {e["id"] for e in listing}
    put = client.put(f"/admin/events/{show.id}/featured", headers=bearer(admin_token), json={"featured": True})
    assert put.status_code == 200 and put.json() == {"event_id": show.id, "featured": True}
    assert client.put(f"/admin/events/{show.id}/featured", headers=bearer(show.organizer),
                      json={"featured": False}).status_code == 403  # fmt: skip
    assert client.put(f"/admin/events/{uuid4()}/featured", headers=bearer(admin_token),
                      json={"featured": True}).status_code == 404  # fmt: skip
    bad = client.put(f"/admin/events/{show.id}/featured", headers=bearer(admin_token), json={"featured": "yes"})
    assert bad.status_code in (400, 422)
    listing = client.get("/events", params={"featured": "true", "page_size": 100}).json()["data"]
    assert show.id in {e["id"] for e in listing} and all(e["featured"] for e in listing)
    home = web.get("/").text
    featured = home.partition("All upcoming events")[0]
    assert 'id="featured"' in featured and f"/e/{show.id}" in featured
    # An admin stops featuring it from the show's page; its organizer is not offered the button.
    admin_email = client.get("/auth/me", headers=bearer(admin_token)).json()["email"]
    sign_in(web, admin_email)
    manage = f"/organizer/events/{show.id}"
    assert "Stop featuring it" in web.get(manage).text
    form = {"_csrf": web.cookies["csrf-token"], "featured": "false"}
    assert web.post(f"{manage}/featured", data=form).status_code == 303
    assert client.get(f"/events/{show.id}").json()["featured"] is False
    with httpx.Client(base_url=str(web.base_url), follow_redirects=False) as owner:
        sign_in(owner, client.get("/auth/me", headers=bearer(show.organizer)).json()["email"])
        assert "Feature it on the home page" not in owner.get(manage).text
        again = {"_csrf": owner.cookies["csrf-token"], "featured": "true"}
        assert owner.post(f"{manage}/featured", data=again).status_code == 403
    # A cancelled show cannot be featured.
    client.post(f"/events/{show.id}/cancel", headers=bearer(show.organizer), json={"reason": "rain"})
    refused = client.put(f"/admin/events/{show.id}/featured", headers=bearer(admin_token), json={"featured": True})
    assert refused.status_code == 409
