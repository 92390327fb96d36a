"""The HTTP edge in production shape: rate limits behind a trusted proxy, per account and for
failed logins only; /metrics and the detail of /ready behind a token; oversized headers; ticket
codes that outlive a rotated JWT secret (TICKET_SIGNING_KEY).

The `edge` deployment runs on the same stack as the main one, with low limits, a trusted proxy
(127.0.0.1, where the tests connect from), a metrics token and its own JWT secret.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit
from uuid import uuid4

import httpx
import pytest

from tests.conftest import start_service
from tests.e2e.conftest import PASSWORD, bearer, register, register_with_email, stateless_client
from tests.e2e.door_helpers import day_pass_show, free_tickets
from ticketing import Settings, create_admin
from workers.supervisor import proxy_options

LOGINS, ORDERS = 3, 3
METRICS_TOKEN = "metrics-" + "m" * 32


@pytest.fixture(scope="module")
def edge(stack_env: dict[str, str], settings: Settings, service: str) -> Iterator[str]:
    env = {
        **stack_env,
        "TRUSTED_PROXIES": "127.0.0.1/32, ::1",
        "METRICS_TOKEN": METRICS_TOKEN,
        "JWT_SECRET": "rotated-" + "r" * 40,
        "RATE_LIMIT_LOGIN": f"{LOGINS}/minute",
        "RATE_LIMIT_ORDERS": f"{ORDERS}/minute",
    }
    with start_service(env, "e2e-edge", web_workers=1) as processes:
        yield processes.base_url


def forwarded(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def login(c: httpx.Client, email: str, password: str, address: str) -> httpx.Response:
    return c.post("/auth/login", json={"email": email, "password": password}, headers=forwarded(address))


# Rate limits ---------------------------------------------------------------------------------


def test_proxy_headers_are_read_only_from_trusted_proxies() -> None:
    assert proxy_options("") == ["--no-proxy-headers"]
    assert proxy_options(" 10.0.0.0/8 , 192.168.1.1") == [
        "--proxy-headers",
        "--forwarded-allow-ips",
        "10.0.0.0/8,192.168.1.1",
    ]
    assert Settings.from_env({"TRUSTED_PROXIES": "10.0.0.1/8, ::1"}).trusted_proxies == ("10.0.0.0/8", "::1/128")
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        Settings.from_env({"TRUSTED_PROXIES": "proxy.example.com"})


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_login_budget(edge: str) -> None:
    with stateless_client(edge) as c:
        first = [
            login(c, f"nobody-{uuid4().hex}@example.com", "wrong-password", "203.0.113.7") for _ in range(LOGINS + 1)
        ]
        assert [r.status_code for r in first] == [401] * LOGINS + [429]
        # Another client behind the same proxy is not refused; the first still is.
        assert login(c, f"nobody-{uuid4().hex}@example.com", "wrong-password", "203.0.113.8").status_code == 401
        assert login(c, f"nobody-{uuid4().hex}@example.com", "wrong-password", "203.0.113.7").status_code == 429


def test_successful_logins_do_not_spend_the_login_limit(edge: str, client: httpx.Client) -> None:
    _, email = register_with_email(client)
    with stateless_client(edge) as c:
        answers = [login(c, email, PASSWORD, "198.51.100.20") for _ in range(LOGINS * 3)]
        assert [r.status_code for r in answers] == [200] * (LOGINS * 3)
        assert answers[-1].headers["x-ratelimit-remaining"] == str(LOGINS)


def test_failed_logins_of_one_account_are_limited_from_any_address(edge: str, client: httpx.Client) -> None:
    _, email = register_with_email(client)
    with stateless_client(edge) as c:
        failed = [login(c, email, "wrong-password", f"198.51.100.{30 + n}") for n in range(LOGINS)]
        assert [r.status_code for r in failed] == [401] * LOGINS
        assert failed[-1].json()["code"] == "invalid_credentials" and failed[-1].headers["x-ratelimit-remaining"] == "0"
        # Guessing on from a fresh address, even with the right password, waits for the window.
        refused = login(c, email, PASSWORD, "198.51.100.99")
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
        assert 0 < int(refused.headers["retry-after"]) <= 60
        # Other accounts from that address are not affected.
        _, other = register_with_email(client)
        assert login(c, other, PASSWORD, "198.51.100.99").status_code == 200


def test_order_limits_are_per_account_not_per_address(edge: str, client: httpx.Client) -> None:
    with stateless_client(edge) as c:
        tokens = []
        for _ in range(2):
            _, email = register_with_email(client)
            tokens.append(login(c, email, PASSWORD, "192.0.2.50").json()["access_token"])
        first, second = tokens
        # Both buyers come from the same address (one carrier NAT): each has its own budget.
        a = [c.post("/orders", headers=bearer(first), json={"items": []}) for _ in range(ORDERS + 1)]
        assert [r.status_code for r in a] == [422] * ORDERS + [429]
        assert "retry-after" in a[-1].headers
        b = c.post("/orders", headers=bearer(second), json={"items": []})
        assert b.status_code == 422 and b.headers["x-ratelimit-remaining"] == str(ORDERS - 1)
        # A different address does not give the first buyer a new budget.
        again = c.post("/orders", headers={**bearer(first), **forwarded("192.0.2.51")}, json={"items": []})
        assert again.status_code == 429


# /metrics and /ready ---------------------------------------------------------------------------


def test_metrics_need_the_metrics_token_or_an_admin(edge: str, settings: Settings) -> None:
    with httpx.Client(base_url=edge, timeout=30) as c:
        for headers in ({}, bearer("wrong-token"), bearer(METRICS_TOKEN + "x")):
            refused = c.get("/metrics", headers=headers)
            assert refused.status_code == 401 and refused.json()["code"] == "not_authenticated"
            assert "ticketing_requests" not in refused.text
        scraped = c.get("/metrics", headers=bearer(METRICS_TOKEN))
        assert scraped.status_code == 200 and "ticketing_requests" in scraped.text
        # An admin may look too; a buyer may not.
        with stateless_client(edge) as api:
            admin = admin_on(api, settings)
            _, email = register_with_email(api)
            buyer = login(api, email, PASSWORD, "192.0.2.77").json()["access_token"]
        assert c.get("/metrics", headers=bearer(admin)).status_code == 200
        assert c.get("/metrics", headers=bearer(buyer)).status_code == 401


def test_ready_tells_the_public_only_ready_or_not(edge: str, settings: Settings) -> None:
    with httpx.Client(base_url=edge, timeout=30) as c:
        public = c.get("/ready")
        assert public.status_code == 200 and public.json() == {"status": "ok"}
        detail = c.get("/ready", headers=bearer(METRICS_TOKEN)).json()
        assert detail["status"] == "ok" and detail["database"] is True and detail["redis"] is True
        assert isinstance(detail["event_store_position"], int) and isinstance(detail["read_model_position"], int)
        assert "projection_error_list" in detail
        with stateless_client(edge) as api:
            admin = admin_on(api, settings)
        assert "read_model_position" in c.get("/ready", headers=bearer(admin)).json()
        assert c.get("/health").json() == {"status": "ok"}


def admin_on(api: httpx.Client, settings: Settings) -> str:
    """A new admin's access token, signed by the deployment `api` talks to."""
    email = f"admin-{uuid4().hex[:8]}@example.com"
    create_admin(settings, email=email, password=PASSWORD, username="admin")
    token: str = login(api, email, PASSWORD, "192.0.2.200").json()["access_token"]
    return token


