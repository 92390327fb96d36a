"""Postgres restarts in the middle of an on-sale: every order that was stored is answered as
placed, nothing is answered 500, nothing is oversold, and retries with the key are safe."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import httpx

from domain.ids import order_id_for_idempotency_key
from tests.e2e.conftest import bearer, publish_show
from tests.faults.conftest import FaultStack, admin, offer_claims, stored_orders, verified_buyer


def test_a_postgres_restart_mid_sale_loses_nothing_and_answers_honestly(faults: FaultStack) -> None:
    stack = faults
    stock = 600
    show = publish_show(stack.client, admin(stack), ga_quantity=stock, seats=2, max_per_order=2,
                        organizer=verified_buyer(stack, "organizer"))  # fmt: skip
    buyers = [verified_buyer(stack) for _ in range(12)]
    ids = {token: UUID(stack.client.get("/auth/me", headers=bearer(token)).json()["id"]) for token in buyers}
    answers: dict[tuple[str, str], int] = {}
    stop = threading.Event()

    def buy(token: str) -> None:
        with httpx.Client(base_url=f"{stack.base_url}/api/v1", timeout=60) as client:
            n = 0
            while not stop.is_set():
                key = f"k-{n}"
                n += 1
                try:
                    r = client.post("/orders", headers={**bearer(token), "Idempotency-Key": key},
                                    json={"items": [{"offer_id": show.ga_offer, "quantity": 1}]})  # fmt: skip
                except httpx.TransportError:
                    answers[(token, key)] = 0
                    continue
                answers[(token, key)] = r.status_code
                if r.status_code == 409:  # sold out
                    return

    with ThreadPoolExecutor(len(buyers)) as pool:
        for token in buyers:
            pool.submit(buy, token)
        time.sleep(1.5)
        stack.services.restart_postgres()
        time.sleep(3)
        stop.set()

    statuses = Counter(answers.values())
    print("answers by status during the restart:", dict(statuses))
    assert statuses[500] == 0, statuses
    assert statuses[201] > 0, statuses
    stored = stored_orders(stack, show.ga_offer)
    for (token, key), status in answers.items():
        order_id = order_id_for_idempotency_key(ids[token], key)
        if order_id in stored:
            assert status in (200, 201), (key, status, statuses)  # stored, so it was answered as placed
        elif status in (200, 201):
            raise AssertionError(f"answered {status} for an order that is not stored")
    # Whatever was answered otherwise is safe to retry with its key: one order per key at most.
    with httpx.Client(base_url=f"{stack.base_url}/api/v1", timeout=60) as client:
        for (token, key), status in answers.items():
            if status not in (200, 201, 409):
                r = client.post("/orders", headers={**bearer(token), "Idempotency-Key": key},
                                json={"items": [{"offer_id": show.ga_offer, "quantity": 1}]})  # fmt: skip
                assert r.status_code in (200, 201, 409), r.text
    held = offer_claims(stack, show.ga_offer)
    assert 0 < held <= stock
    assert len(stored_orders(stack, show.ga_offer)) == held  # one unit each: never oversold, nothing lost
