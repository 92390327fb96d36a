"""Waitlist commands: join, leave, and promote (offer kept stock to the first in line).

Stock that comes back while people wait is kept for them by the release itself (`Offer.release`,
`Offer.take_back`, `SalesCommands._keep_seat_for_waitlist`), in the same transaction, so the
public never sees it. `promote_waitlist` then turns kept stock into a held order for the first in
line, saving the Offer, the Order, its seats and the Waitlist together. It is idempotent: the
order id derives from the entry (`waitlist_order_id`), so two promotions racing for one entry
conflict on save and the loser decides again on fresh state (`retrying`).

Who promotes: after every save that returned stock to an offer with a waitlist, `save` calls the
`after_waitlist_change` hook (the composition root queues a `promote_waitlist` message); the
scheduler's waitlist sweep is the safety net, and it also settles offered entries whose order
was paid (`converted`) or closed unpaid (`lapsed`) without a release of that offer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Recording
from psycopg import Connection

from commands.base import utcnow
from commands.sales import SalesCommands
from domain.errors import Conflict, NotFound
from domain.event import Event
from domain.ids import seat_id
from domain.offer import Offer
from domain.order import Order, OrderItem
from domain.seat import Seat
from domain.venue import Venue
from domain.waitlist import NotSoldOut, Waitlist, waitlist_id, waitlist_order_id

log = logging.getLogger("waitlist")

PAID_STATES = ("paid", "partially_refunded", "refunded")
CLOSED_STATES = ("expired", "cancelled")
# Offer events after which the waitlist may have something to do: stock came back, or an order
# (possibly one offered to the waitlist) was paid.
WAKE_EVENTS = (Offer.Released, Offer.Returned, Offer.Sold, Offer.SoldWithoutHold, Offer.ReservedForWaitlist)


@dataclass(frozen=True)
class WaitlistPolicy:
    # How long the first in line has to pay the order kept for them (WAITLIST_OFFER_MINUTES).
    offer_seconds: int = 1800


@dataclass(frozen=True)
class Joined:
    waitlist: Waitlist
    entry_id: UUID


class WaitlistCommands(SalesCommands):
    waitlist_policy = WaitlistPolicy()
    # Called with the ids of offers whose waitlist may now have work (after the save committed).
    after_waitlist_change: Callable[[list[UUID]], None] | None = None

    def save(self, *objs: Any, connection: Connection[Any] | None = None, **kwargs: Any) -> list[Recording[UUID]]:
        hook = self.after_waitlist_change
        # Saves in a caller's transaction are the claim writer's: claims never return stock.
        woken = (
            [
                o.id
                for o in objs
                if isinstance(o, Offer)
                and o.waitlist_active
                and any(isinstance(e, WAKE_EVENTS) for e in o.pending_events)
            ]
            if hook is not None and connection is None
            else []
        )
        recordings = super().save(*objs, connection=connection, **kwargs)
        if woken and hook is not None:
            try:
                hook(woken)
            except Exception:  # the save stands; the sweep promotes a little later
                log.exception("could not queue the waitlist promotion of %s", woken)
        return recordings

    def get_waitlist(self, offer_id: UUID) -> Waitlist:
        return self.load(waitlist_id(offer_id), "waitlist", Waitlist)

    # Joining and leaving -------------------------------------------------------------

    def join_waitlist(self, offer_id: UUID, account_id: UUID, quantity: int, *, at: datetime | None = None) -> Joined:
        """Queue for a sold-out offer: 404 unknown offer, 422 outside the per-order limits,
        409 `already_waiting`, 409 `not_sold_out` while the public can still buy it."""

        def attempt() -> Joined:
            now = at or utcnow()
            offer = self.load(offer_id, "offer", Offer)
            show = self.load(offer.event_id, "event", Event)
            show.check_on_sale(now)
            offer.check_order(quantity, now)
            try:
                waitlist = self.get_waitlist(offer_id)
            except NotFound:
                waitlist = Waitlist(offer_id=offer.id, event_id=offer.event_id)
            if waitlist.active_entry_of(account_id) is None:
                self._check_sold_out(offer, show)
            entry_id = waitlist.join(account_id, quantity, now)
            offer.join_waitlist(entry_id, quantity)
            self.save(waitlist, offer)
            return Joined(waitlist, entry_id)

        return self.retrying(attempt)

    def _check_sold_out(self, offer: Offer, show: Event) -> None:
        """Sold out for the public: no quota left, or (seated) no seat of its tier free."""
        if offer.has_quota and not offer.available:
            return
        if offer.is_seated:
            tier = show.tier(offer.tier_id)
            venue = self.load(show.venue_id, "venue", Venue)
            keys = [f"{tier.day}|{s['key']}" if tier.day else s["key"] for s in venue.seats_in(set(tier.section_ids))]
            seats = self.load_many(seat_id(show.id, key) for key in keys)
            free = sum(1 for seat in seats.values() if isinstance(seat, Seat) and seat.status == "available")
            if not free:
                return
            raise NotSoldOut(f"{offer.name!r} still has {free} seats available: buy instead")
        raise NotSoldOut(f"{offer.name!r} still has {offer.available} available: buy instead")

    def leave_waitlist(self, offer_id: UUID, entry_id: UUID, account_id: UUID, *, at: datetime | None = None) -> None:
        """Stop waiting. An entry that was offered an order gives it up: the order is cancelled
        and its stock goes to the next in line, in the same save."""

        def attempt() -> None:
            now = at or utcnow()
            waitlist = self.get_waitlist(offer_id)
            entry = waitlist.entry(entry_id)
            if entry["account_id"] != account_id:
                raise NotFound("waitlist entry not found", code="waitlist_entry_not_found")
            offer = self.load(offer_id, "offer", Offer)
            changed: dict[UUID, Any] = {waitlist.id: waitlist, offer.id: offer}
            if entry["status"] == "offered" and entry["order_id"] is not None:
                order = self.get_order(entry["order_id"])
                if order.status != "held":
                    raise Conflict(f"the order offered to you is already {order.status}", code="waitlist_entry_closed")
                waitlist.leave(entry_id, now)
                offer.settle_waitlist_order(order.id)
                order.cancel(now)
                changed[order.id] = order
                changed.update((a.id, a) for a in self._release(order, {offer.id: offer}))
            else:
                waitlist.leave(entry_id, now)
                for seat_to_free in offer.leave_waitlist(entry_id, entry["quantity"]):
                    seat = self.load(seat_to_free, "seat", Seat)
                    seat.return_from_waitlist()
                    changed[seat.id] = seat
            self.save(*changed.values())

        self.retrying(attempt)

    # Promotion ------------------------------------------------------------------------

    def promote_waitlist(self, offer_id: UUID, *, at: datetime | None = None) -> list[Order]:
        """Settle offered entries whose order was paid or closed, then offer kept stock to the
        first in line while enough is kept for their quantity (strictly first come, first
        served). Returns the orders made (their holds expire like any other). Idempotent."""

        def attempt() -> list[Order]:
            now = at or utcnow()
            try:
                waitlist = self.get_waitlist(offer_id)
            except NotFound:
                return []
            offer = self.load(offer_id, "offer", Offer)
            before = waitlist.version
            for entry in waitlist.offered():
                order_id = entry["order_id"]
                if order_id is None:
                    continue
                status = self.get_order(order_id).status
                if status in CLOSED_STATES:
                    waitlist.lapse(entry["id"])
                elif status in PAID_STATES:
                    waitlist.convert(entry["id"])
                else:
                    continue
                offer.settle_waitlist_order(order_id)
            show = self.load(offer.event_id, "event", Event)
            orders: list[Order] = []
            seats: list[Seat] = []
            if show.status_at(now) == "published" and offer.sale_status(now) == "on_sale":
                until = now + timedelta(seconds=self.waitlist_policy.offer_seconds)
                while (head := waitlist.head()) is not None and offer.can_offer(head["quantity"]):
                    order_id = waitlist_order_id(head["id"])
                    kept = [
                        self.load(s, "seat", Seat)
                        for s in offer.offer_to_waitlist(head["id"], order_id, head["quantity"])
                    ]
                    order = Order.place(
                        order_id=order_id,
                        buyer_id=head["account_id"],
                        event_id=offer.event_id,
                        items=_items(offer, head["quantity"], kept),
                        currency=offer.currency,
                        fee_basis_points=self.policy.fee_basis_points,
                        fee_fixed=self.policy.fee_fixed,
                        at=now,
                        hold_until=until,
                        serial=self.order_serials(1)[0],
                    )
                    for seat in kept:
                        seat.hold_for_waitlist(order.id, until)
                    waitlist.offer(head["id"], order.id, until)
                    orders.append(order)
                    seats.extend(kept)
            if waitlist.version == before:
                return []
            self.save(waitlist, offer, *seats, *orders)
            return orders

        return self.retrying(attempt)


def _items(offer: Offer, quantity: int, seats: list[Seat]) -> list[OrderItem]:
    if seats:
        return [
            {"offer_id": offer.id, "tier_id": offer.tier_id, "seat_id": seat.id,
             "seat_label": f"{seat.section} {seat.row}-{seat.label}", "quantity": 1, "unit_price": offer.price}
            for seat in seats
        ]  # fmt: skip
    return [{"offer_id": offer.id, "tier_id": offer.tier_id, "seat_id": None, "seat_label": None,
             "quantity": quantity, "unit_price": offer.price}]  # fmt: skip
