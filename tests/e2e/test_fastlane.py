"""The fast lane for POST /orders answers exactly as the Litestar handler does.

The app is run in this process (the service's own factory, the test stack's Postgres, Redis and
projector), so each request's lane is known: `FastLane.enabled` switches the lane off for the
Litestar answer, and its counters say which lane answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any
from uuid import uuid4

import httpx
import pytest
from litestar.params import Parameter
from litestar.testing import TestClient

from api.fastlane import FastLane
from api.orders import OrderCreate
from tests.e2e.conftest import Show, bearer, publish_show, register, verified_token
from ticketing import Settings, create_api

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PATH = "/api/v1/orders"
VARYING = {"x-request-id", "date"}


def lane_of(app: Any) -> FastLane:
    """The fast lane inside the service's outer layers (Observe, SecurityHeaders)."""
    while not isinstance(app, FastLane):
        app = app.app
    return app


@pytest.fixture(scope="module")
def express(service: str, stack_env: dict[str, str]) -> Iterator[tuple[FastLane, TestClient[Any]]]:
    app = create_api(Settings.from_env({**stack_env, "RATE_LIMITS_ENABLED": "false"}))
    with TestClient(app=app) as test_client:
        # An API client, as the e2e clients are: Bearer tokens only, no cookies kept.
        test_client.event_hooks["response"].append(lambda _: test_client.cookies.clear())
        yield lane_of(app), test_client


def both_lanes(
    lane: FastLane, test_client: TestClient[Any], token: str, body: Any, **headers: str
) -> tuple[httpx.Response, httpx.Response]:
    """The Litestar handler's answer, then the express lane's, to the same request."""
    sent = {**bearer(token), **headers}
    content = body if isinstance(body, bytes) else None
    payload = None if isinstance(body, bytes) else body
    if content is not None:
        sent.setdefault("Content-Type", "application/json")
    lane.enabled = False
    try:
        slow = test_client.post(PATH, headers=sent, json=payload, content=content)
    finally:
        lane.enabled = True
    served = lane.served
    fast = test_client.post(PATH, headers=sent, json=payload, content=content)
    fast.extensions["express"] = lane.served > served
    return slow, fast


def assert_alike(slow: httpx.Response, fast: httpx.Response) -> None:
    assert fast.status_code == slow.status_code, (slow.text, fast.text)
    assert fast.content == slow.content
    assert {k: v for k, v in fast.headers.items() if k not in VARYING} == {
        k: v for k, v in slow.headers.items() if k not in VARYING
    }
    assert fast.headers["x-request-id"] and slow.headers["x-request-id"]


@pytest.fixture(scope="module")
def show(client: httpx.Client, admin_token: str) -> Show:
    return publish_show(client, admin_token, ga_quantity=6, seats=4, max_per_order=4)


@pytest.fixture
def buyer(client: httpx.Client, express: tuple[FastLane, TestClient[Any]]) -> str:
    """A verified buyer whose token this process has verified once (through Litestar)."""
    lane, test_client = express
    token = verified_token(client)
    passed = lane.passed
    assert test_client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 200
    assert lane.passed == passed  # not an order: the lane is not even asked
    return token


def test_first_order_of_a_token_goes_through_litestar_then_the_lane(
    client: httpx.Client, express: tuple[FastLane, TestClient[Any]], show: Show
) -> None:
    lane, test_client = express
    token = verified_token(client)  # never seen by this process
    body = {"items": [{"offer_id": show.seat_offer, "seat_id": show.seats[0]}]}
    passed, served = lane.passed, lane.served
    first = test_client.post(PATH, headers=bearer(token), json=body)
    assert first.status_code == 201, first.text
    assert (lane.passed, lane.served) == (passed + 1, served)
    second = test_client.post(
        PATH, headers=bearer(token), json={**body, "items": [{**body["items"][0], "seat_id": show.seats[1]}]}
    )
    assert second.status_code == 201, second.text
    assert (lane.passed, lane.served) == (passed + 1, served + 1)
    assert second.headers["content-type"] == first.headers["content-type"] == "application/json"
    # The lane's 201 is the order as the read model has it (read-your-writes holds).
    order = second.json()
    mine = client.get(f"/orders/{order['id']}", headers=bearer(token))
    assert mine.status_code == 200 and mine.json() == order
    assert set(second.headers) - VARYING == set(first.headers) - VARYING


