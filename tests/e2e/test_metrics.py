"""`/metrics` of a deployment of several processes: the 2 API processes' request counters add up,
and the business metrics of the claims service, the worker and the projector show in the API's
answer (prometheus_client's multiprocess mode, one directory per stack)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import bearer, order, publish_show, verified_token
from tests.e2e.door_helpers import day_pass_show, free_tickets
from ticketing import Settings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(base_url: str, token: str) -> Samples:
    r = httpx.get(f"{base_url}/metrics", headers=bearer(token), timeout=30)
    assert r.status_code == 200, r.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def order_answers(samples: Samples) -> float:
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == "ticketing_requests_total"
        and dict(ls).get("method") == "POST"
        and dict(ls).get("path") == "/api/v1/orders"
        and dict(ls).get("status_code") == "201"
    )


def test_metrics_add_up_over_every_process(service: str, client: httpx.Client, admin_token: str,
                                           settings: Settings) -> None:  # fmt: skip
    show = publish_show(client, admin_token, ga_quantity=500, max_per_order=1)
    day = day_pass_show(client, admin_token, days=1)
    buyer = verified_token(client)
    before = scrape(service, admin_token)

    # Each order on a connection of its own, several at once, until both API processes have
    # answered some (the request id's prefix names the process).
    processes: set[str] = set()

    def place(_: int) -> tuple[int, str]:
        with httpx.Client(base_url=f"{service}/api/v1", timeout=30) as c:
            r = order(c, buyer, [{"offer_id": show.ga_offer, "quantity": 1}])
            return r.status_code, r.headers["x-request-id"].split("-")[0]

    placed = 0
    with ThreadPoolExecutor(8) as pool:
        while placed < 200 and (len(processes) < 2 or placed < 40):
            for status, process in pool.map(place, range(8)):
                assert status == 201
                placed += 1
                processes.add(process)
    assert len(processes) == 2, "every order went to one API process"

    # One refusal (a seat taken), and free tickets issued in an API process.
    assert order(client, buyer, [{"offer_id": show.seat_offer, "seat_id": show.seats[0]}]).status_code == 201
    refused = order(client, buyer, [{"offer_id": show.seat_offer, "seat_id": show.seats[0]}])
    assert refused.status_code == 409 and refused.json()["code"] == "seat_taken", refused.text
    tickets = free_tickets(client, buyer, [{"offer_id": day.offers[day.days[0]], "quantity": 3}])
    placed += 2  # the seat and the free order

    after = scrape(service, admin_token)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    # Answers counted by the API process that gave them, summed over both.
    assert order_answers(after) - order_answers(before) == placed
    # The claims service's counts, read through the API.
    assert delta("ticketing_orders_placed_total") == placed
    assert delta("ticketing_orders_refused_total", reason="seat_taken") == 1
    assert delta("ticketing_claim_batch_size_count") >= 1
    assert delta("ticketing_claim_batch_size_sum") == placed + 1
    assert delta("ticketing_claim_wait_seconds_count") == placed + 1
    assert 0 < delta("ticketing_claim_wait_seconds_sum") < 5 * (placed + 1)
    assert delta("ticketing_tickets_issued_total") == len(tickets) == 3

    # Levels sampled by the projector and the worker every few seconds.
    deadline = time.monotonic() + 30
    while True:
        now = scrape(service, admin_token)
        holds = total(now, "ticketing_active_holds")
        lags: dict[str, Any] = {
            dict(ls)["model"]: v for (n, ls), v in now.items() if n == "ticketing_projection_lag_events"
        }
        if holds >= placed - 1 and lags and max(lags.values()) < 100:
            break
        assert time.monotonic() < deadline, (holds, lags)
        time.sleep(1)
    assert {"orders", "holds", "tickets"} <= set(lags), lags
    head = total(now, "ticketing_event_store_position")
    assert head > 0
    assert all(total(now, "ticketing_projection_position", model=m) <= head for m in lags)
    assert ("ticketing_webhook_backlog", ()) in now
    assert ("ticketing_mail_backlog", ()) in now
    assert total(now, "ticketing_webhook_backlog") >= 0 and total(now, "ticketing_mail_backlog") >= 0
