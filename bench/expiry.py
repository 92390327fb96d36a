"""`expiry`: 25,000 lapsed holds of one hot offer, and how long until all are back on sale.

Two phases, each on its own general-admission show with one offer of exactly as many tickets as
holds (so the offer is sold out until expiry returns them):

- `messages`, the production path: the holds are placed through the claim writer of the bench
  process with the service's own `after_commit` hook, so every committed claim batch queues one
  delayed `expire_holds` message for its deadline, as the API and the claims service do;
- `sweep`, the safety net: the same holds with no message queued (as after a worker outage that
  lost them); once they have lapsed and the read model of holds lists them, one `sweep_holds`
  message is sent (the scheduler also sends one every SWEEP_INTERVAL_SECONDS).

The holds are placed `at` a moment chosen so that all of them lapse together, a little after
placing them is expected to have finished (`PLACE_SECONDS`). The clock runs from that deadline
until the event store shows the offer with nothing held (polled from this process every 50 ms),
i.e. until every hold is back on sale; the read models catching up with it is reported apart, and
the CPU each process group used over that window beside it.
From the store afterwards: how many orders were expired, and in how many transactions the offer
was written (rows one transaction inserts share its `xmin`).
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from psycopg.sql import SQL, Identifier

from bench import seed
from bench.cpu import usage
from bench.stack import log
from commands.claims import ClaimRequest, Placed
from domain.offer import Offer
from domain.placement import ItemRequest
from ticketing import declare_actors

if TYPE_CHECKING:
    from bench.scenarios import Bench

HOLDS = {"full": 25_000, "quick": 2_500}
# Seconds from the start of placing to the holds' common deadline.
PLACE_SECONDS = {"full": 45.0, "quick": 15.0}
# How long a phase may wait for the holds to come back before it gives up.
MAX_SECONDS = 600.0
TARGET_SECONDS = 30.0


def expiry(b: Bench) -> dict[str, Any]:
    holds = HOLDS[b.scale.name]
    offsets = b.stack.log_offsets()
    actors = declare_actors(b.stack.settings)
    phases = {phase: _phase(b, actors, phase, holds) for phase in ("messages", "sweep")}
    return {
        "scenario": "expiry",
        "holds": holds,
        # The figure against the target: the slower of the two paths.
        "seconds_to_back_on_sale": max(p["seconds_to_back_on_sale"] for p in phases.values()),
        "target_s": TARGET_SECONDS,
        "phases": phases,
        "log_findings": b.stack.log_findings(offsets),
    }


def _phase(b: Bench, actors: Any, phase: str, holds: int) -> dict[str, Any]:
    app = b.app
    show = seed.create_ga_show(b.writer, b.people.organizer_id, holds, f"Expiry {phase}")
    b.stack.wait_caught_up(show.position)
    deadline = datetime.now(UTC) + timedelta(seconds=PLACE_SECONDS[b.scale.name])
    at = deadline - timedelta(seconds=app.policy.hold_seconds)
    writer = app.writer
    hook = writer.after_commit
    writer.after_commit = actors.schedule_expiries if phase == "messages" else None
    log(f"expiry/{phase}: placing {holds} holds of one offer, all lapsing at {deadline:%H:%M:%S}")
    started = time.monotonic()
    try:
        futures: list[Future[Placed]] = []
        for n in range(holds):
            future: Future[Placed] = Future()
            writer.submit(ClaimRequest.new(b.buyer_id(n % len(b.people.buyers)), [ItemRequest(show.offer_id, 1)],
                                           None, at=at, future=future))  # fmt: skip
            futures.append(future)
        placed = [f.result(timeout=300).order.id for f in futures]
        placing_s = time.monotonic() - started
        position = app.recorder.max_notification_id() or 0
        if not _settled(writer):
            log(f"expiry/{phase}: the claim writer's hooks were still busy after placing")
    finally:
        writer.after_commit = hook
    late = datetime.now(UTC) > deadline
    if late:
        log(f"expiry/{phase}: placing took {placing_s:.1f}s, past the deadline; the clock still starts at it")
    sweep_sent_after = None
    if phase == "sweep":
        b.stack.wait_caught_up(position)  # the sweep finds holds through their read model
        _sleep_until(deadline)
        sweep_sent_after = _since(deadline)
        actors.sweep_holds.send()
    log(f"expiry/{phase}: waiting for {holds} holds to come back")
    _sleep_until(deadline)
    before = b.stack.meter.snapshot()
    progress: list[int] = []
    next_mark = 1.0
    while True:
        offer = app.load(show.offer_id, "offer", Offer)
        elapsed = _since(deadline)
        if elapsed >= next_mark:
            progress.append(holds - offer.held)
            next_mark += 1.0
        if offer.held == 0 or elapsed > MAX_SECONDS:
            break
        time.sleep(0.05)
    back_s = _since(deadline)
    cpu = usage(before, b.stack.meter.snapshot())
    caught_up = b.stack.wait_caught_up(app.recorder.max_notification_id() or 0)
    store = _store_figures(b, placed, show.offer_id, position)
    log(f"expiry/{phase}: {holds - offer.held} of {holds} back on sale {back_s:.2f}s after the deadline, "
        f"{store['offer_saves']} saves of the offer")  # fmt: skip
    return {
        "placing_s": round(placing_s, 3),
        "placed_past_deadline": late,
        "sweep_sent_after_s": None if sweep_sent_after is None else round(sweep_sent_after, 3),
        "seconds_to_back_on_sale": round(back_s, 3),
        "all_back": offer.held == 0,
        "available_after": offer.available,
        "returned_by_second": progress,
        "read_models_caught_up_s": caught_up["seconds"],
        **store,
        "cpu": cpu,
    }


def _store_figures(b: Bench, orders: list[UUID], offer_id: UUID, after: int) -> dict[str, Any]:
    """From the event store: orders expired, and the transactions that wrote the offer."""
    recorder: Any = b.app.recorder
    table = SQL("{schema}.{table}").format(
        schema=Identifier(recorder.datastore.schema), table=Identifier(recorder.events_table_name)
    )
    with recorder.datastore.get_connection() as conn:
        expired = conn.execute(
            SQL("SELECT count(*) AS n FROM {} WHERE notification_id > %s AND originator_id = ANY(%s) "
                "AND topic LIKE '%%Order.Expired'").format(table),
            (after, orders),
        ).fetchone()  # fmt: skip
        offer = conn.execute(
            SQL("SELECT count(*) AS events, count(DISTINCT xmin::text) AS saves FROM {} "
                "WHERE notification_id > %s AND originator_id = %s").format(table),
            (after, offer_id),
        ).fetchone()  # fmt: skip
    return {
        "orders_expired": expired["n"] if expired else 0,
        "offer_events": offer["events"] if offer else 0,
        "offer_saves": offer["saves"] if offer else 0,
    }


def _settled(writer: Any, timeout: float = 30) -> bool:
    """Wait until the writer's after-commit hooks (queuing the expiry messages) have run."""
    done: Future[None] = writer._hooks.submit(lambda: None)
    try:
        done.result(timeout=timeout)
    except TimeoutError:
        return False
    return True


def _since(moment: datetime) -> float:
    return (datetime.now(UTC) - moment).total_seconds()


def _sleep_until(moment: datetime) -> None:
    wait = -_since(moment)
    if wait > 0:
        time.sleep(wait)
