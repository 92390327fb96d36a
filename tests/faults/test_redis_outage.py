"""Redis stops (or freezes) while people buy and pay: no payment is lost, answers stay honest."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any
from uuid import UUID, uuid4

import psycopg
import stripe

from tests.e2e.conftest import bearer, publish_show
from tests.e2e.test_payments import deliver
from tests.faults.conftest import FaultStack, admin, eventually, verified_buyer


def _sdk(stack: FaultStack) -> stripe.StripeClient:
    return stripe.StripeClient(stack.settings.stripe_api_key, base_addresses={"api": stack.settings.stripe_api_base})


def _order(stack: FaultStack, token: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    r = stack.client.post("/orders", headers=bearer(token), json={"items": items})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _get(stack: FaultStack, token: str, order_id: str) -> dict[str, Any]:
    r = stack.client.get(f"/orders/{order_id}", headers=bearer(token))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _pay_at_stripe(sdk: stripe.StripeClient, intent_id: str) -> None:
    sdk.v1.payment_intents.update(intent_id, params={"payment_method": "pm_card_visa"})
    sdk.v1.payment_intents.confirm(intent_id)


def _stored_deliveries(stack: FaultStack) -> list[tuple[str, int]]:
    """(Stripe event id, number of stored events of that delivery) for every delivery in the inbox."""
    with psycopg.connect(stack.settings.database_url) as conn:
        rows = conn.execute(
            "SELECT convert_from(state, 'UTF8')::json->>'external_id', count(*) OVER (PARTITION BY originator_id) "
            "FROM public.inbox_events WHERE originator_version = 1"
        ).fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


def _applications(stack: FaultStack, external_id: str) -> int:
    with psycopg.connect(stack.settings.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM public.inbox_events e WHERE e.originator_version > 1 AND e.originator_id IN "
            "(SELECT originator_id FROM public.inbox_events WHERE originator_version = 1 "
            " AND convert_from(state, 'UTF8')::json->>'external_id' = %s)",
            (external_id,),
        ).fetchone()
    return int(row[0]) if row else 0


@contextlib.contextmanager
def redis_down(stack: FaultStack) -> Any:
    stack.services.stop_redis()
    try:
        yield
    finally:
        stack.services.start_redis()


def test_a_payment_captured_while_redis_is_down_ends_with_tickets(faults: FaultStack) -> None:
    stack, sdk = faults, _sdk(faults)
    show = publish_show(stack.client, admin(stack), seats=4, organizer=verified_buyer(stack, "organizer"))
    buyer = verified_buyer(stack)
    placed = _order(stack, buyer, [{"offer_id": show.ga_offer, "quantity": 2}])
    intent = stack.client.post(f"/orders/{placed['id']}/payment", headers=bearer(buyer)).json()["payment_intent_id"]
    before = {d for d, _ in _stored_deliveries(stack)}

    with redis_down(stack):
        _pay_at_stripe(sdk, intent)
        # localstripe delivers about a second later; the delivery is stored even though it
        # cannot be queued (and Stripe is told to come back: no 2xx).
        eventually(lambda: {d for d, _ in _stored_deliveries(stack)} - before, timeout=15)
        time.sleep(1)
        assert _get(stack, buyer, placed["id"])["status"] == "held"

    # Redis is back: nobody redelivers (localstripe never retries), the reconciler applies it.
    paid = eventually(lambda: (o := _get(stack, buyer, placed["id"]))["status"] == "paid" and o, timeout=40)
    assert len(paid["tickets"]) == 2 and paid["amount_paid"] == paid["total"]

    # Stripe's own retry of that delivery, arriving later, changes nothing.
    (external_id,) = {d for d, _ in _stored_deliveries(stack)} - before
    event = next(e for e in sdk.v1.events.list().data if e.id == external_id).to_dict()
    again = deliver(stack.client, stack.settings, event)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    time.sleep(2)
    assert _applications(stack, external_id) == 1
    final = _get(stack, buyer, placed["id"])
    assert final["status"] == "paid" and [t["id"] for t in final["tickets"]] == [t["id"] for t in paid["tickets"]]


def test_a_late_payment_for_a_resold_seat_is_refunded_once_redis_is_back(faults: FaultStack) -> None:
    from domain.placement import ItemRequest
    from ticketing import open_boxoffice

    stack, sdk = faults, _sdk(faults)
    show = publish_show(stack.client, admin(stack), seats=2, organizer=verified_buyer(stack, "organizer"))
    late = verified_buyer(stack)
    placed = _order(stack, late, [{"offer_id": show.seat_offer, "seat_id": show.seats[0]}])
    intent = stack.client.post(f"/orders/{placed['id']}/payment", headers=bearer(late)).json()["payment_intent_id"]

    with redis_down(stack):
        # The hold lapses and the seat is sold to someone else before the payment is applied.
        app = open_boxoffice(stack.settings)
        try:
            order_id = UUID(placed["id"])
            assert app.expire_hold(order_id, at=app.get_order(order_id).hold_expires_at)
            app.place_order(uuid4(), [ItemRequest(UUID(show.seat_offer), 1, UUID(show.seats[0]))])
        finally:
            app.close()
        _pay_at_stripe(sdk, intent)
        time.sleep(2)

    refunded = eventually(lambda: (o := _get(stack, late, placed["id"]))["status"] == "refunded" and o, timeout=40)
    assert refunded["tickets"] == [] and refunded["amount_refunded"] == refunded["amount_paid"] == "40.00"
    assert [r.amount for r in sdk.v1.refunds.list(params={"payment_intent": intent}).data] == [4000]


def test_requests_that_need_redis_get_a_json_503_and_the_rest_keep_working(faults: FaultStack) -> None:
    stack = faults
    show = publish_show(stack.client, admin(stack), seats=2, organizer=verified_buyer(stack, "organizer"))
    buyer = verified_buyer(stack)
    with redis_down(stack):
        for _ in range(2):  # both API processes
            r = stack.client.post("/orders", headers=bearer(buyer),
                                  json={"items": [{"offer_id": show.ga_offer, "quantity": 1}]})  # fmt: skip
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "unavailable" and r.headers["retry-after"]
        login = stack.client.post("/auth/login", json={"email": "nobody@example.com", "password": "whatever-1"})
        assert login.status_code == 503 and login.json()["code"] == "unavailable"
        # Reads do not need Redis: the listing cache is bypassed.
        listing = stack.client.get("/events", params={"q": "Show"})
        assert listing.status_code == 200 and listing.json()["pagination"]["total_items"] >= 1
        assert stack.client.get(f"/events/{show.id}/seat-map").status_code == 200
    after = stack.client.post("/orders", headers=bearer(buyer), json={"items": [{"offer_id": show.ga_offer}]})
    assert after.status_code == 201, after.text


def test_a_frozen_redis_makes_requests_fail_fast_not_hang(faults: FaultStack) -> None:
    stack = faults
    show = publish_show(stack.client, admin(stack), seats=2, organizer=verified_buyer(stack, "organizer"))
    buyer = verified_buyer(stack)
    pid = stack.services.redis_pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        r = stack.client.post("/orders", headers=bearer(buyer),
                              json={"items": [{"offer_id": show.ga_offer, "quantity": 1}]}, timeout=30)  # fmt: skip
        took = time.monotonic() - started
        assert r.status_code == 503 and r.json()["code"] == "unavailable", r.text
        assert took < 5, f"a frozen Redis held the request for {took:.1f} s"
    finally:
        os.kill(pid, signal.SIGCONT)
