"""Hundreds of concurrent buyers against the real stack; invariants checked from the event store."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any
from uuid import UUID

import httpx

from domain.offer import Offer
from domain.order import Order
from domain.seat import Seat
from tests.e2e.conftest import bearer, publish_show, verified_token
from ticketing import Settings, open_boxoffice

BUYERS = 20
ATTEMPTS = 200


async def fire(base_url: str, tokens: list[str], bodies: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    limits = httpx.Limits(max_connections=ATTEMPTS, max_keepalive_connections=ATTEMPTS)
    async with httpx.AsyncClient(base_url=f"{base_url}/api/v1", timeout=60, limits=limits) as client:
        start = asyncio.Event()

        async def one(i: int) -> tuple[int, dict[str, Any]]:
            await start.wait()
            r = await client.post("/orders", json=bodies[i], headers=bearer(tokens[i % len(tokens)]))
            return r.status_code, r.json()

        tasks = [asyncio.create_task(one(i)) for i in range(len(bodies))]
        await asyncio.sleep(0.2)
        start.set()
        return await asyncio.gather(*tasks)


def seat_history_is_exclusive(events: list[Any]) -> bool:
    """Replaying a seat's own events, a second order never takes it before the first let go."""
    holder: UUID | None = None
    for e in events:
        name = type(e).__name__
        if name in ("Held", "SoldWithoutHold"):
            if holder is not None:
                return False
            holder = e.order_id
        elif name in ("Released", "Returned"):
            holder = None
    return True


def test_200_concurrent_orders_never_oversell_and_every_201_has_its_order(
    service: str, client: httpx.Client, admin_token: str, settings: Settings
) -> None:
    show = publish_show(client, admin_token, ga_quantity=50, seats=20, max_per_order=4)
    # Tokens minted after verification, as a buyer's are in an on-sale: most of these orders take
    # the fast lane (api/fastlane.py), the first of each token in each process Litestar's path.
    tokens = [verified_token(client) for _ in range(BUYERS)]
    rng = random.Random(7)
    ga_bodies = [{"items": [{"offer_id": show.ga_offer, "quantity": 1}]} for _ in range(ATTEMPTS)]
    seat_bodies = [
        {"items": [{"offer_id": show.seat_offer, "seat_id": rng.choice(show.seats)}]} for _ in range(ATTEMPTS)
    ]

    ga_results = asyncio.run(fire(service, tokens, ga_bodies))
    seat_results = asyncio.run(fire(service, tokens, seat_bodies))

    ga_status = Counter(status for status, _ in ga_results)
    print("GA", ga_status)
    seat_status = Counter(status for status, _ in seat_results)
    print("SEATS", seat_status)
    assert set(ga_status) <= {201, 409, 503}, ga_status
    assert set(seat_status) <= {201, 409, 503}, seat_status
    assert all(body["code"] == "sold_out" for status, body in ga_results if status == 409)
    assert all(body["code"] == "seat_taken" for status, body in seat_results if status == 409)

    app = open_boxoffice(settings)
    try:
        # GA: the offer as recorded never went past its quantity, and it holds exactly what the orders hold.
        offer = app.load(UUID(show.ga_offer), "offer", Offer)
        assert offer.held + offer.sold <= 50
        accepted = [UUID(body["id"]) for status, body in ga_results if status == 201]
        assert len(accepted) == len(set(accepted))
        held_by_orders = 0
        for order_id in accepted:
            order = app.load(order_id, "order", Order)
            assert order.status == "held"
            held_by_orders += order.ticket_count
        assert held_by_orders == offer.held == len(accepted)
        if ga_status[503] == 0:
            assert len(accepted) == 50  # demand far exceeded supply, so everything sold

        # Seats: each seat has at most one holder in its whole history, and it is a 201 order.
        seat_orders = {UUID(body["id"]): body["items"][0]["seat_id"] for status, body in seat_results if status == 201}
        assert len(set(seat_orders.values())) == len(seat_orders)
        for seat_id in show.seats:
            seat = app.load(UUID(seat_id), "seat", Seat)
            events = list(app.events.get(UUID(seat_id)))
            assert seat_history_is_exclusive(events)
            if seat.status == "held":
                assert seat.order_id in seat_orders and seat_orders[seat.order_id] == seat_id
        contested = {body["items"][0]["seat_id"] for body in seat_bodies}
        if seat_status[503] == 0:
            assert set(seat_orders.values()) == contested

        # No phantom orders: every order recorded for this event was answered 201.
        placed = {
            n.originator_id
            for n in app.recorder.select_notifications(start=0, limit=1_000_000, topics=[_topic(Order.Placed)])
        }
        recorded = {oid for oid in placed if app.load(UUID(str(oid)), "order", Order).event_id == UUID(show.id)}
        assert recorded == set(accepted) | set(seat_orders)
    finally:
        app.close()


def _topic(cls: type) -> str:
    from eventsourcing.utils import get_topic

    return get_topic(cls)