def test_repeated_idempotency_key_gives_byte_identical_answers(
    express: tuple[FastLane, TestClient[Any]], show: Show, buyer: str
) -> None:
    lane, test_client = express
    key = f"checkout-{uuid4()}"
    body = {"items": [{"offer_id": show.ga_offer, "quantity": 1}]}
    placed = test_client.post(PATH, headers={**bearer(buyer), "Idempotency-Key": key}, json=body)
    assert placed.status_code == 201, placed.text
    slow, fast = both_lanes(lane, test_client, buyer, body, **{"Idempotency-Key": key})
    assert fast.extensions["express"]
    assert slow.status_code == 200 and slow.json()["id"] == placed.json()["id"]
    assert_alike(slow, fast)


def test_an_idempotency_key_reused_for_another_order_is_a_conflict_in_both_lanes(
    express: tuple[FastLane, TestClient[Any]], show: Show, buyer: str
) -> None:
    lane, test_client = express
    key = f"checkout-{uuid4()}"
    first = {"items": [{"offer_id": show.ga_offer, "quantity": 1}]}
    placed = test_client.post(PATH, headers={**bearer(buyer), "Idempotency-Key": key}, json=first)
    assert placed.status_code == 201, placed.text
    for other in (
        {"items": [{"offer_id": show.ga_offer, "quantity": 2}]},
        {"items": [{"offer_id": show.seat_offer, "seat_id": show.seats[2]}]},
        {"items": [{"offer_id": str(uuid4()), "quantity": 1}]},  # another show's offer, or none at all
    ):
        slow, fast = both_lanes(lane, test_client, buyer, other, **{"Idempotency-Key": key})
        assert fast.extensions["express"]
        assert slow.status_code == 409, slow.text
        assert slow.json()["code"] == "idempotency_conflict"
        assert_alike(slow, fast)
    same = test_client.post(PATH, headers={**bearer(buyer), "Idempotency-Key": key}, json=first)
    assert same.status_code == 200 and same.json()["id"] == placed.json()["id"]


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("sold_out", 409, "sold_out"),
        ("seat_taken", 409, "seat_taken"),
        ("unknown_offer", 404, "offer_not_found"),
        ("seat_on_ga_offer", 422, "invalid"),
        ("over_max_per_order", 422, None),
    ],
)
def test_domain_answers_are_the_same_in_both_lanes(
    express: tuple[FastLane, TestClient[Any]], show: Show, buyer: str, case: str, status: int, code: str | None
) -> None:
    lane, test_client = express
    items: list[dict[str, Any]]
    if case == "sold_out":
        items = [{"offer_id": show.ga_offer, "quantity": 4}]
        while test_client.post(PATH, headers=bearer(buyer), json={"items": items}).status_code == 201:
            pass
    elif case == "seat_taken":
        items = [{"offer_id": show.seat_offer, "seat_id": show.seats[0]}]
        test_client.post(PATH, headers=bearer(buyer), json={"items": items})
    elif case == "unknown_offer":
        items = [{"offer_id": str(uuid4()), "quantity": 1}]
    elif case == "seat_on_ga_offer":
        items = [{"offer_id": show.ga_offer, "seat_id": show.seats[3]}]
    else:
        items = [{"offer_id": show.ga_offer, "quantity": 5}]
    slow, fast = both_lanes(lane, test_client, buyer, {"items": items})
    assert fast.extensions["express"]
    assert slow.status_code == status, slow.text
    if code is not None:
        assert slow.json()["code"] == code
    assert_alike(slow, fast)


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b'{"items": [', {}, 400),  # malformed JSON
        ({"items": []}, {}, 422),
        ({"items": [{"offer_id": "not-a-uuid"}]}, {}, 422),
        ({"items": [{"offer_id": str(uuid4()), "quantity": 0}]}, {}, 422),
        ({"items": [{"offer_id": str(uuid4())}], "coupon": "x"}, {}, 422),  # unknown field
        ({"items": [{"offer_id": str(uuid4())}]}, {"Idempotency-Key": "k" * 201}, 422),
        (b"items=1", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ],
)
def test_bad_requests_are_left_to_litestar(
    express: tuple[FastLane, TestClient[Any]], buyer: str, body: Any, headers: dict[str, str], status: int
) -> None:
    lane, test_client = express
    passed = lane.passed
    slow, fast = both_lanes(lane, test_client, buyer, body, **headers)
    assert not fast.extensions["express"]
    assert lane.passed == passed + 1
    assert slow.status_code == status, slow.text
    assert_alike(slow, fast)


