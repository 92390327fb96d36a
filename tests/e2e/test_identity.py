"""Identity over HTTP: verification mail, sessions with rotating refresh tokens, profile,
password change, and reset by mailed code; no answer tells whether an account exists."""

from __future__ import annotations

import base64
import json
import re
import statistics
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from redis import Redis

from tests.e2e.conftest import PASSWORD, bearer
from tests.mailbox import Mailbox, body

NEW_PASSWORD = "another-horse-battery"


def verification_token(message: EmailMessage) -> str:
    found = re.search(r"is:\s+(\S+)", body(message))
    assert found, body(message)
    return found.group(1)


def reset_code(message: EmailMessage) -> str:
    found = re.search(r"Your code is:\s+(\d{6})", body(message))
    assert found, body(message)
    return found.group(1)


def claims(jwt: str) -> dict[str, Any]:
    """The payload of a JWT (the service signed it; here we only read it)."""
    payload = jwt.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


@pytest.fixture(scope="module")
def mailbox(stack_env: dict[str, str]) -> Mailbox:
    directory = Path(stack_env["DATA_DIR"]) / "mail"
    if not directory.is_dir():
        pytest.skip("mail goes to an external SMTP server, not the development sink")
    return Mailbox(directory)


@pytest.fixture(scope="module")
def redis(stack_env: dict[str, str]) -> Iterator[Redis]:
    client = Redis.from_url(stack_env["REDIS_URL"])
    yield client
    client.close()


def new_email() -> str:
    return f"id-{uuid4().hex[:12]}@example.com"


def sign_up(client: httpx.Client, address: str, role: str = "attendee") -> dict[str, Any]:
    r = client.post(
        "/auth/register", json={"email": address, "username": "someone", "password": PASSWORD, "role": role}
    )
    assert r.status_code == 201, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


def login(client: httpx.Client, address: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/auth/login", json={"email": address, "password": password})


def test_registration_mails_a_single_use_token_that_verifies_the_address(
    client: httpx.Client, mailbox: Mailbox
) -> None:
    address = new_email()
    tokens = sign_up(client, address, "organizer")
    assert tokens["user"]["email_verified"] is False and tokens["user"]["role"] == "organizer"
    assert claims(tokens["access_token"])["extras"]["email_verified"] is False

    mail = mailbox.wait(address, "Confirm your e-mail address")
    token = verification_token(mail)
    verified = client.post("/auth/verify-email", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"email_verified": True}

    again = client.post("/auth/verify-email", json={"token": token})
    assert again.status_code == 422 and again.json()["code"] == "invalid_token"
    me = client.get("/auth/me", headers=bearer(tokens["access_token"])).json()
    assert me["email_verified"] is True
    # The next access token says so too.
    refreshed = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert claims(refreshed.json()["access_token"])["extras"]["email_verified"] is True


def test_a_made_up_verification_token_is_rejected(client: httpx.Client) -> None:
    r = client.post("/auth/verify-email", json={"token": "not-a-token"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_token"


def test_verification_tokens_expire_after_a_day(client: httpx.Client, mailbox: Mailbox, redis: Redis) -> None:
    address = new_email()
    sign_up(client, address)
    mailbox.wait(address, "Confirm your e-mail address")
    ttls = [redis.ttl(key) for key in redis.scan_iter("verify:*")]
    assert ttls and all(0 < ttl <= 24 * 3600 for ttl in ttls)


def test_resend_verification_answers_the_same_for_any_address(client: httpx.Client, mailbox: Mailbox) -> None:
    address = new_email()
    sign_up(client, address)
    known = client.post("/auth/resend-verification", json={"email": address})
    unknown = client.post("/auth/resend-verification", json={"email": new_email()})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    # The second token works as well as the first.
    second = mailbox.wait(address, "Confirm your e-mail address", count=2)
    assert client.post("/auth/verify-email", json={"token": verification_token(second)}).status_code == 200


def test_login_failures_do_not_tell_whether_the_account_exists(client: httpx.Client) -> None:
    address = new_email()
    sign_up(client, address)
    wrong_password = login(client, address, "wrong-password-1")
    no_account = login(client, new_email(), "wrong-password-1")
    assert wrong_password.status_code == no_account.status_code == 401
    assert wrong_password.json() == no_account.json()

    def median_seconds(address: str) -> float:
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            login(client, address, "wrong-password-1")
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    # Both hash the password (argon2), so neither is much faster than the other.
    existing, missing = median_seconds(address), median_seconds(new_email())
    assert 1 / 3 < existing / missing < 3, (existing, missing)


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_session(client: httpx.Client) -> None:
    address = new_email()
    first = sign_up(client, address)
    second = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    pair = second.json()
    assert pair["refresh_token"] != first["refresh_token"] and pair["token_type"] == "bearer"
    assert client.get("/auth/me", headers=bearer(pair["access_token"])).status_code == 200

    reused = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and reused.json()["code"] == "refresh_token_reused"
    # The thief's use burnt the family: the legitimate newest token is dead too.
    latest = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert latest.status_code == 401
    # Other sessions of the same account are untouched.
    other = login(client, address).json()
    assert client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]}).status_code == 200


