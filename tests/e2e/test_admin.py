"""Admin and organizer extras (API.md): accounts (list, role, disabled), category rename and
delete, slug lookup, and the organizer's Stripe Connect onboarding link (development stand-in)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx

from tests.e2e.conftest import PASSWORD, bearer, register, register_with_email


def me(client: httpx.Client, token: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/auth/me", headers=bearer(token)).json()
    return body


def test_accounts_are_listed_filtered_and_paged(client: httpx.Client, admin_token: str) -> None:
    token, email = register_with_email(client, "organizer")
    account = me(client, token)
    r = client.get("/admin/accounts", headers=bearer(admin_token), params={"q": email[5:].upper()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [a["id"] for a in body["data"]] == [account["id"]]
    assert body["data"][0] | {"role": "organizer", "disabled": False, "email": email} == body["data"][0]
    assert body["pagination"]["total_items"] == 1
    r = client.get("/admin/accounts", headers=bearer(admin_token), params={"q": email, "role": "attendee"})
    assert r.json()["data"] == []
    r = client.get("/admin/accounts", headers=bearer(admin_token), params={"role": "admin", "page_size": 1})
    assert r.json()["pagination"]["page_size"] == 1 and r.json()["pagination"]["total_items"] >= 1
    assert client.get(f"/admin/accounts/{account['id']}", headers=bearer(admin_token)).json()["email"] == email


def test_account_routes_need_an_admin_and_valid_input(client: httpx.Client, admin_token: str) -> None:
    attendee = register(client)
    assert client.get("/admin/accounts").status_code == 401
    r = client.get("/admin/accounts", headers=bearer(attendee))
    assert r.status_code == 403 and "code" in r.json()
    r = client.get(f"/admin/accounts/{uuid4()}", headers=bearer(admin_token))
    assert r.status_code == 404 and r.json()["code"] == "account_not_found"
    target = me(client, attendee)["id"]
    for body in ({"role": "root"}, {"disabled": "yes"}, {"colour": "red"}):
        r = client.patch(f"/admin/accounts/{target}", headers=bearer(admin_token), json=body)
        assert r.status_code == 422, (body, r.text)
    assert client.get("/admin/accounts", headers=bearer(admin_token), params={"role": "root"}).status_code == 422
    myself = me(client, admin_token)["id"]
    r = client.patch(f"/admin/accounts/{myself}", headers=bearer(admin_token), json={"disabled": True})
    assert r.status_code == 422 and r.json()["code"] == "invalid"
    r = client.patch(f"/admin/accounts/{uuid4()}", headers=bearer(admin_token), json={"role": "organizer"})
    assert r.status_code == 404


def test_a_disabled_account_cannot_sign_in_or_refresh(client: httpx.Client, admin_token: str) -> None:
    token, email = register_with_email(client)
    account = me(client, token)["id"]
    login = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200
    refresh_token = login.json()["refresh_token"]

    r = client.patch(f"/admin/accounts/{account}", headers=bearer(admin_token), json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    r = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 401 and r.json()["code"] == "account_disabled"
    r = client.post("/auth/login", json={"email": email, "password": "wrong-password!"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"  # no hint without the password
    assert client.post("/auth/refresh", json={"refresh_token": refresh_token}).status_code == 401

    r = client.patch(f"/admin/accounts/{account}", headers=bearer(admin_token), json={"disabled": False})
    assert r.json()["disabled"] is False
    assert client.post("/auth/login", json={"email": email, "password": PASSWORD}).status_code == 200


def test_a_role_change_shows_in_the_next_sign_in(client: httpx.Client, admin_token: str) -> None:
    token, email = register_with_email(client)
    account = me(client, token)["id"]
    r = client.patch(f"/admin/accounts/{account}", headers=bearer(admin_token), json={"role": "organizer"})
    assert r.status_code == 200 and r.json()["role"] == "organizer"
    login = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert login.json()["user"]["role"] == "organizer"


def test_categories_are_renamed_resolved_and_deleted_when_unused(client: httpx.Client, admin_token: str) -> None:
    admin = bearer(admin_token)
    tag = uuid4().hex[:8]
    segment = client.post("/segments", headers=admin, json={"name": f"Seg {tag}"}).json()
    genre = client.post(f"/segments/{segment['id']}/genres", headers=admin, json={"name": f"Gen {tag}"}).json()
    sibling = client.post(f"/segments/{segment['id']}/genres", headers=admin, json={"name": f"Sib {tag}"}).json()

    r = client.patch(f"/genres/{genre['id']}", headers=admin, json={"name": f"Jazz & Blues {tag}"})
    assert r.status_code == 200, r.text
    assert r.json()["slug"] == f"jazz-blues-{tag}" and r.json()["id"] == genre["id"]
    assert client.get(f"/categories/jazz-blues-{tag}").json()["id"] == genre["id"]
    assert client.get(f"/categories/gen-{tag}").status_code == 404
    r = client.patch(f"/genres/{genre['id']}", headers=admin, json={"name": f"SIB {tag}"})
    assert r.status_code == 409 and r.json()["code"] == "category_exists"
    for bad in ({"name": "  "}, {"name": "--"}, {}, {"name": "x" * 101}):
        assert client.patch(f"/genres/{genre['id']}", headers=admin, json=bad).status_code == 422, bad
    # The wrong level, or nothing at all, is 404.
    assert client.patch(f"/segments/{genre['id']}", headers=admin, json={"name": "X"}).status_code == 404
    assert client.delete(f"/sub-genres/{uuid4()}", headers=admin).status_code == 404

    r = client.delete(f"/segments/{segment['id']}", headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "category_in_use"
    assert client.delete(f"/genres/{genre['id']}", headers=admin).status_code == 204
    assert client.delete(f"/genres/{sibling['id']}", headers=admin).status_code == 204
    assert client.get(f"/categories/jazz-blues-{tag}").status_code == 404
    assert client.delete(f"/segments/{segment['id']}", headers=admin).status_code == 204
    listed = client.get("/segments", params={"page_size": 100}).json()["data"]
    assert segment["id"] not in [s["id"] for s in listed]
    assert client.delete(f"/segments/{segment['id']}", headers=admin).status_code == 404


def test_a_category_with_events_is_not_deleted(client: httpx.Client, admin_token: str) -> None:
    admin = bearer(admin_token)
    segment = client.post("/segments", headers=admin, json={"name": f"Used {uuid4().hex[:8]}"}).json()
    venue = client.post("/venues", headers=admin, json={"name": "Hall", "city": "Berlin", "country": "DE"}).json()
    organizer = register(client, "organizer")
    r = client.post(
        "/events",
        headers=bearer(organizer),
        json={"title": "Filed", "venue_id": venue["id"], "segment_id": segment["id"],
              "start_time": "2031-06-01T19:00:00Z", "end_time": "2031-06-01T22:00:00Z"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    r = client.delete(f"/segments/{segment['id']}", headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "category_in_use"


def test_the_onboarding_link_makes_one_payout_account(client: httpx.Client) -> None:
    organizer = register(client, "organizer")
    first = client.post("/organizer/stripe/onboarding-link", headers=bearer(organizer))
    assert first.status_code == 200, first.text
    assert first.json()["url"].startswith("http") and first.json()["account"].startswith("acct_")
    again = client.post("/organizer/stripe/onboarding-link", headers=bearer(organizer))
    assert again.json()["account"] == first.json()["account"]
    assert client.post("/organizer/stripe/onboarding-link", headers=bearer(register(client))).status_code == 403
    assert client.post("/organizer/stripe/onboarding-link").status_code == 401


def test_names_freed_by_a_rename_or_a_delete_can_be_used_again(client: httpx.Client, admin_token: str) -> None:
    admin = bearer(admin_token)
    tag = uuid4().hex[:8]
    first = client.post("/segments", headers=admin, json={"name": f"Old {tag}"}).json()
    assert client.patch(f"/segments/{first['id']}", headers=admin, json={"name": f"New {tag}"}).status_code == 200
    again = client.post("/segments", headers=admin, json={"name": f"Old {tag}"})
    assert again.status_code == 201, again.text
    assert again.json()["id"] != first["id"] and again.json()["slug"] == f"old-{tag}"
    r = client.post("/segments", headers=admin, json={"name": f"NEW {tag}"})  # the renamed one has it now
    assert r.status_code == 409 and r.json()["code"] == "category_exists"
    assert client.delete(f"/segments/{again.json()['id']}", headers=admin).status_code == 204
    third = client.post("/segments", headers=admin, json={"name": f"Old {tag}"})
    assert third.status_code == 201 and client.get(f"/categories/old-{tag}").json()["id"] == third.json()["id"]
