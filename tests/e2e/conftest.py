"""Helpers for driving the running service over HTTP like a client would."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from commands.accounts import Accounts
from ticketing import Settings, create_admin, open_accounts

PASSWORD = "correct-horse-battery"


def stateless_client(base_url: str) -> httpx.Client:
    """A client that authenticates only with the Bearer tokens it is given (drops cookies)."""
    client = httpx.Client(base_url=f"{base_url}/api/v1", timeout=30)
    client.event_hooks["response"].append(lambda _: client.cookies.clear())
    return client


@pytest.fixture(scope="session")
def client(service: str) -> Iterator[httpx.Client]:
    with stateless_client(service) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(client: httpx.Client, role: str = "attendee", *, verified: bool = True) -> str:
    """A new account's access token; verified (as if it had clicked the mailed link) unless told not."""
    return register_with_email(client, role, verified=verified)[0]


def register_with_email(client: httpx.Client, role: str = "attendee", *, verified: bool = True) -> tuple[str, str]:
    email = f"{role}-{uuid4().hex[:10]}@example.com"
    r = client.post("/auth/register", json={"email": email, "username": email[:20], "password": PASSWORD, "role": role})
    assert r.status_code == 201, r.text
    if verified:
        mark_verified(UUID(r.json()["user"]["id"]))
    token: str = r.json()["access_token"]
    return token, email


def verified_token(client: httpx.Client) -> str:
    """A buyer's token minted after the address was verified (the lane takes the token's word
    for it; an older token is left to the guard, which asks the account)."""
    _, email = register_with_email(client)
    r = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def mark_verified(user_id: UUID) -> None:
    """Verify the address as the mailed link would. One accounts application serves the whole
    session (opening one, with its connection pool, per new account cost more than the rest of
    registering); after a failure it is opened again once, in case its connections died."""
    for attempt in (1, 2):
        if "app" not in _ACCOUNTS:
            _ACCOUNTS["app"] = open_accounts(Settings.from_env(_STACK_ENV))
        try:
            _ACCOUNTS["app"].mark_verified(user_id)
            return
        except Exception:
            _ACCOUNTS.pop("app").close()
            if attempt == 2:
                raise


_STACK_ENV: dict[str, str] = {}
_ACCOUNTS: dict[str, Accounts] = {}


@pytest.fixture(scope="session", autouse=True)
def _remember_stack(stack_env: dict[str, str]) -> Iterator[None]:
    _STACK_ENV.update(stack_env)
    yield
    if "app" in _ACCOUNTS:
        _ACCOUNTS.pop("app").close()


@pytest.fixture(scope="session")
def admin_token(client: httpx.Client, settings: Settings) -> str:
    email = f"admin-{uuid4().hex[:8]}@example.com"
    create_admin(settings, email=email, password=PASSWORD, username="admin")
    r = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


@dataclass
class Show:
    id: str
    organizer: str
    ga_offer: str
    seat_offer: str
    seats: list[str]


def publish_show(
    client: httpx.Client,
    admin: str,
    *,
    ga_quantity: int = 50,
    seats: int = 20,
    max_per_order: int = 10,
    organizer: str | None = None,
) -> Show:
    """Organizer flow over HTTP: venue with a seat map (admin), event, two tiers, two offers, publish."""
    venue = client.post(
        "/venues", headers=bearer(admin), json={"name": f"Hall {uuid4().hex[:6]}", "city": "Berlin", "country": "DE"}
    ).json()
    row = [{"label": str(n), "x": n, "y": 1} for n in range(1, seats + 1)]
    layout = {"sections": [{"name": "Floor", "rows": [{"label": "A", "seats": row}]}]}
    r = client.put(f"/venues/{venue['id']}/layout", headers=bearer(admin), json=layout)
    assert r.status_code == 200, r.text
    section = r.json()["sections"][0]["id"]
    organizer = organizer or register(client, "organizer")
    h = bearer(organizer)
    body = {"title": f"Show {uuid4().hex[:6]}", "description": "A night out", "venue_id": venue["id"],
            "start_time": "2031-05-01T19:00:00Z", "end_time": "2031-05-01T22:00:00Z"}  # fmt: skip
    show = client.post("/events", headers=h, json=body)
    assert show.status_code == 201, show.text
    event_id = show.json()["id"]
    ga = client.post(f"/events/{event_id}/tiers", headers=h, json={"name": "Standing", "kind": "general"}).json()
    seated = client.post(
        f"/events/{event_id}/tiers", headers=h, json={"name": "Seats", "kind": "seated", "section_ids": [section]}
    ).json()
    ga_offer = client.post(
        f"/tiers/{ga['id']}/offers",
        headers=h,
        json={
            "name": "Standing",
            "price": "25.00",
            "currency": "EUR",
            "quantity_for_sale": ga_quantity,
            "max_per_order": max_per_order,
        },
    )
    assert ga_offer.status_code == 201, ga_offer.text
    seat_offer = client.post(
        f"/tiers/{seated['id']}/offers", headers=h, json={"name": "Seat", "price": "40.00", "currency": "EUR"}
    )
    assert seat_offer.status_code == 201, seat_offer.text
    published = client.post(f"/events/{event_id}/publish", headers=h)
    assert published.status_code == 200, published.text
    seat_map = client.get(f"/events/{event_id}/seat-map").json()
    seat_ids = [s["id"] for sec in seat_map["sections"] for r in sec["rows"] for s in r["seats"]]
    return Show(event_id, organizer, ga_offer.json()["id"], seat_offer.json()["id"], seat_ids)


def order(client: httpx.Client, token: str, items: list[dict[str, Any]], **headers: str) -> httpx.Response:
    return client.post("/orders", headers={**bearer(token), **headers}, json={"items": items})


def all_pages(client: httpx.Client, path: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every item of a paginated list route, walking its pages (100 at a time)."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        sep = "&" if "?" in path else "?"
        r = client.get(f"{path}{sep}page={page}&page_size=100", headers=headers or {})
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["data"])
        if page >= body["pagination"]["total_pages"]:
            return items
        page += 1
