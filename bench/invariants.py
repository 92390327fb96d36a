"""Invariants checked from the event store after a sale: nothing oversold, nothing lost, no phantoms.

The load generator knows what every client was told; the event store knows what happened. Every
201 must name an order that exists with exactly what was asked for; no order may exist for the
show that no client was told about (a phantom: the buyer never learnt of a hold that blocks
inventory until it expires); the offer's counters must equal the sum of the accepted orders; and
no seat may ever have had two holders at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from commands.boxoffice import BoxOffice
from domain.offer import Offer
from domain.order import Order
from domain.seat import Seat

PAGE = 10_000


def notifications(app: BoxOffice, topics: Sequence[str]) -> Iterator[Notification]:
    """Every notification of the given topics, oldest first."""
    last = 0
    while True:
        page = app.recorder.select_notifications(start=last, limit=PAGE, topics=topics, inclusive_of_start=False)
        if not page:
            return
        yield from page
        last = page[-1].id


def orders_placed_for(app: BoxOffice, event_id: UUID) -> dict[UUID, Any]:
    """Order.Placed events of one show, by order id."""
    found: dict[UUID, Any] = {}
    for n in notifications(app, [get_topic(Order.Placed)]):
        placed: Any = app.mapper.to_domain_event(n)
        if placed.event_id == event_id:
            found[placed.originator_id] = placed
    return found


def _load_order(app: BoxOffice, order_id: UUID) -> Order | None:
    try:
        aggregate: Any = app.repository.get(order_id)
    except Exception:  # noqa: BLE001 - any failure to load counts as a missing order
        return None
    return aggregate if isinstance(aggregate, Order) else None


def check_ga(
    app: BoxOffice,
    *,
    event_id: UUID,
    offer_id: UUID,
    offered: int,
    accepted: list[tuple[UUID, UUID, int]],
    unanswered: int,
) -> dict[str, Any]:
    """`accepted`: (order id, buyer id, quantity) of every 201; `unanswered`: 5xx and transport errors."""
    started = time.monotonic()
    offer = app.get_offer(offer_id)
    assert isinstance(offer, Offer)
    ids = [a[0] for a in accepted]
    missing = mismatched = not_held = 0
    for order_id, buyer_id, quantity in accepted:
        order = _load_order(app, order_id)
        if order is None:
            missing += 1
            continue
        items = [(i["offer_id"], i["seat_id"], i["quantity"]) for i in order.items]
        if order.event_id != event_id or order.buyer_id != buyer_id or items != [(offer_id, None, quantity)]:
            mismatched += 1
        if order.status != "held":
            not_held += 1
    placed = orders_placed_for(app, event_id)
    phantoms = set(placed) - set(ids)
    accepted_tickets = sum(a[2] for a in accepted)
    claimed = offer.held + offer.sold
    violations = {
        "oversold": max(0, claimed - offered),
        "accepted_but_missing": missing,
        "accepted_but_different": mismatched,
        "duplicate_201_ids": len(ids) - len(set(ids)),
        "phantom_orders": len(phantoms),
        "counter_mismatch": abs(claimed - accepted_tickets),
    }
    return {
        "ok": not any(violations.values()),
        "violations": sum(violations.values()),
        "detail": violations,
        "offered": offered,
        "offer_held": offer.held,
        "offer_sold": offer.sold,
        "tickets_accepted": accepted_tickets,
        "orders_accepted": len(accepted),
        "orders_in_store": len(placed),
        "orders_not_held": not_held,
        "unanswered_requests": unanswered,
        "check_seconds": round(time.monotonic() - started, 2),
    }


SEAT_TOPICS = [get_topic(c) for c in (Seat.Held, Seat.Released, Seat.Sold, Seat.SoldWithoutHold, Seat.Returned)]


def check_seats(
    app: BoxOffice,
    *,
    event_id: UUID,
    seat_ids: set[UUID],
    accepted: list[tuple[UUID, UUID, list[UUID]]],
    unanswered: int,
    sample: int = 500,
) -> dict[str, Any]:
    """`accepted`: (order id, buyer id, seat ids) of every 201."""
    started = time.monotonic()
    wanted = {order_id: seats for order_id, _, seats in accepted}
    ids = [a[0] for a in accepted]
    claimed_by_clients = [s for _, _, seats in accepted for s in seats]
    # Replay every seat's holds and releases: a second holder before a release is a double booking.
    holder: dict[UUID, UUID | None] = {}
    double_holds = 0
    for n in notifications(app, SEAT_TOPICS):
        if n.originator_id not in seat_ids:
            continue
        change: Any = app.mapper.to_domain_event(n)
        name = type(change).__name__
        if name in ("Held", "SoldWithoutHold"):
            if holder.get(change.originator_id) is not None:
                double_holds += 1
            holder[change.originator_id] = change.order_id
        elif name in ("Released", "Returned"):
            holder[change.originator_id] = None
    held_by = {seat: order for seat, order in holder.items() if order is not None}
    held_not_accepted = sum(1 for seat, order in held_by.items() if seat not in wanted.get(order, ()))
    accepted_not_held = sum(1 for order, seats in wanted.items() for s in seats if held_by.get(s) != order)
    missing = mismatched = 0
    for order_id, buyer_id, seats in accepted:
        order = _load_order(app, order_id)
        if order is None:
            missing += 1
            continue
        if order.event_id != event_id or order.buyer_id != buyer_id or sorted(order.seat_ids()) != sorted(seats):
            mismatched += 1
    # The aggregates themselves agree with the history above (a sample; each load is a query).
    rng = random.Random(5)
    disagree = 0
    for seat_id in rng.sample(sorted(seat_ids), min(sample, len(seat_ids))):
        seat: Any = app.repository.get(seat_id)
        if seat.order_id != held_by.get(seat_id) or (seat.status == "available") != (seat_id not in held_by):
            disagree += 1
    placed = orders_placed_for(app, event_id)
    phantoms = set(placed) - set(ids)
    violations = {
        "double_holds_in_history": double_holds,
        "seat_in_two_accepted_orders": len(claimed_by_clients) - len(set(claimed_by_clients)),
        "held_seat_without_its_201": held_not_accepted,
        "accepted_seat_not_held_by_its_order": accepted_not_held,
        "accepted_but_missing": missing,
        "accepted_but_different": mismatched,
        "duplicate_201_ids": len(ids) - len(set(ids)),
        "phantom_orders": len(phantoms),
        "aggregate_disagrees_with_history": disagree,
    }
    return {
        "ok": not any(violations.values()),
        "violations": sum(violations.values()),
        "detail": violations,
        "seats": len(seat_ids),
        "seats_held": len(held_by),
        "seats_accepted": len(claimed_by_clients),
        "orders_accepted": len(accepted),
        "orders_in_store": len(placed),
        "unanswered_requests": unanswered,
        "seat_aggregates_sampled": min(sample, len(seat_ids)),
        "check_seconds": round(time.monotonic() - started, 2),
    }