def test_refresh_rejects_garbage_and_access_tokens(client: httpx.Client) -> None:
    tokens = sign_up(client, new_email())
    for candidate in ("garbage", tokens["access_token"]):
        r = client.post("/auth/refresh", json={"refresh_token": candidate})
        assert r.status_code == 401 and r.json()["code"] == "invalid_refresh_token"
    assert client.post("/auth/refresh").status_code == 401


def test_refresh_from_the_cookie_needs_the_csrf_header(service: str) -> None:
    with httpx.Client(base_url=f"{service}/api/v1", timeout=30) as browser:
        sign_up(browser, new_email())
        assert browser.cookies.get("refresh-token")
        refused = browser.post("/auth/refresh")
        assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
        csrf = browser.get("/auth/csrf").json()["csrf_token"]
        old_refresh = browser.cookies.get("refresh-token")
        renewed = browser.post("/auth/refresh", headers={"X-CSRF-Token": csrf})
        assert renewed.status_code == 200, renewed.text
        assert browser.cookies.get("refresh-token") not in (None, old_refresh)
        assert browser.get("/auth/me").status_code == 200


def test_logout_ends_the_session_and_clears_the_cookies(client: httpx.Client, service: str) -> None:
    tokens = sign_up(client, new_email())
    out = client.post("/auth/logout", headers=bearer(tokens["access_token"]))
    assert out.status_code == 200, out.text
    cleared = {c.split("=", 1)[0] for c in out.headers.get_list("set-cookie")}
    assert {"auth-token", "refresh-token"} <= cleared
    assert "Path=/api/v1/auth" in next(c for c in out.headers.get_list("set-cookie") if c.startswith("refresh-token"))
    r = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401

    with httpx.Client(base_url=f"{service}/api/v1", timeout=30) as browser:
        sign_up(browser, new_email())
        csrf = browser.get("/auth/csrf").json()["csrf_token"]
        refresh = browser.cookies.get("refresh-token")
        assert browser.post("/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
        assert browser.get("/auth/me").status_code == 401
        assert client.post("/auth/refresh", json={"refresh_token": refresh}).status_code == 401


def test_profile_can_be_read_and_changed_but_never_shows_the_password(client: httpx.Client) -> None:
    address = new_email()
    h = bearer(sign_up(client, address)["access_token"])
    me = client.get("/auth/me", headers=h)
    assert me.status_code == 200 and "password" not in me.text.lower()
    changed = client.patch("/auth/me", headers=h, json={"first_name": "Ada", "last_name": "Lovelace", "phone": "+49 1"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["first_name"] == "Ada" and changed.json()["username"] == "someone"
    renamed = client.patch("/auth/me", headers=h, json={"username": "ada"}).json()
    assert (renamed["username"], renamed["last_name"], renamed["phone"]) == ("ada", "Lovelace", "+49 1")
    for forbidden in ({"role": "admin"}, {"email": "x@example.com"}, {"password_hash": "x"}, {"username": ""}):
        r = client.patch("/auth/me", headers=h, json=forbidden)
        assert r.status_code == 422, (forbidden, r.text)
    assert client.get("/auth/me", headers=h).json()["role"] == "attendee"


def test_changing_the_password_ends_the_other_sessions(client: httpx.Client) -> None:
    address = new_email()
    here = sign_up(client, address)
    elsewhere = login(client, address).json()
    wrong = client.post(
        "/auth/change-password",
        headers=bearer(here["access_token"]),
        json={"old_password": "not-my-password", "new_password": NEW_PASSWORD},
    )
    assert wrong.status_code == 422 and wrong.json()["code"] == "wrong_password"
    changed = client.post(
        "/auth/change-password",
        headers=bearer(here["access_token"]),
        json={"old_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 200, changed.text
    assert client.post("/auth/refresh", json={"refresh_token": elsewhere["refresh_token"]}).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": here["refresh_token"]}).status_code == 401
    # This session continues with the pair it got back.
    assert client.post("/auth/refresh", json={"refresh_token": changed.json()["refresh_token"]}).status_code == 200
    assert login(client, address).status_code == 401
    assert login(client, address, NEW_PASSWORD).status_code == 200


def test_forgot_password_answers_the_same_for_any_address(client: httpx.Client, mailbox: Mailbox) -> None:
    address = new_email()
    sign_up(client, address)
    known = client.post("/auth/forgot-password", json={"email": address})
    unknown = client.post("/auth/forgot-password", json={"email": new_email()})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert reset_code(mailbox.wait(address, "Your password reset code"))


def test_a_mailed_code_resets_the_password_once_and_ends_every_session(
    client: httpx.Client, mailbox: Mailbox, redis: Redis
) -> None:
    address = new_email()
    session = sign_up(client, address)
    client.post("/auth/forgot-password", json={"email": address})
    code = reset_code(mailbox.wait(address, "Your password reset code"))
    assert 0 < redis.ttl(f"reset:{session['user']['id']}") <= 15 * 60

    reset = client.post("/auth/reset-password", json={"email": address, "code": code, "new_password": NEW_PASSWORD})
    assert reset.status_code == 200, reset.text
    again = client.post("/auth/reset-password", json={"email": address, "code": code, "new_password": PASSWORD})
    assert again.status_code == 422 and again.json()["code"] == "invalid_code"
    assert login(client, address).status_code == 401
    signed_in = login(client, address, NEW_PASSWORD)
    assert signed_in.status_code == 200
    # The code reached the mailbox, so the address counts as verified.
    assert signed_in.json()["user"]["email_verified"] is True
    assert client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]}).status_code == 401


def test_five_wrong_codes_burn_the_reset_code(client: httpx.Client, mailbox: Mailbox) -> None:
    address = new_email()
    sign_up(client, address)
    client.post("/auth/forgot-password", json={"email": address})
    code = reset_code(mailbox.wait(address, "Your password reset code"))
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        r = client.post("/auth/reset-password", json={"email": address, "code": wrong, "new_password": NEW_PASSWORD})
        assert r.status_code == 422 and r.json()["code"] == "invalid_code"
    burnt = client.post("/auth/reset-password", json={"email": address, "code": code, "new_password": NEW_PASSWORD})
    assert burnt.status_code == 422
    assert login(client, address).status_code == 200

    # A new request mails a new code that works.
    client.post("/auth/forgot-password", json={"email": address})
    fresh = reset_code(mailbox.wait(address, "Your password reset code", count=2))
    ok = client.post("/auth/reset-password", json={"email": address, "code": fresh, "new_password": NEW_PASSWORD})
    assert ok.status_code == 200, ok.text


def test_reset_for_an_unknown_address_looks_like_a_wrong_code(client: httpx.Client) -> None:
    r = client.post("/auth/reset-password", json={"email": new_email(), "code": "123456", "new_password": NEW_PASSWORD})
    assert r.status_code == 422 and r.json()["code"] == "invalid_code"
    malformed = client.post("/auth/reset-password", json={"email": new_email(), "code": "12ab", "new_password": "x"})
    assert malformed.status_code == 422
