"""Payments through localstripe with real signed webhooks delivered to the running service."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any
from uuid import UUID, uuid4

import httpx
import psycopg
import pytest
import stripe

from commands.tickets_signing import TicketSigner, verify_with_public_key
from tests.e2e.conftest import Show, bearer, order, publish_show, register
from ticketing import Settings


@pytest.fixture(scope="module")
def stripe_client(settings: Settings) -> stripe.StripeClient:
    return stripe.StripeClient(settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base})


def pay(sdk: stripe.StripeClient, intent_id: str, card: str = "pm_card_visa") -> None:
    """What Stripe.js does in the browser: attach a card and confirm (localstripe's supported way)."""
    sdk.v1.payment_intents.update(intent_id, params={"payment_method": card})
    sdk.v1.payment_intents.confirm(intent_id)


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


def get_order(client: httpx.Client, token: str, order_id: str) -> dict[str, Any]:
    r = client.get(f"/orders/{order_id}", headers=bearer(token))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def is_status(client: httpx.Client, token: str, order_id: str, status: str) -> dict[str, Any] | None:
    body = get_order(client, token, order_id)
    return body if body["status"] == status else None


def start(client: httpx.Client, token: str, order_id: str) -> dict[str, Any]:
    r = client.post(f"/orders/{order_id}/payment", headers=bearer(token))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def signed(settings: Settings, event: dict[str, Any]) -> tuple[bytes, str]:
    """Sign a payload exactly as Stripe does (t=timestamp, v1=HMAC-SHA256 of 't.payload')."""
    payload = json.dumps(event).encode()
    t = int(time.time())
    mac = hmac.new(settings.stripe_webhook_secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={t},v1={mac}"


def deliver(client: httpx.Client, settings: Settings, event: dict[str, Any]) -> httpx.Response:
    payload, signature = signed(settings, event)
    headers = {"Stripe-Signature": signature, "content-type": "application/json"}
    return client.post("/webhooks/stripe", content=payload, headers=headers)


def inbox_size(settings: Settings) -> int:
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM public.inbox_events").fetchone()
        return int(row[0]) if row else 0


@pytest.fixture(scope="module")
def show(client: httpx.Client, admin_token: str) -> Show:
    return publish_show(client, admin_token, ga_quantity=30, seats=10, max_per_order=6)


def test_a_paid_order_gets_tickets_with_signed_qr_codes(
    client: httpx.Client, settings: Settings, stripe_client: stripe.StripeClient, show: Show
) -> None:
    buyer = register(client)
    placed = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 2},
                                   {"offer_id": show.seat_offer, "seat_id": show.seats[0]}]).json()  # fmt: skip
    payment = start(client, buyer, placed["id"])
    assert payment["amount"] == placed["total"] == "90.00"
    assert payment["client_secret"] and payment["payment_intent_id"].startswith("pi_")
    again = start(client, buyer, placed["id"])
    assert again["payment_intent_id"] == payment["payment_intent_id"]

    pay(stripe_client, payment["payment_intent_id"])
    paid = wait_for(lambda: (o := get_order(client, buyer, placed["id"]))["status"] == "paid" and o)
    assert paid["payment_status"] == "succeeded" and paid["amount_paid"] == "90.00"
    assert len(paid["tickets"]) == 3

    tickets = client.get("/me/tickets", headers=bearer(buyer)).json()["data"]
    assert len(tickets) == 3 and {t["status"] for t in tickets} == {"valid"}
    seated = [t for t in tickets if t["seat"] is not None]
    assert len(seated) == 1 and seated[0]["section"] == "Floor" and seated[0]["row"] == "A"
    public_key = TicketSigner.from_secret(settings.ticket_signing_key).public_key_b64
    for t in tickets:
        verified = verify_with_public_key(public_key, t["qr_data"])
        assert verified.ticket_id == UUID(t["ticket_id"]) and verified.event_id == UUID(show.id)
        assert buyer not in t["qr_data"]
    one = tickets[0]["ticket_id"]
    png = client.get(f"/tickets/{one}/qr.png", headers=bearer(buyer))
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    pdf = client.get(f"/tickets/{one}/pdf", headers=bearer(buyer))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert client.get(f"/tickets/{one}", headers=bearer(register(client))).status_code == 404

    seat_map = client.get(f"/events/{show.id}/seat-map").json()
    statuses = {s["id"]: s["status"] for sec in seat_map["sections"] for r in sec["rows"] for s in r["seats"]}
    assert statuses[show.seats[0]] == "sold"


