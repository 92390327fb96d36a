"""The waitlist through HTTP: who may join, leaving, my list, and released stock going to the
first in line before the public (concurrency checked from the event store afterwards)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx

from commands.base import utcnow
from domain.offer import Offer
from domain.order import Order
from domain.waitlist import Waitlist, waitlist_id
from tests.e2e.conftest import bearer, order, publish_show, register
from ticketing import Settings, open_boxoffice


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def join(client: httpx.Client, token: str, offer_id: str, quantity: int = 1) -> httpx.Response:
    return client.post(f"/offers/{offer_id}/waitlist", headers=bearer(token), json={"quantity": quantity})


def my_entry(client: httpx.Client, token: str, entry_id: str) -> dict[str, Any]:
    entries = client.get("/me/waitlist?page_size=100", headers=bearer(token)).json()["data"]
    return next(e for e in entries if e["id"] == entry_id)


def free_sold_out_offer(client: httpx.Client, admin: str, quantity: int) -> tuple[str, list[tuple[str, str]]]:
    """A published show with a free GA offer of `quantity`, held completely by one-ticket orders:
    (offer id, [(holder token, order id)])."""
    show = publish_show(client, admin, ga_quantity=1)
    event = client.get(f"/events/{show.id}").json()
    tier = next(t for t in event["tiers"] if t["kind"] == "general")["id"]
    offer = client.post(
        f"/tiers/{tier}/offers",
        headers=bearer(show.organizer),
        json={"name": "Free", "price": "0.00", "currency": "EUR", "quantity_for_sale": quantity, "max_per_order": 4},
    )
    assert offer.status_code == 201, offer.text
    holders = []
    for _ in range(quantity):
        token = register(client)
        r = order(client, token, [{"offer_id": offer.json()["id"], "quantity": 1}])
        assert r.status_code == 201, r.text
        holders.append((token, r.json()["id"]))
    return offer.json()["id"], holders


def test_joining_is_for_sold_out_offers_within_the_limits(client: httpx.Client, admin_token: str) -> None:
    show = publish_show(client, admin_token, ga_quantity=2, max_per_order=3)
    ann, bob, cat = register(client), register(client), register(client)
    assert join(client, ann, str(uuid4())).json()["code"] == "offer_not_found"
    assert join(client, ann, str(uuid4())).status_code == 404
    r = join(client, ann, show.ga_offer)
    assert (r.status_code, r.json()["code"]) == (409, "not_sold_out")
    assert order(client, cat, [{"offer_id": show.ga_offer, "quantity": 2}]).status_code == 201

    r = join(client, ann, show.ga_offer, quantity=4)
    assert r.status_code == 422, r.text
    for bad in ({"quantity": 0}, {"quantity": "two"}, {"quantity": 1, "extra": True}):
        r = client.post(f"/offers/{show.ga_offer}/waitlist", headers=bearer(ann), json=bad)
        assert r.status_code in (400, 422) and "code" in r.json(), r.text
    assert client.get("/me/waitlist", headers=bearer(ann)).json()["pagination"]["total_items"] == 0

    first = join(client, ann, show.ga_offer, quantity=2)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body | {"id": None, "joined_at": None} == {
        "id": None, "offer_id": show.ga_offer, "event_id": show.id, "position": 1, "status": "waiting",
        "quantity": 2, "joined_at": None, "order_id": None, "offer_expires_at": None,
    }  # fmt: skip
    again = join(client, ann, show.ga_offer)
    assert (again.status_code, again.json()["code"]) == (409, "already_waiting")
    second = join(client, bob, show.ga_offer)
    assert second.status_code == 201 and second.json()["position"] == 2

    mine = client.get("/me/waitlist?page=1&page_size=1", headers=bearer(ann)).json()
    assert mine["pagination"] == {"total_items": 1, "total_pages": 1, "current_page": 1, "page_size": 1}
    assert mine["data"][0]["id"] == body["id"]
    # Leaving: only your own entry (404 for anyone else), once (409 after), and the line moves up.
    assert client.delete(f"/waitlist/{body['id']}", headers=bearer(bob)).status_code == 404
    assert client.delete(f"/waitlist/{uuid4()}", headers=bearer(ann)).status_code == 404
    assert client.delete(f"/waitlist/{body['id']}", headers=bearer(ann)).status_code == 204
    assert client.delete(f"/waitlist/{body['id']}", headers=bearer(ann)).status_code == 409
    assert my_entry(client, ann, body["id"])["status"] == "left"
    assert my_entry(client, bob, second.json()["id"])["position"] == 1
    # Having left, one may queue again (at the end of the line).
    assert join(client, ann, show.ga_offer).json()["position"] == 2


def test_a_cancelled_hold_goes_to_the_first_in_line_who_pays_or_gives_it_up(
    client: httpx.Client, admin_token: str
) -> None:
    offer, holders = free_sold_out_offer(client, admin_token, 2)
    ann, bob, cat = register(client), register(client), register(client)
    a = join(client, ann, offer).json()
    b = join(client, bob, offer).json()
    c = join(client, cat, offer).json()

    # One ticket comes back: Ann (first) is offered a held order; the public still finds it sold out.
    token, order_id = holders[0]
    assert client.post(f"/orders/{order_id}/cancel", headers=bearer(token)).status_code == 200
    offered = wait_for(lambda: my_entry(client, ann, a["id"])["order_id"], what="an offer to the first in line")
    entry = my_entry(client, ann, a["id"])
    assert entry["status"] == "offered" and entry["position"] is None and entry["offer_expires_at"]
    held = client.get(f"/orders/{offered}", headers=bearer(ann)).json()
    assert held["status"] == "held" and held["items"][0]["quantity"] == 1
    assert my_entry(client, bob, b["id"])["position"] == 1
    r = order(client, register(client), [{"offer_id": offer, "quantity": 1}])
    assert (r.status_code, r.json()["code"]) == (409, "sold_out")
    page = client.get(f"/events/{held['event_id']}/offers?page_size=100").json()
    listed = {o["id"]: o for o in (page["data"] if isinstance(page, dict) else page)}
    assert listed[offer]["available"] == 0

    # Ann takes it (a free order is confirmed at once): converted.
    assert client.post(f"/orders/{offered}/payment", headers=bearer(ann)).status_code == 200
    wait_for(lambda: my_entry(client, ann, a["id"])["status"] == "converted", what="converted")

    # Another ticket comes back: Bob is offered it, gives it up by leaving, and it goes to Cat.
    token, order_id = holders[1]
    assert client.post(f"/orders/{order_id}/cancel", headers=bearer(token)).status_code == 200
    bobs = wait_for(lambda: my_entry(client, bob, b["id"])["order_id"], what="an offer to Bob")
    assert client.delete(f"/waitlist/{b['id']}", headers=bearer(bob)).status_code == 204
    assert client.get(f"/orders/{bobs}", headers=bearer(bob)).json()["status"] == "cancelled"
    cats = wait_for(lambda: my_entry(client, cat, c["id"])["order_id"], what="an offer to Cat")
    assert client.get(f"/orders/{cats}", headers=bearer(cat)).json()["status"] == "held"
    assert my_entry(client, bob, b["id"])["status"] == "left"


async def _concurrently(base_url: str, calls: list[tuple[str, str, str, Any]]) -> list[httpx.Response]:
    """Fire (method, path, token, body) all at once."""
    async with httpx.AsyncClient(base_url=f"{base_url}/api/v1", timeout=60) as client:
        start = asyncio.Event()

        async def one(method: str, path: str, token: str, body: Any) -> httpx.Response:
            await start.wait()
            return await client.request(method, path, headers=bearer(token), json=body)

        tasks = [asyncio.create_task(one(*call)) for call in calls]
        await asyncio.sleep(0.2)
        start.set()
        return list(await asyncio.gather(*tasks))


def test_fifty_waiting_ten_released_at_once_exactly_the_first_ten_are_offered(
    service: str, client: httpx.Client, admin_token: str, settings: Settings
) -> None:
    show = publish_show(client, admin_token, ga_quantity=10, max_per_order=4)
    holders = []
    for _ in range(10):
        token = register(client)
        r = order(client, token, [{"offer_id": show.ga_offer, "quantity": 1}])
        assert r.status_code == 201, r.text
        holders.append((token, r.json()["id"]))
    waiting = []
    for n in range(50):
        token = register(client)
        r = join(client, token, show.ga_offer)
        assert r.status_code == 201 and r.json()["position"] == n + 1, r.text
        waiting.append((token, r.json()["id"]))
    public = [register(client) for _ in range(5)]

    # The ten holds are cancelled at once while the public keeps trying to buy.
    calls: list[tuple[str, str, str, Any]] = [("POST", f"/orders/{o}/cancel", t, None) for t, o in holders]
    calls += [("POST", "/orders", public[i % 5], {"items": [{"offer_id": show.ga_offer, "quantity": 1}]})
              for i in range(40)]  # fmt: skip
    answers = asyncio.run(_concurrently(service, calls))
    assert [r.status_code for r in answers[:10]] == [200] * 10
    assert {(r.status_code, r.json()["code"]) for r in answers[10:]} == {(409, "sold_out")}

    def offered() -> list[str]:
        return [e for t, e in waiting if my_entry(client, t, e)["status"] == "offered"]

    wait_for(lambda: len(offered()) >= 10, what="ten offers")
    time.sleep(1)  # a duplicate promotion would show up here
    assert offered() == [e for _, e in waiting[:10]]
    for n, (token, entry_id) in enumerate(waiting[10:]):
        assert my_entry(client, token, entry_id)["position"] == n + 1
    # More public attempts after the offers: still nothing on sale.
    r = order(client, public[0], [{"offer_id": show.ga_offer, "quantity": 1}])
    assert (r.status_code, r.json()["code"]) == (409, "sold_out")

    app = open_boxoffice(settings)
    try:
        offer = app.load(UUID(show.ga_offer), "offer", Offer)
        waitlist = app.load(waitlist_id(offer.id), "waitlist", Waitlist)
        assert (offer.held, offer.sold, offer.reserved, offer.waiting) == (10, 0, 0, 40)
        assert offer.held + offer.sold + offer.reserved <= 10
        events = list(app.events.get(waitlist.id))
        offers = [e for e in events if isinstance(e, Waitlist.Offered)]
        assert [str(e.entry_id) for e in offers] == [e for _, e in waiting[:10]]
        assert len({e.order_id for e in offers}) == 10
        for e in offers:
            placed = app.load(e.order_id, "order", Order)
            assert (placed.status, placed.buyer_id, placed.ticket_count) == ("held", e.account_id, 1)
        # Replaying the offer's own events: never more out than for sale, nothing below zero.
        held = sold = reserved = 0
        for stored in app.events.get(offer.id):
            name = type(stored).__name__
            quantity = getattr(stored, "quantity", 0)
            if name == "Claimed":
                held += quantity
            elif name == "Released":
                held -= quantity
            elif name == "ReservedForWaitlist":
                reserved += quantity
            elif name == "OfferedToWaitlist":
                reserved -= quantity
                held += getattr(stored, "held", 0)
            assert min(held, sold, reserved) >= 0 and held + sold + reserved <= 10

        # A lapsed offer moves down the line: the first offer expires unpaid, the 11th is offered.
        first = offers[0]
        assert app.expire_hold(first.order_id, at=utcnow() + timedelta(hours=1))
    finally:
        app.close()
    token, entry_id = waiting[10]
    wait_for(lambda: my_entry(client, token, entry_id)["status"] == "offered", what="the 11th offered")
    wait_for(lambda: my_entry(client, *waiting[0])["status"] == "lapsed", what="the first lapsed")
    assert my_entry(client, *waiting[11])["position"] == 1
