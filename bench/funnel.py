"""Scenarios beyond the hold: the whole purchase (`hot-funnel`), a long sale (`hot-ga-long`) and
many shows on sale at once (`many-shows`).

`hot-funnel`: every buyer holds 1-2 tickets of one offer, starts the payment (a PaymentIntent at
the Stripe stand-in, as the checkout page does) and then posts the `payment_intent.succeeded`
event Stripe would send, signed with the webhook secret, to `/webhooks/stripe` (the delivery is
stored and acknowledged; a worker applies it: the order is paid and its tickets issued). The
figures: completed purchases per second (orders whose webhook was acknowledged and whose tickets
were issued), each step's latency, and the issuance lag: from posting the webhook to the order's
tickets being issued (`read.tickets.issued_at`, the time the worker recorded the payment).

`hot-ga-long`: one offer of 200,000 tickets sold one per order, so the sale lasts about a minute:
the rate of its last 10 seconds against its first 10, and the resident memory of the service's
processes sampled every second.

`many-shows`: 20 shows on sale at once, each buyer's next order for a show drawn at random among
those not yet sold out.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg

from bench import seed
from bench.cpu import classify, psutil
from bench.drive import elapsed, latency_ms, outcomes, per_second, percentile, run_load, sustained, timed
from bench.invariants import check_ga
from bench.scenarios import Bench, _errors, _rate, _sale_figures, _unanswered
from bench.stack import log

# The service's own processes, whose memory `hot-ga-long` follows.
_SERVICE = ("api", "claims", "projector", "notifier", "worker")


# --------------------------------------------------------------------------------------------
# hot-funnel


def hot_funnel(b: Bench) -> dict[str, Any]:
    """Hold, payment and webhook for every purchase; figures per step and for the issuance."""
    s = b.scale
    offsets = b.stack.log_offsets()
    with timed() as seed_s:
        show = seed.create_ga_show(b.writer, b.people.organizer_id, s.funnel_tickets, "Hot Funnel Night")
        caught_up = b.stack.wait_caught_up(show.position)
    tokens = b.tokens()
    log(f"hot-funnel: {s.funnel_buyers} buyers hold, pay and are confirmed by webhook for {s.funnel_tickets} tickets")
    run = run_load(
        b.stack,
        "hot-funnel",
        {
            "kind": "funnel",
            "concurrency": s.funnel_buyers,
            "tokens": tokens,
            "offer_id": str(show.offer_id),
            "webhook_secret": b.stack.env["STRIPE_WEBHOOK_SECRET"],
            "min_quantity": 1,
            "max_quantity": 2,
            "after_sellout": s.funnel_rejections_after_sellout,
            "max_seconds": s.funnel_max_seconds,
            "max_requests": 4 * s.funnel_tickets + 4 * s.funnel_rejections_after_sellout,
        },
    )
    holds, payments, hooks = run.of("hold"), run.of("payment"), run.of("webhook")
    held = [r for r in holds if r[2] == 201]
    acknowledged = [r for r in hooks if r[2] == 200]
    log(f"hot-funnel: waiting for the tickets of {len(acknowledged)} acknowledged payments")
    issued, waited_s = _wait_issued(b, show.event_id, [UUID(r[6][0]) for r in acknowledged], s.funnel_max_seconds)
    lags = sorted(
        (issued[UUID(r[6][0])][0] - r[6][2]) * 1000 for r in acknowledged if UUID(r[6][0]) in issued
    )  # fmt: skip
    window = elapsed(run)
    completed = [r for r in acknowledged if UUID(r[6][0]) in issued]
    invariants = _check_funnel(b, show, held, acknowledged, issued, _unanswered(run.records))
    return {
        "scenario": "hot-funnel",
        "buyers": s.funnel_buyers,
        "offered": s.funnel_tickets,
        "purchases_per_s": _rate(len(completed), window),
        "purchases_per_s_each_second": sustained(per_second(completed, window)),
        "purchases_completed": len(completed),
        "tickets_issued": sum(issued[UUID(r[6][0])][1] for r in completed),
        "holds_accepted": len(held),
        "sold_out": run.state.get("sold_out_at") is not None,
        "seconds": round(window, 3),
        "latency_ms": {"hold": latency_ms(holds), "payment": latency_ms(payments), "webhook": latency_ms(hooks)},
        "issuance_lag_ms": _distribution(lags),
        "issuance_waited_after_run_s": waited_s,
        "errors": _errors([r for r in run.records if r[2] != 200 or r[4] == "hold"], {"409 sold_out"}),
        "outcomes": {"hold": outcomes(holds), "payment": outcomes(payments), "webhook": outcomes(hooks)},
        "stopped_by": run.stopped_by,
        "cpu": run.cpu,
        "invariants": invariants,
        "seed": {"seconds": seed_s(), "projection_catch_up_s": caught_up["seconds"]},
        "log_findings": b.stack.log_findings(offsets),
        "definition": (
            "purchases_per_s: orders whose signed payment_intent.succeeded was acknowledged (200) and whose "
            "tickets were issued, over the run's wall time; issuance_lag_ms: from posting the webhook to the "
            "tickets' issued_at (when the worker recorded the payment)"
        ),
    }


def _wait_issued(
    b: Bench, event_id: UUID, order_ids: list[UUID], timeout: float
) -> tuple[dict[UUID, tuple[float, int]], float]:
    """{order id: (epoch seconds its tickets were issued, how many)} for these orders, waiting
    until every one has its tickets in the read model or `timeout` passed."""
    started = time.monotonic()
    wanted = set(order_ids)
    found: dict[UUID, tuple[float, int]] = {}
    with psycopg.connect(b.stack.settings.database_url) as conn:
        while True:
            rows = conn.execute(
                """SELECT order_id, extract(epoch FROM min(issued_at)), count(*) FROM read.tickets
                   WHERE event_id = %s GROUP BY order_id""",
                (event_id,),
            ).fetchall()
            found = {row[0]: (float(row[1]), int(row[2])) for row in rows if row[0] in wanted}
            if len(found) == len(wanted) or time.monotonic() - started > timeout:
                return found, round(time.monotonic() - started, 3)
            time.sleep(0.5)


def _check_funnel(
    b: Bench,
    show: seed.GaShow,
    held: list[list[Any]],
    acknowledged: list[list[Any]],
    issued: dict[UUID, tuple[float, int]],
    unanswered: int,
) -> dict[str, Any]:
    """From the event store: nothing oversold, every acknowledged payment paid with all its
    tickets, every 201 hold stored, and the offer's sold count equal to the tickets paid for."""
    offer: Any = b.app.get_offer(show.offer_id)
    quantity = {UUID(r[6][1]): r[6][0] for r in held}
    missing = unpaid = short = 0
    for r in acknowledged:
        order_id = UUID(r[6][0])
        try:
            order: Any = b.app.get_order(order_id)
        except Exception:  # noqa: BLE001 - any failure to load counts as lost
            missing += 1
            continue
        if order.status != "paid":
            unpaid += 1
        if issued.get(order_id, (0, 0))[1] != quantity.get(order_id):
            short += 1
    lost_holds = 0
    for order_id in quantity:
        with contextlib.suppress(Exception):
            b.app.get_order(order_id)
            continue
        lost_holds += 1
    paid_tickets = sum(quantity[UUID(r[6][0])] for r in acknowledged)
    violations = {
        "oversold": max(0, offer.held + offer.sold - show.tickets),
        "acknowledged_but_missing": missing,
        "acknowledged_but_not_paid": unpaid,
        "acknowledged_but_tickets_missing": short,
        "held_201_but_missing": lost_holds,
        "sold_counter_mismatch": abs(offer.sold - paid_tickets),
    }
    return {
        "ok": not any(violations.values()),
        "violations": sum(violations.values()),
        "detail": violations,
        "unanswered_requests": unanswered,
        "offer": {"held": offer.held, "sold": offer.sold, "offered": show.tickets},
    }