def test_a_declined_card_issues_no_tickets_and_keeps_the_hold(
    client: httpx.Client, stripe_client: stripe.StripeClient, show: Show
) -> None:
    buyer = register(client)
    placed = order(client, buyer, [{"offer_id": show.seat_offer, "seat_id": show.seats[1]}]).json()
    payment = start(client, buyer, placed["id"])
    # Real Stripe raises on a decline; localstripe answers and sends the failure webhook.
    with contextlib.suppress(stripe.CardError):
        pay(stripe_client, payment["payment_intent_id"], "pm_card_chargeCustomerFail")
    assert stripe_client.v1.payment_intents.retrieve(payment["payment_intent_id"]).status != "succeeded"
    failed = wait_for(lambda: (o := get_order(client, buyer, placed["id"]))["payment_status"] == "failed" and o)
    assert failed["status"] == "held" and failed["tickets"] == [] and failed["last_payment_error"]
    assert client.get("/me/tickets", headers=bearer(buyer)).json()["data"] == []
    # The seat stays held for this buyer until the deadline, so they can try another card
    # (localstripe cannot re-confirm a failed intent; Stripe.js would confirm it again).
    seat_map = client.get(f"/events/{show.id}/seat-map").json()
    statuses = {s["id"]: s["status"] for sec in seat_map["sections"] for r in sec["rows"] for s in r["seats"]}
    assert statuses[show.seats[1]] == "held"
    assert start(client, buyer, placed["id"])["payment_intent_id"] == payment["payment_intent_id"]


def test_the_same_webhook_three_times_issues_one_set_of_tickets(
    client: httpx.Client, settings: Settings, stripe_client: stripe.StripeClient, show: Show
) -> None:
    buyer = register(client)
    placed = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 3}]).json()
    payment = start(client, buyer, placed["id"])
    pay(stripe_client, payment["payment_intent_id"])
    wait_for(lambda: get_order(client, buyer, placed["id"])["status"] == "paid")

    intent = stripe_client.v1.payment_intents.retrieve(payment["payment_intent_id"]).to_dict()
    event = {"id": f"evt_{uuid4().hex}", "object": "event", "type": "payment_intent.succeeded",
             "created": int(time.time()), "data": {"object": intent}}  # fmt: skip
    answers = [deliver(client, settings, event) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["duplicate"] for a in answers] == [False, True, True]
    # A different event id for the same payment (Stripe may send both) changes nothing either.
    assert deliver(client, settings, {**event, "id": f"evt_{uuid4().hex}"}).json()["duplicate"] is False
    time.sleep(1.5)
    final = get_order(client, buyer, placed["id"])
    assert final["status"] == "paid" and len(final["tickets"]) == 3
    mine = client.get("/me/tickets", headers=bearer(buyer)).json()["data"]
    assert len(mine) == 3


def test_a_forged_signature_is_rejected_and_nothing_is_stored(client: httpx.Client, settings: Settings) -> None:
    before = inbox_size(settings)
    event = {"id": f"evt_{uuid4().hex}", "type": "payment_intent.succeeded", "data": {"object": {}}}
    payload, signature = signed(settings, event)
    forged = signature[:-4] + ("0000" if not signature.endswith("0000") else "1111")
    for headers in ({"Stripe-Signature": forged}, {}, {"Stripe-Signature": "t=1,v1=abc"}):
        r = client.post("/webhooks/stripe", content=payload, headers={**headers, "content-type": "application/json"})
        assert r.status_code == 400 and r.json()["code"] == "bad_signature"
    assert inbox_size(settings) == before


