"""Bad input gets the documented 4xx in the documented shape, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

import httpx
import psycopg
import pytest

from tests.e2e.conftest import Show, bearer, publish_show, register
from ticketing import Settings


@pytest.fixture(scope="module")
def show(client: httpx.Client, admin_token: str) -> Show:
    return publish_show(client, admin_token, ga_quantity=5, seats=3, max_per_order=4)


@pytest.fixture(scope="module")
def buyer(client: httpx.Client) -> str:
    return register(client)


def head(settings: Settings) -> int:
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT coalesce(max(notification_id), 0) FROM public.boxoffice_events").fetchone()
        return int(row[0]) if row else 0


CASES: list[tuple[str, Callable[[Show], bytes | dict[str, object]], dict[str, str], int, str]] = [
    ("wrong type", lambda s: {"items": [{"offer_id": s.ga_offer, "quantity": "two"}]}, {}, 422, "validation_error"),
    ("unknown field", lambda s: {"items": [{"offer_id": s.ga_offer}], "coupon": "x"}, {}, 422, "validation_error"),
    ("negative quantity", lambda s: {"items": [{"offer_id": s.ga_offer, "quantity": -3}]}, {}, 422, "validation_error"),
    ("zero items", lambda s: {"items": []}, {}, 422, "validation_error"),
    ("not a uuid", lambda s: {"items": [{"offer_id": "nope"}]}, {}, 422, "validation_error"),
    ("over the per-order limit", lambda s: {"items": [{"offer_id": s.ga_offer, "quantity": 5}]}, {}, 422,
     "order_limit"),
    ("unknown offer", lambda s: {"items": [{"offer_id": str(uuid4())}]}, {}, 404, "offer_not_found"),
    ("unknown seat", lambda s: {"items": [{"offer_id": s.seat_offer, "seat_id": str(uuid4())}]}, {}, 404,
     "seat_not_found"),
    ("seat on a GA offer", lambda s: {"items": [{"offer_id": s.ga_offer, "seat_id": s.seats[0]}]}, {}, 422, "invalid"),
    ("seated offer without seat", lambda s: {"items": [{"offer_id": s.seat_offer}]}, {}, 422, "invalid"),
    ("malformed JSON", lambda s: b'{"items": [', {}, 400, "malformed_json"),
    ("oversized body", lambda s: b'{"items": "' + b"a" * 2_000_000 + b'"}', {}, 413, "body_too_large"),
    ("wrong content type", lambda s: b"items=1", {"content-type": "application/x-www-form-urlencoded"}, 415,
     "unsupported_media_type"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "body", "headers", "status", "code"), CASES, ids=[c[0] for c in CASES])
def test_bad_order_requests_are_refused_and_write_nothing(
    client: httpx.Client,
    settings: Settings,
    show: Show,
    buyer: str,
    name: str,
    body: Callable[[Show], bytes | dict[str, object]],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    before = head(settings)
    payload = body(show)
    h = {**bearer(buyer), **headers}
    if isinstance(payload, bytes):
        h.setdefault("content-type", "application/json")
        r = client.post("/orders", content=payload, headers=h)
    else:
        r = client.post("/orders", json=payload, headers=h)
    assert r.status_code == status, r.text
    error = r.json()
    assert error["code"] == code and isinstance(error["error"], str)
    if status == 422:
        assert error["field_errors"]
    assert head(settings) == before


def test_requests_without_or_with_a_bad_token_get_401(client: httpx.Client, show: Show) -> None:
    items = {"items": [{"offer_id": show.ga_offer}]}
    assert client.post("/orders", json=items).status_code == 401
    r = client.post("/orders", json=items, headers=bearer("not-a-jwt"))
    assert r.status_code == 401 and r.json()["code"] == "not_authenticated"


def test_unknown_ids_are_404_everywhere(client: httpx.Client, buyer: str) -> None:
    missing = uuid4()
    assert client.get(f"/events/{missing}").json()["code"] == "event_not_found"
    assert client.get(f"/events/{missing}/seat-map").status_code == 404
    assert client.get(f"/orders/{missing}", headers=bearer(buyer)).status_code == 404
    assert client.get(f"/venues/{missing}").status_code == 404
    assert client.get("/events/not-a-uuid").status_code in (400, 404)


def test_registration_validates_and_refuses_duplicates(client: httpx.Client) -> None:
    email = f"dup-{uuid4().hex[:8]}@example.com"
    body = {"email": email, "username": "dup", "password": "long-enough-1"}
    assert client.post("/auth/register", json=body).status_code == 201
    again = client.post("/auth/register", json={**body, "email": email.upper()})
    assert again.status_code == 409 and again.json()["code"] == "email_taken"
    short = client.post("/auth/register", json={**body, "email": "x" + email, "password": "short"})
    assert short.status_code == 422 and "password" in short.json()["field_errors"]
    admin = client.post("/auth/register", json={**body, "email": "y" + email, "role": "admin"})
    assert admin.status_code == 422
    wrong = client.post("/auth/login", json={"email": email, "password": "wrong-password"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_credentials"
