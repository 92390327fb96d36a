"""Web security over HTTP: CSRF double submit for cookie sessions, login CSRF, CORS, rate limits,
security headers, and the e-mail verification guard."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID, uuid4

import httpx
import pytest

from api.app import create_app
from api.limits import RateLimits
from api.security import verified_only
from api.services import Services
from tests.conftest import start_service
from tests.e2e.conftest import PASSWORD, bearer, publish_show, register, stateless_client
from tests.e2e.test_identity import mailbox, verification_token  # noqa: F401 - fixture
from tests.mailbox import Mailbox
from ticketing import Settings, open_accounts

FRONTEND = "https://app.example.test"
LIMITS = {"login": 3, "register": 3, "forgot-password": 2, "orders": 3}


def new_email() -> str:
    return f"sec-{uuid4().hex[:12]}@example.com"


@contextmanager
def browser_session(service: str) -> Iterator[httpx.Client]:
    """A cookie-keeping client signed in as a new attendee, like a browser after login."""
    with httpx.Client(base_url=f"{service}/api/v1", timeout=30) as browser:
        r = browser.post("/auth/register", json={"email": new_email(), "username": "browser", "password": PASSWORD})
        assert r.status_code == 201, r.text
        yield browser


@pytest.fixture(scope="module")
def hardened(stack_env: dict[str, str], settings: Settings, service: str) -> Iterator[str]:
    """A second deployment on the same stack, as in production: HSTS, Secure cookies, a front-end
    origin allowed by CORS, and low rate limits (their counters are its own: the limit is part
    of the key)."""
    env = {
        **stack_env,
        "ENVIRONMENT": "production",
        "CORS_ORIGINS": FRONTEND,
        "RATE_LIMIT_LOGIN": f"{LIMITS['login']}/minute",
        "RATE_LIMIT_REGISTER": f"{LIMITS['register']}/minute",
        "RATE_LIMIT_FORGOT_PASSWORD": f"{LIMITS['forgot-password']}/minute",
        "RATE_LIMIT_ORDERS": f"{LIMITS['orders']}/minute",
    }
    with start_service(env, "e2e-security", web_workers=1) as processes:
        yield processes.base_url


# CSRF ------------------------------------------------------------------------------------------


def test_cookie_sessions_must_double_submit_the_csrf_token(service: str) -> None:
    with browser_session(service) as browser:
        assert browser.get("/auth/me").status_code == 200  # safe methods need nothing
        missing = browser.patch("/auth/me", json={"first_name": "Eve"})
        assert missing.status_code == 403 and missing.json()["code"] == "csrf_failed"

        issued = browser.get("/auth/csrf")
        assert issued.status_code == 200
        token = issued.json()["csrf_token"]
        cookie = next(c for c in issued.headers.get_list("set-cookie") if c.startswith("csrf-token="))
        assert "HttpOnly" not in cookie and "SameSite=lax" in cookie  # scripts read it; other sites don't get it
        assert browser.cookies.get("csrf-token") == token
        assert browser.get("/auth/csrf").json()["csrf_token"] == token  # tabs share one token

        forged = token[:-1] + ("1" if token.endswith("0") else "0")  # never the token itself
        wrong = browser.patch("/auth/me", json={"first_name": "Eve"}, headers={"X-CSRF-Token": forged})
        assert wrong.status_code == 403 and wrong.json()["code"] == "csrf_failed"
        ok = browser.patch("/auth/me", json={"first_name": "Eve"}, headers={"X-CSRF-Token": token})
        assert ok.status_code == 200 and ok.json()["first_name"] == "Eve"


def test_a_self_made_token_in_cookie_and_header_is_refused(service: str) -> None:
    with browser_session(service) as browser:
        browser.cookies.set("csrf-token", "a" * 80)
        r = browser.patch("/auth/me", json={"first_name": "Eve"}, headers={"X-CSRF-Token": "a" * 80})
        assert r.status_code == 403 and r.json()["code"] == "csrf_failed"


def test_bearer_requests_and_the_stripe_webhook_need_no_csrf_token(service: str) -> None:
    with browser_session(service) as browser:
        access = browser.cookies.get("auth-token")
        assert access
        # The cookie is there too, but the request is authenticated by its Authorization header.
        r = browser.patch("/auth/me", json={"last_name": "Bearer"}, headers=bearer(access))
        assert r.status_code == 200, r.text
        hook = browser.post("/webhooks/stripe", json={"id": "evt_x", "type": "payment_intent.succeeded"})
        assert hook.status_code == 400 and hook.json()["code"] == "bad_signature"


def test_login_from_a_foreign_origin_is_refused(client: httpx.Client, service: str) -> None:
    address = new_email()
    client.post("/auth/register", json={"email": address, "username": "x", "password": PASSWORD})
    credentials = {"email": address, "password": PASSWORD}
    foreign = client.post("/auth/login", json=credentials, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and foreign.json()["code"] == "csrf_failed"
    assert client.post("/auth/login", json=credentials, headers={"Origin": service}).status_code == 200
    assert client.post("/auth/login", json=credentials).status_code == 200  # not a browser


# CORS and production headers ---------------------------------------------------------------------


def test_the_configured_front_end_may_call_with_credentials(hardened: str) -> None:
    with httpx.Client(base_url=f"{hardened}/api/v1", timeout=30) as c:
        preflight = c.options(
            "/auth/me",
            headers={
                "Origin": FRONTEND,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "content-type, x-csrf-token",
            },
        )
        assert preflight.status_code == 204, preflight.text
        assert preflight.headers["access-control-allow-origin"] == FRONTEND
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert "x-csrf-token" in preflight.headers["access-control-allow-headers"].lower()

        simple = c.get("/events", headers={"Origin": FRONTEND})
        assert simple.headers["access-control-allow-origin"] == FRONTEND
        assert "x-ratelimit-remaining" in simple.headers.get("access-control-expose-headers", "").lower()

        foreign = c.options(
            "/auth/me", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PATCH"}
        )
        assert foreign.status_code == 400 and "access-control-allow-origin" not in foreign.headers
        assert "access-control-allow-origin" not in c.get("/events", headers={"Origin": "https://evil.example"}).headers


def test_production_sends_hsts_and_secure_cookies(hardened: str, service: str) -> None:
    assert "strict-transport-security" in httpx.get(f"{hardened}/health").headers
    assert "strict-transport-security" not in httpx.get(f"{service}/health").headers
    with stateless_client(hardened) as c:
        # One of this deployment's few registrations (see LIMITS); sent from its front end.
        r = c.post(
            "/auth/register",
            json={"email": new_email(), "username": "prod", "password": PASSWORD},
            headers={"Origin": FRONTEND},
        )
        assert r.status_code == 201, r.text
        cookies = r.headers.get_list("set-cookie")
        assert cookies and all("Secure" in c for c in cookies)


# Rate limits ---------------------------------------------------------------------------------------


def test_logins_over_the_limit_get_429_with_retry_after(hardened: str) -> None:
    limit = LIMITS["login"]
    with stateless_client(hardened) as c:
        answers = [c.post("/auth/login", json={"email": new_email(), "password": "x" * 8}) for _ in range(limit + 1)]
    assert [a.status_code for a in answers] == [401] * limit + [429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == [str(n) for n in range(limit - 1, -1, -1)] + ["0"]
    assert all(a.headers["x-ratelimit-limit"] == str(limit) for a in answers)
    limited = answers[-1]
    assert limited.json()["code"] == "rate_limited"
    assert 0 < int(limited.headers["retry-after"]) <= 60
    assert 0 < int(limited.headers["x-ratelimit-reset"]) <= 60


def test_each_route_has_its_own_budget(hardened: str) -> None:
    with stateless_client(hardened) as c:
        forgot = [
            c.post("/auth/forgot-password", json={"email": new_email()}) for _ in range(LIMITS["forgot-password"] + 1)
        ]
        assert [r.status_code for r in forgot] == [202] * LIMITS["forgot-password"] + [429]
        assert "retry-after" in forgot[-1].headers
        # Other routes are unaffected; unlimited ones carry no rate-limit headers.
        events = c.get("/events")
        assert events.status_code == 200 and "x-ratelimit-limit" not in events.headers


def test_registrations_over_the_limit_get_429(hardened: str) -> None:
    with stateless_client(hardened) as c:
        statuses = []
        for _ in range(LIMITS["register"] + 1):
            r = c.post("/auth/register", json={"email": new_email(), "username": "many", "password": PASSWORD})
            statuses.append(r.status_code)
    # test_production_sends_hsts_and_secure_cookies may have used one registration already.
    assert statuses[-1] == 429 and set(statuses[:-1]) <= {201, 429} and statuses.count(201) >= LIMITS["register"] - 1


def test_order_creation_is_limited_per_client(hardened: str, client: httpx.Client) -> None:
    buyer = register(client)  # registered on the main deployment: its register budget is its own
    with stateless_client(hardened) as c:
        answers = [c.post("/orders", headers=bearer(buyer), json={"items": []}) for _ in range(LIMITS["orders"] + 1)]
    assert [a.status_code for a in answers] == [422] * LIMITS["orders"] + [429]
    assert "retry-after" in answers[-1].headers


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_rate_limits_can_be_switched_off(stack_env: dict[str, str]) -> None:
    async def no_services() -> Services:
        raise AssertionError("not started")

    on = create_app(Settings.from_env(stack_env), no_services)
    off = create_app(Settings.from_env({**stack_env, "RATE_LIMITS_ENABLED": "false"}), no_services)
    assert any(isinstance(m, RateLimits) for m in on.middleware)
    assert not any(isinstance(m, RateLimits) for m in off.middleware)


# Security headers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/health", "/api/v1/events", "/api/v1/no-such-route", "/api/v1/auth/me", "/schema/openapi.json"],
)
def test_every_response_carries_the_security_headers(service: str, path: str) -> None:
    r = httpx.get(f"{service}{path}")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    if path.startswith("/api"):
        assert csp.startswith("default-src 'none'")


def test_auth_answers_are_never_cached(client: httpx.Client) -> None:
    r = client.post("/auth/register", json={"email": new_email(), "username": "nocache", "password": PASSWORD})
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(("page", "asset"), [("swagger", "swagger-ui-bundle.js"), ("redoc", "redoc.standalone.js")])
def test_api_docs_may_run_their_local_scripts(service: str, page: str, asset: str) -> None:
    html = httpx.get(f"{service}/schema/{page}")
    assert html.status_code == 200
    csp = html.headers["content-security-policy"]
    # Their inline bootstrap scripts and the bundles under /schema/assets are allowed, nothing remote.
    assert "script-src 'self' 'unsafe-inline'" in csp and "https:" not in csp
    assert f"/schema/assets/{page}/{asset}" in html.text
    assert httpx.get(f"{service}/schema/assets/{page}/{asset}").status_code == 200


# Verified e-mail -----------------------------------------------------------------------------------


def test_accounts_can_be_marked_verified_directly(client: httpx.Client, settings: Settings) -> None:
    token = register(client)
    me = client.get("/auth/me", headers=bearer(token)).json()
    accounts = open_accounts(settings)
    try:
        accounts.mark_verified(UUID(me["id"]))
        accounts.mark_verified(UUID(me["id"]))  # idempotent
    finally:
        accounts.close()
    assert client.get("/auth/me", headers=bearer(token)).json()["email_verified"] is True


def _guarded(handler: object) -> bool:
    return verified_only in (getattr(handler, "guards", None) or [])


def test_unverified_accounts_cannot_buy_until_they_verify(
    client: httpx.Client,
    admin_token: str,
    mailbox: Mailbox,  # noqa: F811 - fixture
) -> None:
    from api.orders import OrderController

    if not _guarded(OrderController.place):
        pytest.skip("verified_only is not applied to POST /orders yet")
    show = publish_show(client, admin_token)
    address = new_email()
    r = client.post("/auth/register", json={"email": address, "username": "buyer", "password": PASSWORD})
    token = r.json()["access_token"]
    item = [{"offer_id": show.ga_offer, "quantity": 1}]
    refused = client.post("/orders", headers=bearer(token), json={"items": item})
    assert refused.status_code == 403 and refused.json()["code"] == "email_not_verified"
    verify = client.post(
        "/auth/verify-email", json={"token": verification_token(mailbox.wait(address, "Confirm your e-mail address"))}
    )
    assert verify.status_code == 200
    # The token minted before verification still says unverified; the guard asks the account.
    assert client.post("/orders", headers=bearer(token), json={"items": item}).status_code == 201


def test_unverified_organizers_cannot_publish(client: httpx.Client, admin_token: str) -> None:
    from api.events import EventController

    if not _guarded(EventController.publish):
        pytest.skip("verified_only is not applied to POST /events/{id}/publish yet")
    venue = client.post("/venues", headers=bearer(admin_token), json={"name": "V", "city": "Berlin", "country": "DE"})
    r = client.post(
        "/auth/register", json={"email": new_email(), "username": "o", "password": PASSWORD, "role": "organizer"}
    )
    h = bearer(r.json()["access_token"])
    body = {"title": "Unverified", "venue_id": venue.json()["id"], "start_time": "2031-05-01T19:00:00Z",
            "end_time": "2031-05-01T22:00:00Z"}  # fmt: skip
    event_id = client.post("/events", headers=h, json=body).json()["id"]
    client.post(f"/events/{event_id}/tiers", headers=h, json={"name": "GA", "kind": "general"})
    refused = client.post(f"/events/{event_id}/publish", headers=h)
    assert refused.status_code == 403 and refused.json()["code"] == "email_not_verified"