def test_a_partial_refund_voids_only_those_tickets(
    client: httpx.Client, stripe_client: stripe.StripeClient, show: Show
) -> None:
    buyer = register(client)
    placed = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 3}]).json()
    pay(stripe_client, start(client, buyer, placed["id"])["payment_intent_id"])
    paid = wait_for(lambda: (o := get_order(client, buyer, placed["id"]))["status"] == "paid" and o)
    available_before = {o["id"]: o["available"] for o in client.get(f"/events/{show.id}/offers").json()["data"]}
    first = paid["tickets"][0]

    r = client.post(f"/orders/{placed['id']}/refund", headers=bearer(buyer), json={"ticket_ids": [first["id"]]})
    assert r.status_code == 200, r.text
    refunded = r.json()
    assert refunded["status"] == "partially_refunded" and refunded["amount_refunded"] == "25.00"
    statuses = {t["id"]: t["status"] for t in refunded["tickets"]}
    assert statuses.pop(first["id"]) == "voided" and set(statuses.values()) == {"valid"}
    available = {o["id"]: o["available"] for o in client.get(f"/events/{show.id}/offers").json()["data"]}
    assert available[show.ga_offer] == available_before[show.ga_offer] + 1
    refunds = stripe_client.v1.refunds.list(params={"payment_intent": paid["payment_intent_id"]}).data
    assert sum(x.amount for x in refunds) == 2500
    # Refunding the same ticket again is refused; the rest can still be refunded.
    again = client.post(f"/orders/{placed['id']}/refund", headers=bearer(buyer), json={"ticket_ids": [first["id"]]})
    assert again.status_code == 422
    rest = client.post(f"/orders/{placed['id']}/refund", headers=bearer(buyer), json={})
    assert rest.status_code == 200 and rest.json()["status"] == "refunded"
    assert rest.json()["amount_refunded"] == "75.00"
    stranger = client.post(f"/orders/{placed['id']}/refund", headers=bearer(register(client)), json={})
    assert stranger.status_code == 404


def test_cancelling_an_event_refunds_paid_orders_and_releases_holds(
    client: httpx.Client, admin_token: str, stripe_client: stripe.StripeClient
) -> None:
    show = publish_show(client, admin_token, ga_quantity=10, seats=4)
    buyers = [register(client) for _ in range(3)]
    paid_orders = []
    for buyer in buyers[:2]:
        placed = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 2}]).json()
        pay(stripe_client, start(client, buyer, placed["id"])["payment_intent_id"])
        wait_for(partial(is_status, client, buyer, placed["id"], "paid"))
        paid_orders.append((buyer, placed["id"]))
    held = order(client, buyers[2], [{"offer_id": show.seat_offer, "seat_id": show.seats[0]}]).json()

    r = client.post(f"/events/{show.id}/cancel", headers=bearer(show.organizer), json={"reason": "storm"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    for buyer, order_id in paid_orders:
        done = wait_for(partial(is_status, client, buyer, order_id, "refunded"))
        assert done["amount_refunded"] == done["amount_paid"] == "50.00"
        assert {t["status"] for t in done["tickets"]} == {"voided"}
    wait_for(lambda: get_order(client, buyers[2], held["id"])["status"] == "cancelled")
    assert client.post(f"/events/{show.id}/publish", headers=bearer(show.organizer)).status_code == 409


def _stored_unqueued_success(settings: Settings, intent: dict[str, Any]) -> dict[str, Any]:
    """A `payment_intent.succeeded` stored in the inbox but never queued, as when Redis was down
    at the moment Stripe delivered it."""
    from ticketing import open_inbox

    event_id = f"evt_{uuid4().hex}"
    event = {"id": event_id, "object": "event", "type": "payment_intent.succeeded",
             "created": int(time.time()), "data": {"object": intent}}  # fmt: skip
    inbox = open_inbox(settings)
    try:
        _, new = inbox.receive("stripe", event_id, "payment_intent.succeeded", event)
    finally:
        inbox.close()
    assert new
    return event


def _succeeded_intent(stripe_client: stripe.StripeClient, intent_id: str) -> dict[str, Any]:
    """Pay at localstripe without its webhook reaching us: the intent's final state, as Stripe
    would put it in the event."""
    stripe_client.v1.payment_intents.update(intent_id, params={"payment_method": "pm_card_visa"})
    intent = stripe_client.v1.payment_intents.confirm(intent_id).to_dict()
    assert intent["status"] == "succeeded"
    return intent


def test_a_redelivered_event_that_was_stored_but_never_applied_is_applied(
    client: httpx.Client, settings: Settings, stripe_client: stripe.StripeClient, show: Show
) -> None:
    buyer = register(client)
    placed = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 1}]).json()
    payment = start(client, buyer, placed["id"])
    # Nothing is paid at localstripe: the event is of our making and exists only in the inbox,
    # as if queueing it had failed when Stripe first delivered it.
    intent = {**stripe_client.v1.payment_intents.retrieve(payment["payment_intent_id"]).to_dict(),
              "status": "succeeded", "amount_received": 2500}  # fmt: skip
    event = _stored_unqueued_success(settings, intent)
    r = deliver(client, settings, event)
    assert r.status_code == 200 and r.json()["duplicate"] is True
    paid = wait_for(lambda: (o := get_order(client, buyer, placed["id"]))["status"] == "paid" and o)
    assert len(paid["tickets"]) == 1
    with psycopg.connect(settings.database_url) as conn:
        applied = conn.execute(
            "SELECT count(*) FROM public.inbox_events WHERE originator_id = "
            "(SELECT originator_id FROM public.inbox_events WHERE convert_from(state, 'UTF8') LIKE %s LIMIT 1) "
            "AND originator_version > 1",
            (f"%{event['id']}%",),
        ).fetchone()
    assert applied is not None and applied[0] == 1  # applied once, outcome recorded once


