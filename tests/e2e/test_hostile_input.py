"""Hostile input: control characters, deep nesting, bad time zones. Each gets a clear 4xx in the
contract's shape and nothing is stored (what is stored is replayed by every read model forever)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import psycopg
import pytest

from tests.e2e.conftest import Show, bearer, publish_show, register
from ticketing import Settings

NUL = "\u0000"


def stored_events(settings: Settings) -> int:
    with psycopg.connect(settings.database_url) as conn:
        total = 0
        for table in ("boxoffice_events", "accounts_events", "inbox_events"):
            row = conn.execute(f"SELECT count(*) FROM public.{table}").fetchone()
            total += int(row[0]) if row else 0
        return total


@pytest.fixture(scope="module")
def show(client: httpx.Client, admin_token: str) -> Show:
    return publish_show(client, admin_token, ga_quantity=5, seats=3)


@pytest.fixture(scope="module")
def venue_id(client: httpx.Client, admin_token: str) -> str:
    r = client.post("/venues", headers=bearer(admin_token), json={"name": f"Hostile {uuid4().hex[:6]}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _event_body(venue_id: str, **changes: Any) -> dict[str, Any]:
    body = {"title": "Night", "venue_id": venue_id, "start_time": "2031-05-01T19:00:00Z",
            "end_time": "2031-05-01T22:00:00Z"}  # fmt: skip
    return {**body, **changes}


def test_a_nul_in_an_event_title_is_refused_with_the_field_named(
    client: httpx.Client, settings: Settings, admin_token: str, venue_id: str
) -> None:
    organizer = register(client, "organizer")
    before = stored_events(settings)
    for field, value in (("title", f"Bad{NUL}Title"), ("description", f"one{NUL}two"), ("title", "bell\u0007")):
        r = client.post("/events", headers=bearer(organizer), json=_event_body(venue_id, **{field: value}))
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["code"] == "validation_error" and field in body["field_errors"]
        assert "control character" in body["field_errors"][field][0]
    assert stored_events(settings) == before
    # Multi-line text may carry newlines and tabs; a single-line title may not.
    ok = client.post("/events", headers=bearer(organizer), json=_event_body(venue_id, description="one\n\ttwo\r\n"))
    assert ok.status_code == 201, ok.text
    assert ok.json()["description"] == "one\n\ttwo\r\n"
    bad = client.post("/events", headers=bearer(organizer), json=_event_body(venue_id, title="two\nlines"))
    assert bad.status_code == 422 and "title" in bad.json()["field_errors"]


def test_time_zones_must_be_real_iana_names(client: httpx.Client, admin_token: str, venue_id: str) -> None:
    organizer = register(client, "organizer")
    for zone in ("Mars/Olympus_Mons", f"Europe/Berlin{NUL}", "../../etc/passwd"):
        r = client.post("/events", headers=bearer(organizer), json=_event_body(venue_id, timezone=zone))
        assert r.status_code == 422 and "timezone" in r.json()["field_errors"], r.text
    r = client.post("/venues", headers=bearer(admin_token), json={"name": "Zoned", "timezone": "Nowhere/Land"})
    assert r.status_code == 422 and "timezone" in r.json()["field_errors"], r.text
    good = client.post("/events", headers=bearer(organizer), json=_event_body(venue_id, timezone="Europe/Berlin"))
    assert good.status_code == 201 and good.json()["timezone"] == "Europe/Berlin"
    event_id = good.json()["id"]
    patched = client.patch(f"/events/{event_id}", headers=bearer(organizer), json={"timezone": "Atlantis/Capital"})
    assert patched.status_code == 422 and "timezone" in patched.json()["field_errors"]


def test_names_everywhere_refuse_control_characters(
    client: httpx.Client, settings: Settings, admin_token: str, show: Show, venue_id: str
) -> None:
    org = bearer(show.organizer)
    detail = client.get(f"/events/{show.id}", headers=org).json()
    tier_id = detail["tiers"][0]["id"]
    offer_id = show.ga_offer
    someone = bearer(register(client))
    before = stored_events(settings)
    attempts: list[tuple[str, str, dict[str, Any], dict[str, str], str]] = [
        ("POST", f"/events/{show.id}/tiers", {"name": f"T{NUL}", "kind": "general"}, org, "name"),
        ("PATCH", f"/tiers/{tier_id}", {"name": f"T{NUL}"}, org, "name"),
        ("POST", f"/tiers/{tier_id}/offers", {"name": f"O{NUL}", "price": "1.00", "currency": "EUR",
                                              "quantity_for_sale": 3}, org, "name"),
        ("PATCH", f"/offers/{offer_id}", {"name": f"O{NUL}"}, org, "name"),
        ("POST", f"/events/{show.id}/attractions", {"name": f"A{NUL}"}, org, "name"),
        ("POST", f"/events/{show.id}/attractions", {"name": "Act", "description": f"x{NUL}"}, org, "description"),
        ("POST", f"/events/{show.id}/cancel", {"reason": f"r{NUL}"}, org, "reason"),
        ("POST", "/venues", {"name": f"V{NUL}"}, bearer(admin_token), "name"),
        ("PATCH", f"/venues/{venue_id}", {"city": f"C{NUL}"}, bearer(admin_token), "city"),
        ("PUT", f"/venues/{venue_id}/layout", {"sections": [{"name": "S", "rows": [{"label": "A", "seats": [
            {"label": f"1{NUL}", "x": 0, "y": 0}]}]}]}, bearer(admin_token), "sections[0].rows[0].seats[0].label"),
        ("POST", "/segments", {"name": f"Seg{NUL}"}, bearer(admin_token), "name"),
        ("POST", "/auth/register", {"email": "nul@example.com", "username": f"u{NUL}", "password": "long-enough-1"},
         {}, "username"),
        ("PATCH", "/auth/me", {"first_name": f"Ann{NUL}"}, someone, "first_name"),
        ("POST", "/auth/login", {"email": f"a{NUL}@example.com", "password": "x"}, {}, "email"),
    ]  # fmt: skip
    for method, path, body, headers, field in attempts:
        r = client.request(method, path, json=body, headers=headers)
        assert r.status_code == 422, (method, path, r.text)
        assert field in r.json()["field_errors"], (path, r.json())
    assert stored_events(settings) == before


def test_nul_in_a_query_or_path_is_a_400(client: httpx.Client, service: str) -> None:
    for path in ("/events?city=%00", "/venues?city=%00", "/events?q=a%01b", "/events?city=%C0%80",
                 "/events?q=%ff"):  # fmt: skip
        r = client.get(path)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["code"] == "bad_request"
    for path in ("/schema/assets/swagger/%00", "/schema/assets/redoc/%00x", "/api/v1/venues?city=%1b"):
        r = httpx.get(f"{service}{path}")
        assert r.status_code == 400, (path, r.text)
        assert r.json()["code"] == "bad_request"
    # A path no route matches is simply not found.
    assert httpx.get(f"{service}/api/v1/events/%00").json()["code"] == "not_found"


def _deep(depth: int) -> bytes:
    return b'{"email":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [100, 10_000])
def test_deeply_nested_json_is_a_400_on_every_json_route(
    client: httpx.Client, show: Show, admin_token: str, depth: int
) -> None:
    buyer = register(client)
    routes = [
        ("POST", "/auth/login", {}),
        ("POST", "/auth/register", {}),
        ("POST", "/orders", bearer(buyer)),
        ("POST", "/events", bearer(show.organizer)),
        ("PATCH", f"/events/{show.id}", bearer(show.organizer)),
        ("PUT", f"/venues/{uuid4()}/layout", bearer(admin_token)),
    ]
    for method, path, headers in routes:
        r = client.request(method, path, content=_deep(depth), headers={**headers, "content-type": "application/json"})
        assert r.status_code == 400, (path, r.status_code, r.text)
        assert r.json()["code"] == "too_deeply_nested"


def test_a_signed_but_deeply_nested_webhook_is_a_400(client: httpx.Client, settings: Settings) -> None:
    import hashlib
    import hmac
    import time

    for depth in (100, 100_000):
        payload = b'{"id":"evt_%s","type":"ping","deep":' % uuid4().hex.encode() + b"[" * depth + b"]" * depth + b"}"
        t = int(time.time())
        mac = hmac.new(settings.stripe_webhook_secret.encode(), b"%d." % t + payload, hashlib.sha256).hexdigest()
        headers = {"Stripe-Signature": f"t={t},v1={mac}", "content-type": "application/json"}
        r = client.post("/webhooks/stripe", content=payload, headers=headers)
        assert r.status_code == 400 and r.json()["code"] == "too_deeply_nested", r.text


def test_control_characters_in_headers_get_a_json_400(client: httpx.Client, show: Show) -> None:
    """The HTTP parser refuses them before the app sees the request; the answer keeps the shape."""
    buyer = register(client)
    for name, value in (("Idempotency-Key", "key\x01one"), ("X-Request-ID", "abc\x1b[31mred")):
        r = client.post("/orders", headers={**bearer(buyer), name: value},
                        json={"items": [{"offer_id": show.ga_offer, "quantity": 1}]})  # fmt: skip
        assert r.status_code == 400 and r.json()["code"] == "bad_request", r.text


def test_a_request_id_is_echoed_only_when_it_is_printable(client: httpx.Client) -> None:
    assert client.get("/events", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
    spaced = client.get("/events", headers={"X-Request-ID": "two words"}).headers["x-request-id"]
    assert spaced != "two words" and " " not in spaced
