"""The admin pages over HTTP (test_web.py's style): admins only, forms with their CSRF token,
the same commands as the JSON routes; a layout file uploaded and previewed as SVG."""

from __future__ import annotations

import json
import re
from uuid import uuid4

import httpx

from tests.e2e.conftest import PASSWORD, bearer, register_with_email
from tests.e2e.test_web import sign_in, web  # noqa: F401
from ticketing import Settings, create_admin


def admin_session(web: httpx.Client, settings: Settings) -> None:  # noqa: F811
    email = f"admin-{uuid4().hex[:8]}@example.com"
    create_admin(settings, email=email, password=PASSWORD, username="admin")
    assert sign_in(web, email, "/admin").status_code == 303


def test_admin_pages_are_for_admins_only(web: httpx.Client, client: httpx.Client) -> None:  # noqa: F811
    r = web.get("/admin")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fadmin"
    _, email = register_with_email(client, "organizer")
    sign_in(web, email)
    assert web.get("/admin").status_code == 403
    assert web.post("/admin/categories", data={"_csrf": web.cookies["csrf-token"], "name": "X"}).status_code == 403


def test_an_admin_searches_accounts_and_disables_one(
    web: httpx.Client,  # noqa: F811
    client: httpx.Client,
    settings: Settings,
) -> None:
    token, email = register_with_email(client)
    account = client.get("/auth/me", headers=bearer(token)).json()["id"]
    admin_session(web, settings)
    page = web.get("/admin", params={"q": email})
    assert page.status_code == 200 and email in page.text and "<script>" not in page.text
    form = {"role": "organizer", "disabled": "yes"}
    assert web.post(f"/admin/accounts/{account}", data=form).status_code == 403  # no CSRF field
    r = web.post(f"/admin/accounts/{account}", data={**form, "_csrf": web.cookies["csrf-token"]})
    assert r.status_code == 303
    assert client.post("/auth/login", json={"email": email, "password": PASSWORD}).json()["code"] == "account_disabled"
    r = web.post(f"/admin/accounts/{account}", data={"role": "root", "_csrf": web.cookies["csrf-token"]})
    assert r.status_code == 422 and "Unknown role" in r.text


def test_an_admin_edits_categories_and_uploads_a_layout(
    web: httpx.Client,  # noqa: F811
    client: httpx.Client,
    admin_token: str,
    settings: Settings,
) -> None:
    admin_session(web, settings)
    csrf = web.cookies["csrf-token"]
    tag = uuid4().hex[:8]
    assert web.post("/admin/categories", data={"_csrf": csrf, "name": f"Page seg {tag}"}).status_code == 303
    segment = client.get(f"/categories/page-seg-{tag}").json()
    r = web.post("/admin/categories", data={"_csrf": csrf, "name": f"Page gen {tag}", "parent_id": segment["id"]})
    assert r.status_code == 303
    genre = client.get(f"/categories/page-gen-{tag}").json()
    assert genre["parent_id"] == segment["id"]
    r = web.post(f"/admin/categories/{segment['id']}", data={"_csrf": csrf, "delete": "yes"})
    assert r.status_code == 409 and "in use" in r.text
    r = web.post(f"/admin/categories/{genre['id']}", data={"_csrf": csrf, "name": f"Renamed {tag}"})
    assert r.status_code == 303 and client.get(f"/categories/renamed-{tag}").json()["id"] == genre["id"]
    assert f"renamed-{tag}" in web.get("/admin").text

    venue = client.post("/venues", headers=bearer(admin_token), json={"name": "Stage", "city": "Wien"}).json()
    layout = {"sections": [{"name": "Stalls", "rows": [{"label": "A", "seats": [
        {"label": "1", "x": 0, "y": 0}, {"label": "2", "x": 1, "y": 0, "accessible": True}]}]}]}  # fmt: skip
    files = {"layout": ("hall.json", json.dumps(layout).encode(), "application/json")}
    assert web.post(f"/admin/venues/{venue['id']}/layout", files=files).status_code == 403  # no CSRF field
    r = web.post(f"/admin/venues/{venue['id']}/layout", data={"_csrf": csrf}, files=files)
    assert r.status_code == 303, r.text
    page = web.get(f"/admin/venues/{venue['id']}")
    assert page.status_code == 200 and len(re.findall(r"<circle ", page.text)) == 2 and " style=" not in page.text
    assert client.get(f"/venues/{venue['id']}").json()["seat_count"] == 2
    bad = {"layout": ("bad.json", b'{"sections": [{"name": "X"}]}', "application/json")}
    r = web.post(f"/admin/venues/{venue['id']}/layout", data={"_csrf": csrf}, files=bad)
    assert r.status_code == 422 and "not a layout" in r.text
    junk = {"layout": ("bad.json", b"\xff\x00not json", "application/json")}
    assert web.post(f"/admin/venues/{venue['id']}/layout", data={"_csrf": csrf}, files=junk).status_code == 422
    form = web.post(f"/admin/venues/{venue['id']}/layout", data={"_csrf": csrf})
    assert form.status_code in (415, 422)