def test_the_reconciler_applies_a_stored_event_nobody_redelivers(
    client: httpx.Client, settings: Settings, stripe_client: stripe.StripeClient, show: Show
) -> None:
    buyer = register(client)
    placed = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 2}]).json()
    payment = start(client, buyer, placed["id"])
    intent = {**stripe_client.v1.payment_intents.retrieve(payment["payment_intent_id"]).to_dict(),
              "status": "succeeded", "amount_received": 5000}  # fmt: skip
    _stored_unqueued_success(settings, intent)
    paid = wait_for(lambda: (o := get_order(client, buyer, placed["id"]))["status"] == "paid" and o, timeout=40)
    assert len(paid["tickets"]) == 2


def test_payments_arriving_together_for_one_offer_are_all_applied(
    client: httpx.Client, settings: Settings, admin_token: str, stripe_client: stripe.StripeClient
) -> None:
    """Forty buyers of one offer pay at once: Stripe's forty `payment_intent.succeeded` arrive
    side by side (besides localstripe's own deliveries), with a copy of one (same event id), a
    second event for the same payment (a new event id) and one naming an order nobody placed.
    The worker applies them in batches (workers/batching.py): every order paid once with its
    tickets, the stranger ignored, the 41st buyer, who did not pay, still holding; the offer's
    counters: sold = paid tickets."""
    from concurrent.futures import ThreadPoolExecutor

    from ticketing import open_boxoffice

    crowd = publish_show(client, admin_token, ga_quantity=100, seats=1, max_per_order=4)
    placed = []
    for i in range(41):
        buyer = register(client)
        r = order(client, buyer, [{"offer_id": crowd.ga_offer, "quantity": 1 + i % 2}])
        assert r.status_code == 201, r.text
        placed.append((buyer, r.json(), start(client, buyer, r.json()["id"])))

    def event(payment: dict[str, Any], order_id: str) -> dict[str, Any]:
        amount = round(float(payment["amount"]) * 100)
        intent = {"id": payment["payment_intent_id"], "object": "payment_intent", "status": "succeeded",
                  "amount": amount, "amount_received": amount, "currency": payment["currency"].lower(),
                  "metadata": {"order_id": order_id}}  # fmt: skip
        return {"id": f"evt_{uuid4().hex}", "object": "event", "type": "payment_intent.succeeded",
                "created": int(time.time()), "data": {"object": intent}}  # fmt: skip

    # Charged at the provider for real (localstripe delivers its own events too, a second
    # delivery of each payment), so the orders can be refunded later like any other.
    for _, _, payment in placed[:40]:
        pay(stripe_client, payment["payment_intent_id"])
    events = [event(p, o["id"]) for _, o, p in placed[:40]]
    events += [events[0], {**events[1], "id": f"evt_{uuid4().hex}"}, event(placed[2][2], str(uuid4()))]
    with httpx.Client(base_url=str(client.base_url)) as other, ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(partial(deliver, other, settings), events))
    assert [a.status_code for a in answers] == [200] * len(events)
    assert [a.json()["duplicate"] for a in answers].count(True) == 1

    for buyer, o, _ in placed[:40]:
        final = wait_for(partial(is_status, client, buyer, o["id"], "paid"))
        assert len(final["tickets"]) == o["ticket_count"]
    assert get_order(client, placed[40][0], placed[40][1]["id"])["status"] == "held"
    app = open_boxoffice(settings)
    try:
        offer: Any = app.get_offer(UUID(crowd.ga_offer))
        assert offer.sold == sum(o["ticket_count"] for _, o, _ in placed[:40])
        assert offer.held == placed[40][1]["ticket_count"]
    finally:
        app.close()