def _distribution(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    out: dict[str, Any] = {"count": len(values)}
    for p in (50, 90, 99):
        out[f"p{p}"] = round(percentile(values, p), 1)
    out["max"] = round(values[-1], 1)
    return out


# --------------------------------------------------------------------------------------------
# hot-ga-long


@contextlib.contextmanager
def _memory_sampler(every: float = 1.0) -> Iterator[list[tuple[float, dict[str, float]]]]:
    """Samples (seconds since start, {group: resident MiB}) of the service's processes."""
    samples: list[tuple[float, dict[str, float]]] = []
    stop = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while not stop.wait(every):
            sizes: dict[str, float] = dict.fromkeys(_SERVICE, 0.0)
            for proc in psutil.Process().children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    group = classify(proc)
                    if group in sizes:
                        sizes[group] += proc.memory_info().rss / 2**20
            samples.append((time.monotonic() - started, {k: round(v, 1) for k, v in sizes.items()}))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def hot_ga_long(b: Bench) -> dict[str, Any]:
    """One offer of 200,000 tickets, one per order: is the last 10 s as fast as the first 10 s,
    and does the service's memory stay flat?"""
    s = b.scale
    offsets = b.stack.log_offsets()
    with timed() as seed_s:
        show = seed.create_ga_show(b.writer, b.people.organizer_id, s.long_tickets, "Long GA Night")
        caught_up = b.stack.wait_caught_up(show.position)
    tokens = b.tokens()
    log(f"hot-ga-long: {s.ga_buyers} buyers for {s.long_tickets} tickets, one per order")
    with _memory_sampler() as memory:
        run = run_load(
            b.stack,
            "hot-ga-long",
            {
                "kind": "ga_orders",
                "concurrency": s.ga_buyers,
                "tokens": tokens,
                "offer_id": str(show.offer_id),
                "tickets": s.long_tickets,
                "min_quantity": 1,
                "max_quantity": 1,
                "after_sellout": s.ga_rejections_after_sellout,
                "max_seconds": s.long_max_seconds,
                "max_requests": 2 * s.long_tickets + 4 * s.ga_rejections_after_sellout,
            },
        )
    records = run.of("order")
    ok = [r for r in records if r[2] == 201]
    sold_out_at: float | None = run.state.get("sold_out_at")
    window = sold_out_at or elapsed(run)
    buckets = per_second(ok, window)
    inner = buckets[1:-1]  # whole seconds only
    first, last = sum(inner[:10]), sum(inner[-10:])
    log("hot-ga-long: checking invariants")
    invariants = check_ga(
        b.app,
        event_id=show.event_id,
        offer_id=show.offer_id,
        offered=s.long_tickets,
        accepted=[(UUID(r[6][2]), b.buyer_id(r[6][0]), r[6][1]) for r in ok],
        unanswered=_unanswered(records),
    )
    return {
        "scenario": "hot-ga-long",
        "buyers": s.ga_buyers,
        "offered": s.long_tickets,
        **_sale_figures(ok, len(ok), window, sold_out_at, records),
        "selling_s": round(window, 1),
        "first_10s_orders": first,
        "last_10s_orders": last,
        "last_10s_vs_first_10s": round(last / first, 3) if first else None,
        "memory_mib": _memory_summary(memory),
        "errors": _errors(records, {"409 sold_out"}),
        "outcomes": outcomes(records),
        "latency_ms": {"all": latency_ms(records), "accepted_201": latency_ms(ok)},
        "stopped_by": run.stopped_by,
        "cpu": run.cpu,
        "invariants": invariants,
        "seed": {"seconds": seed_s(), "projection_catch_up_s": caught_up["seconds"]},
        "log_findings": b.stack.log_findings(offsets),
    }


def _memory_summary(samples: list[tuple[float, dict[str, float]]]) -> dict[str, Any]:
    """Resident memory of the service's processes after 10 s of the sale and at its end, and
    the ratio (the first seconds fill caches and pools, so they are the baseline)."""
    if not samples:
        return {}
    total = [(t, sum(sizes.values())) for t, sizes in samples]
    baseline = next((size for t, size in total if t >= 10), total[0][1])
    end = total[-1][1]
    return {
        "after_10s": round(baseline, 1),
        "at_end": round(end, 1),
        "peak": round(max(size for _, size in total), 1),
        "end_vs_10s": round(end / baseline, 3) if baseline else None,
        "by_process_at_end": samples[-1][1],
        "samples": len(samples),
    }


# --------------------------------------------------------------------------------------------
# many-shows


def many_shows(b: Bench) -> dict[str, Any]:
    """20 shows on sale at once; every buyer's order goes to a show drawn at random."""
    s = b.scale
    offsets = b.stack.log_offsets()
    with timed() as seed_s:
        shows = [
            seed.create_ga_show(b.writer, b.people.organizer_id, s.many_tickets, f"Many Shows Night {i + 1}")
            for i in range(s.many_shows)
        ]
        caught_up = b.stack.wait_caught_up(max(show.position for show in shows))
    tokens = b.tokens()
    log(f"many-shows: {s.ga_buyers} buyers over {s.many_shows} shows of {s.many_tickets} tickets")
    run = run_load(
        b.stack,
        "many-shows",
        {
            "kind": "many_ga_orders",
            "concurrency": s.ga_buyers,
            "tokens": tokens,
            "offer_ids": [str(show.offer_id) for show in shows],
            "min_quantity": 1,
            "max_quantity": 4,
            "after_sellout": s.ga_rejections_after_sellout,
            "max_seconds": s.ga_max_seconds,
            "max_requests": 4 * s.many_shows * s.many_tickets + 4 * s.ga_rejections_after_sellout,
        },
    )
    records = run.of("order")
    ok = [r for r in records if r[2] == 201]
    sold_out_at: float | None = run.state.get("sold_out_at")
    window = sold_out_at or elapsed(run)
    log("many-shows: checking invariants")
    checks = [
        check_ga(
            b.app,
            event_id=show.event_id,
            offer_id=show.offer_id,
            offered=s.many_tickets,
            accepted=[(UUID(r[6][3]), b.buyer_id(r[6][0]), r[6][1]) for r in ok if r[6][2] == str(show.offer_id)],
            unanswered=0,
        )
        for show in shows
    ]
    violations = sum(c["violations"] for c in checks)
    return {
        "scenario": "many-shows",
        "buyers": s.ga_buyers,
        "shows": s.many_shows,
        "offered_per_show": s.many_tickets,
        **_sale_figures(ok, sum(r[6][1] for r in ok), window, sold_out_at, records),
        "errors": _errors(records, {"409 sold_out"}),
        "outcomes": outcomes(records),
        "latency_ms": {"all": latency_ms(records), "accepted_201": latency_ms(ok)},
        "stopped_by": run.stopped_by,
        "cpu": run.cpu,
        "invariants": {
            "ok": violations == 0,
            "violations": violations,
            "unanswered_requests": _unanswered(records),
            "shows_sold_out": sum(1 for show in shows if _claimed(b, show.offer_id) >= s.many_tickets),
        },
        "seed": {"seconds": seed_s(), "projection_catch_up_s": caught_up["seconds"]},
        "log_findings": b.stack.log_findings(offsets),
    }


def _claimed(b: Bench, offer_id: UUID) -> int:
    offer: Any = b.app.get_offer(offer_id)
    return int(offer.held + offer.sold)