def test_unverified_buyers_and_browsers_are_left_to_litestar(
    client: httpx.Client, express: tuple[FastLane, TestClient[Any]], show: Show
) -> None:
    lane, test_client = express
    body = {"items": [{"offer_id": show.ga_offer, "quantity": 1}]}
    unverified = register(client, verified=False)
    test_client.get("/api/v1/auth/me", headers=bearer(unverified))  # its token is now cached
    slow, fast = both_lanes(lane, test_client, unverified, body)
    assert not fast.extensions["express"]
    assert slow.status_code == 403 and slow.json()["code"] == "email_not_verified"
    assert_alike(slow, fast)
    buyer = verified_token(client)
    test_client.get("/api/v1/auth/me", headers=bearer(buyer))
    served = lane.served
    from_browser = test_client.post(PATH, headers={**bearer(buyer), "Origin": "https://shop.example"}, json=body)
    assert from_browser.status_code in (201, 409)
    assert lane.served == served


def test_rate_limits_count_both_lanes(
    client: httpx.Client, service: str, stack_env: dict[str, str], show: Show
) -> None:
    service_app = create_api(Settings.from_env({**stack_env, "RATE_LIMITS_ENABLED": "true",
                                                "RATE_LIMIT_ORDERS": f"{3 + uuid4().int % 1000}/hour"}))  # fmt: skip
    limited = lane_of(service_app)
    limit = limited.limit
    assert limit is not None
    token = verified_token(client)
    body = {"items": [{"offer_id": show.seat_offer, "seat_id": str(uuid4())}]}  # 404 seat: nothing is held
    with TestClient(app=service_app) as test_client:
        answers = [test_client.post(PATH, headers=bearer(token), json=body) for _ in range(limit.count + 1)]
    assert limited.passed == 1 and limited.served == limit.count  # the first one verified the token
    assert [a.status_code for a in answers] == [404] * limit.count + [429]
    assert answers[-1].json()["code"] == "rate_limited"
    assert answers[-1].headers["retry-after"] == answers[-1].headers["x-ratelimit-reset"]
    assert [a.headers["x-ratelimit-remaining"] for a in answers[1:]] == [
        str(max(limit.count - n, 0)) for n in range(2, limit.count + 2)
    ]


def test_a_middleware_the_lane_does_not_know_switches_it_off() -> None:
    """A middleware added later is never silently skipped: the lane stands down instead."""
    from litestar import Litestar, post
    from litestar.middleware import ASGIMiddleware
    from litestar.types import ASGIApp, Receive, Scope, Send

    class Audit(ASGIMiddleware):
        async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
            await next_app(scope, receive, send)

    @post("/api/v1/orders", operation_id="placeOrder")
    async def place(
        data: OrderCreate, idempotency_key: Annotated[str | None, Parameter(header="Idempotency-Key")] = None
    ) -> None:
        return None

    assert FastLane(Litestar([place])).enabled
    assert not FastLane(Litestar([place], middleware=[Audit()])).enabled