# Oversized request heads -----------------------------------------------------------------------


def raw_request(base_url: str, head: bytes) -> bytes:
    """Send `head` over a plain socket (as much of it as the server reads) and return its answer."""
    url = urlsplit(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        # Refused before the end: the answer was sent already.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and b'"}' in answer:
                    break
        return answer


@pytest.mark.parametrize("header_bytes", [20 * 1024, 8 * 1024 * 1024])
def test_oversized_request_headers_get_431(service: str, header_bytes: int) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * header_bytes + b"\r\n\r\n"
    answer = raw_request(service, head)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"code":"headers_too_large"' in answer and b"connection: close" in answer.lower()


def test_many_headers_count_together(service: str) -> None:
    padding = b"".join(b"X-Pad-%d: %s\r\n" % (n, b"b" * 1000) for n in range(20))
    answer = raw_request(service, b"GET /health HTTP/1.1\r\nHost: x\r\n" + padding + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_headers_under_the_limit_are_served_on_a_kept_alive_connection(service: str) -> None:
    with httpx.Client(base_url=service, timeout=30) as c:
        for _ in range(3):  # one connection: each request's head is counted on its own
            r = c.get("/health", headers={"X-Padding": "c" * 12 * 1024})
            assert r.status_code == 200 and r.json() == {"status": "ok"}


# Ticket codes and the JWT secret -------------------------------------------------------------------


def test_the_ticket_key_is_its_own_secret(tmp_path: Path) -> None:
    env = {"DATA_DIR": str(tmp_path), "JWT_SECRET": "first-" + "j" * 40}
    key = Settings.from_env(env).ticket_signing_key
    assert key and key != env["JWT_SECRET"] and (tmp_path / "ticket-signing-key").read_text() == key
    # Generated once in development: a new JWT secret (or a restart) keeps it.
    assert Settings.from_env({**env, "JWT_SECRET": "second-" + "j" * 40}).ticket_signing_key == key
    assert Settings.from_env({**env, "TICKET_SIGNING_KEY": "set-" + "k" * 40}).ticket_signing_key == "set-" + "k" * 40
    with pytest.raises(ValueError, match="TICKET_SIGNING_KEY is not set"):
        Settings.from_env({**env, "ENVIRONMENT": "production"})


def test_tickets_stay_valid_after_the_jwt_secret_is_rotated(
    edge: str, client: httpx.Client, admin_token: str, settings: Settings
) -> None:
    """Tickets issued by the main deployment are admitted by the edge one, whose JWT secret differs
    (as after a rotation): codes are signed with TICKET_SIGNING_KEY, not with JWT_SECRET."""
    show = day_pass_show(client, admin_token, days=1)
    buyer = register(client)
    (ticket,) = free_tickets(client, buyer, [{"offer_id": show.offers[show.days[0]], "quantity": 1}])
    with stateless_client(edge) as api:
        # The old secret's tokens are refused there; the ticket code is not.
        assert api.get("/auth/me", headers=bearer(buyer)).status_code == 401
        scanner = admin_on(api, settings)
        scanned = api.post(f"/events/{show.id}/check-ins", headers=bearer(scanner), json={"qr_data": ticket["qr_data"]})
        assert scanned.status_code == 200, scanned.text
        again = api.post(f"/events/{show.id}/check-ins", headers=bearer(scanner), json={"qr_data": ticket["qr_data"]})
        assert again.status_code == 409 and again.json()["code"] == "already_checked_in"
