"""Holds lapse at their deadline (delayed message) and inventory comes back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import start_service
from tests.e2e.conftest import bearer, order, publish_show, register, stateless_client
from ticketing import Settings


@pytest.fixture(scope="module")
def short_holds(stack_env: dict[str, str], settings: Settings) -> Iterator[httpx.Client]:
    env = {**stack_env, "HOLD_SECONDS": "2", "SWEEP_INTERVAL_SECONDS": "1"}
    with start_service(env, "e2e-short-holds", web_workers=1) as processes, stateless_client(processes.base_url) as c:
        yield c


def test_an_expired_hold_returns_seats_and_quantity(short_holds: httpx.Client, admin_token: str) -> None:
    client = short_holds
    show = publish_show(client, admin_token, ga_quantity=3, seats=2)
    buyer = register(client)
    r = order(
        client,
        buyer,
        [{"offer_id": show.ga_offer, "quantity": 3}, {"offer_id": show.seat_offer, "seat_id": show.seats[0]}],
    )
    assert r.status_code == 201, r.text
    placed = r.json()
    assert order(client, register(client), [{"offer_id": show.ga_offer, "quantity": 1}]).status_code == 409

    deadline = time.monotonic() + 20
    status = placed["status"]
    while status != "expired" and time.monotonic() < deadline:
        time.sleep(0.25)
        status = client.get(f"/orders/{placed['id']}", headers=bearer(buyer)).json()["status"]
    assert status == "expired"

    offers = {o["id"]: o for o in client.get(f"/events/{show.id}/offers").json()}
    assert offers[show.ga_offer]["available"] == 3
    seat_map = client.get(f"/events/{show.id}/seat-map").json()
    assert all(s["status"] == "available" for sec in seat_map["sections"] for row in sec["rows"] for s in row["seats"])
    again = order(client, register(client), [{"offer_id": show.seat_offer, "seat_id": show.seats[0]}])
    assert again.status_code == 201
    gone = client.post(f"/orders/{placed['id']}/cancel", headers=bearer(buyer))
    assert gone.status_code == 409
