"""Offer: a price point of a tier, with a sale window and per-order limits.

General-admission inventory is held, sold and released here as counters; which order holds
what is the Order's business, and both are saved in one transaction, so the counters can
never drift from the orders.

One module because it is one aggregate, one consistency boundary: the counters and every rule
that moves them (hold, sell, release, block, the sale window and limits) change together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.audit import Audited
from domain.errors import Conflict, Invalid
from domain.legacy import LegacyChanges

CURRENCIES = {
    "USD",
    "EUR",
    "GBP",
    "CHF",
    "CAD",
    "AUD",
    "JPY",
    "SEK",
    "NOK",
    "DKK",
    "PLN",
    "CZK",
    "INR",
    "BRL",
    "MXN",
    "NZD",
    "ZAR",
}
STATUSES = ("on_sale", "paused")
EDITABLE = (
    "name", "price", "currency", "quantity_for_sale", "sale_start_time", "sale_end_time",
    "min_per_order", "max_per_order", "status",
)  # fmt: skip


class SoldOut(Conflict):
    code = "sold_out"


class NotOnSale(Conflict):
    code = "not_on_sale"


class OrderLimit(Invalid):
    code = "order_limit"


class Offer(Audited):
    # Every attribute holds an immutable value (ids, strings, numbers, datetimes, None) and the
    # events rebind attributes instead of mutating them, so a copy may share the values
    # (`commands.base.copy_aggregate`). Keep it that way, or drop this flag.
    immutable_state: ClassVar[bool] = True

    class Created(Aggregate.Created):
        event_id: UUID
        tier_id: UUID
        tier_kind: str
        name: str
        price: int
        currency: str
        quantity_for_sale: int | None
        sale_start_time: datetime | None
        sale_end_time: datetime | None
        min_per_order: int
        max_per_order: int

    @event(Created)
    def __init__(
        self,
        event_id: UUID,
        tier_id: UUID,
        tier_kind: str,
        name: str,
        price: int,
        currency: str,
        quantity_for_sale: int | None,
        sale_start_time: datetime | None,
        sale_end_time: datetime | None,
        min_per_order: int,
        max_per_order: int,
    ) -> None:
        self.event_id = event_id
        self.tier_id = tier_id
        self.tier_kind = tier_kind
        self.name = name
        self.price = price
        self.currency = currency
        self.quantity_for_sale = quantity_for_sale
        self.sale_start_time = sale_start_time
        self.sale_end_time = sale_end_time
        self.min_per_order = min_per_order
        self.max_per_order = max_per_order
        self.status = "on_sale"
        self.held = 0
        self.sold = 0
        # The waitlist's share of the inventory (see "Waitlist" below).
        self.waiting = 0
        self.reserved = 0
        self.reserved_seats: tuple[UUID, ...] = ()
        self.waitlist_orders: tuple[UUID, ...] = ()

    @classmethod
    def define(cls, **kwargs: Any) -> Offer:
        """Create an offer after checking its terms are coherent."""
        _check_terms(kwargs)
        return cls(**kwargs)

    @property
    def is_seated(self) -> bool:
        return self.tier_kind == "seated"

    @property
    def has_quota(self) -> bool:
        return self.quantity_for_sale is not None

    @property
    def available(self) -> int | None:
        if self.quantity_for_sale is None:
            return None
        return self.quantity_for_sale - self.held - self.sold - self.reserved

    def sale_status(self, at: datetime) -> str:
        """scheduled | on_sale | paused | ended, as a buyer would see it at `at`."""
        if self.sale_end_time is not None and at >= self.sale_end_time:
            return "ended"
        if self.status == "paused":
            return "paused"
        if self.sale_start_time is not None and at < self.sale_start_time:
            return "scheduled"
        return "on_sale"

    # Terms -----------------------------------------------------------------------------

    def update(self, **changes: Any) -> None:
        """Change what was sent (PATCH semantics): one event per kind of change, none if nothing changes.

        `status` pauses (`paused`) or resumes (`on_sale`) the sale."""
        unknown = changes.keys() - EDITABLE
        if unknown:
            raise Invalid(f"cannot change {sorted(unknown)}")
        if "status" in changes and changes["status"] not in STATUSES:
            raise Invalid(f"status must be one of {STATUSES}", field="status")
        terms: dict[str, Any] = {
            "event_id": self.event_id,
            "tier_id": self.tier_id,
            "tier_kind": self.tier_kind,
            "name": self.name,
            "price": self.price,
            "currency": self.currency,
            "quantity_for_sale": self.quantity_for_sale,
            "sale_start_time": self.sale_start_time,
            "sale_end_time": self.sale_end_time,
            "min_per_order": self.min_per_order,
            "max_per_order": self.max_per_order,
        }
        terms.update({k: v for k, v in changes.items() if k != "status"})
        _check_terms(terms)
        quantity = terms["quantity_for_sale"]
        claimed = self.held + self.sold + self.reserved
        if quantity is not None and quantity < claimed:
            raise Conflict(
                f"quantity_for_sale cannot drop below the {claimed} already held, sold or kept for the waitlist",
                code="quantity_below_claimed",
                field="quantity_for_sale",
            )
        changed = {k: v for k, v in changes.items() if getattr(self, k) != v}
        if "name" in changed:
            self._rename(name=terms["name"])
        if changed.keys() & {"price", "currency"}:
            self._reprice(price=terms["price"], currency=terms["currency"])
        if "quantity_for_sale" in changed:
            added = (quantity or 0) - (self.quantity_for_sale or 0)
            self._change_quantity(quantity_for_sale=quantity)
            if self.has_quota and added > 0:
                self._keep_for_waitlist(added)
        if changed.keys() & {"sale_start_time", "sale_end_time"}:
            self._change_sale_window(sale_start_time=terms["sale_start_time"], sale_end_time=terms["sale_end_time"])
        if changed.keys() & {"min_per_order", "max_per_order"}:
            self._change_limits(min_per_order=terms["min_per_order"], max_per_order=terms["max_per_order"])
        if changed.get("status") == "paused":
            self._pause()
        elif changed.get("status") == "on_sale":
            self._resume()

    class Renamed(Aggregate.Event):
        name: str

    @event(Renamed)
    def _rename(self, name: str) -> None:
        self.name = name

    class Repriced(Aggregate.Event):
        price: int
        currency: str

    @event(Repriced)
    def _reprice(self, price: int, currency: str) -> None:
        self.price = price
        self.currency = currency

    class QuantityChanged(Aggregate.Event):
        quantity_for_sale: int | None

    @event(QuantityChanged)
    def _change_quantity(self, quantity_for_sale: int | None) -> None:
        self.quantity_for_sale = quantity_for_sale

    class SaleWindowChanged(Aggregate.Event):
        sale_start_time: datetime | None
        sale_end_time: datetime | None

    @event(SaleWindowChanged)
    def _change_sale_window(self, sale_start_time: datetime | None, sale_end_time: datetime | None) -> None:
        self.sale_start_time = sale_start_time
        self.sale_end_time = sale_end_time

    class LimitsChanged(Aggregate.Event):
        min_per_order: int
        max_per_order: int

    @event(LimitsChanged)
    def _change_limits(self, min_per_order: int, max_per_order: int) -> None:
        self.min_per_order = min_per_order
        self.max_per_order = max_per_order

    class Paused(Aggregate.Event):
        pass

    @event(Paused)
    def _pause(self) -> None:
        self.status = "paused"

    class Resumed(Aggregate.Event):
        pass

    @event(Resumed)
    def _resume(self) -> None:
        self.status = "on_sale"

    class Updated(LegacyChanges):
        """Any change of terms, as recorded before the intent events above; only read from older stores."""

    # Inventory -------------------------------------------------------------------------

    def check_order(self, quantity: int, at: datetime) -> None:
        """Can `quantity` of this offer be ordered at `at`? Raises if not."""
        status = self.sale_status(at)
        if status != "on_sale":
            raise NotOnSale(f"offer {self.name!r} is {status.replace('_', ' ')}", code=f"offer_{status}")
        if quantity < self.min_per_order or quantity > self.max_per_order:
            raise OrderLimit(
                f"offer {self.name!r} sells {self.min_per_order} to {self.max_per_order} per order",
                field="items",
            )

    def check_claim(self, quantity: int) -> None:
        """Raise unless `quantity` more can be held (checked before any claim of an order is made)."""
        if quantity <= 0:
            raise Invalid("quantity must be positive", field="quantity")
        available = self.available
        if available is not None and quantity > available:
            raise SoldOut(f"only {available} left of {self.name!r}" if available else f"{self.name!r} is sold out")

    def claim(self, order_id: UUID, quantity: int) -> None:
        self.check_claim(quantity)
        self._claim(order_id=order_id, quantity=quantity)

    class Claimed(Aggregate.Event):
        order_id: UUID
        quantity: int

    @event(Claimed)
    def _claim(self, order_id: UUID, quantity: int) -> None:
        self.held += quantity

    def release(self, order_id: UUID, quantity: int) -> None:
        if not 0 < quantity <= self.held:
            raise Conflict("cannot release more than is held", code="release_exceeds_held")
        self._release(order_id=order_id, quantity=quantity)
        self._keep_for_waitlist(quantity)

    class Released(Aggregate.Event):
        order_id: UUID
        quantity: int

    @event(Released)
    def _release(self, order_id: UUID, quantity: int) -> None:
        self.held -= quantity

    def sell(self, order_id: UUID, quantity: int) -> None:
        """Turn a hold into a sale (payment captured)."""
        if not 0 < quantity <= self.held:
            raise Conflict("cannot sell more than is held", code="sell_exceeds_held")
        self._sell(order_id=order_id, quantity=quantity)

    class Sold(Aggregate.Event):
        order_id: UUID
        quantity: int

    @event(Sold)
    def _sell(self, order_id: UUID, quantity: int) -> None:
        self.held -= quantity
        self.sold += quantity

    def sell_unheld(self, order_id: UUID, quantity: int) -> None:
        """Sell without a hold (a payment that arrived after its hold lapsed) if stock allows."""
        available = self.available
        if available is not None and quantity > available:
            raise SoldOut(f"{self.name!r} no longer has {quantity} available")
        self._sell_unheld(order_id=order_id, quantity=quantity)

    class SoldWithoutHold(Aggregate.Event):
        order_id: UUID
        quantity: int

    @event(SoldWithoutHold)
    def _sell_unheld(self, order_id: UUID, quantity: int) -> None:
        self.sold += quantity

    def take_back(self, order_id: UUID, quantity: int) -> None:
        """Return sold inventory to sale (refund)."""
        if not 0 < quantity <= self.sold:
            raise Conflict("cannot return more than was sold", code="return_exceeds_sold")
        self._take_back(order_id=order_id, quantity=quantity)
        self._keep_for_waitlist(quantity)

    class Returned(Aggregate.Event):
        order_id: UUID
        quantity: int

    @event(Returned)
    def _take_back(self, order_id: UUID, quantity: int) -> None:
        self.sold -= quantity

    # Waitlist ---------------------------------------------------------------------------
    #
    # Released stock goes to the waitlist before the public while anyone waits, without a race:
    # the reservation is part of the inventory. `waiting` is the quantity the waiting entries
    # want (changed in the same save as the Waitlist); stock that comes back (a release, a
    # return, a larger quantity) while `waiting` exceeds what is already `reserved` moves to
    # `reserved` in the same event batch as the release, and `available` (what the claim path
    # sees) never counts it. The promotion then turns reserved stock into a held order for the
    # first in line (`offer_to_waitlist`). Seats work the same way: a released seat of this
    # offer is kept (`Seat.keep_for_waitlist`) and listed in `reserved_seats`.
    #
    # Invariants: every counter >= 0; reserved <= waiting; held + sold + reserved <= quantity.

    @property
    def unserved(self) -> int:
        """Waiting demand not yet covered by reserved stock."""
        return max(self.waiting - self.reserved, 0)

    @property
    def waitlist_active(self) -> bool:
        """Whether the waitlist has business here (someone waits, stock is kept, or an offer is out)."""
        return bool(self.waiting or self.reserved or self.waitlist_orders)

    def _keep_for_waitlist(self, quantity: int) -> None:
        """Move up to `quantity` of what just came back to GA stock into `reserved`."""
        if not self.has_quota or self.is_seated:
            return
        kept = min(quantity, self.unserved, self.available or 0)
        if kept > 0:
            self._reserve(quantity=kept, seat_ids=[])

    def wants_seat(self) -> bool:
        """Should a seat of this offer that just came back be kept for the waitlist?"""
        return self.is_seated and self.unserved > 0

    def keep_seat(self, seat_id: UUID) -> None:
        """Record a seat just kept for the waitlist (the caller changed the Seat in the same save)."""
        if not self.wants_seat() or seat_id in self.reserved_seats or (self.has_quota and (self.available or 0) < 1):
            raise Conflict("no waiting demand for this seat", code="waitlist_not_waiting")
        self._reserve(quantity=1, seat_ids=[seat_id])

    class ReservedForWaitlist(Aggregate.Event):
        quantity: int
        seat_ids: list[UUID]

    @event(ReservedForWaitlist)
    def _reserve(self, quantity: int, seat_ids: list[UUID]) -> None:
        self.reserved += quantity
        self.reserved_seats = (*self.reserved_seats, *seat_ids)

    def join_waitlist(self, entry_id: UUID, quantity: int) -> None:
        if quantity <= 0:
            raise Invalid("quantity must be positive", field="quantity")
        self._join_waitlist(entry_id=entry_id, quantity=quantity)

    class WaitlistJoined(Aggregate.Event):
        entry_id: UUID
        quantity: int

    @event(WaitlistJoined)
    def _join_waitlist(self, entry_id: UUID, quantity: int) -> None:
        self.waiting += quantity

    def leave_waitlist(self, entry_id: UUID, quantity: int) -> list[UUID]:
        """Someone stopped waiting; stock kept beyond the remaining demand goes back on sale.
        Returns the seats to hand back (the caller releases them in the same save)."""
        if not 0 < quantity <= self.waiting:
            raise Conflict("cannot stop waiting for more than waits", code="waitlist_not_waiting")
        excess = max(self.reserved - (self.waiting - quantity), 0)
        seats = list(self.reserved_seats[len(self.reserved_seats) - excess :]) if self.is_seated and excess else []
        self._leave_waitlist(entry_id=entry_id, quantity=quantity, unreserved=excess, seat_ids=seats)
        return seats

    class WaitlistLeft(Aggregate.Event):
        entry_id: UUID
        quantity: int
        unreserved: int
        seat_ids: list[UUID]

    @event(WaitlistLeft)
    def _leave_waitlist(self, entry_id: UUID, quantity: int, unreserved: int, seat_ids: list[UUID]) -> None:
        self.waiting -= quantity
        self.reserved -= unreserved
        gone = set(seat_ids)
        self.reserved_seats = tuple(s for s in self.reserved_seats if s not in gone)

    def can_offer(self, quantity: int) -> bool:
        """Is enough stock kept to offer `quantity` to the first in line?"""
        return 0 < quantity <= min(self.reserved, self.waiting)

    def offer_to_waitlist(self, entry_id: UUID, order_id: UUID, quantity: int) -> list[UUID]:
        """Turn kept stock into a hold of the waitlist's order for the first in line; returns the
        seats it takes (the caller holds them for the order in the same save)."""
        if not self.can_offer(quantity):
            raise Conflict("not enough stock kept for the waitlist", code="waitlist_no_stock")
        seats = list(self.reserved_seats[:quantity]) if self.is_seated else []
        held = quantity if self.has_quota else 0
        self._offer_to_waitlist(entry_id=entry_id, order_id=order_id, quantity=quantity, seat_ids=seats, held=held)
        return seats

    class OfferedToWaitlist(Aggregate.Event):
        entry_id: UUID
        order_id: UUID
        quantity: int
        seat_ids: list[UUID]
        held: int  # what the order now holds of the quota (0 for seats without a quota)

    @event(OfferedToWaitlist)
    def _offer_to_waitlist(
        self, entry_id: UUID, order_id: UUID, quantity: int, seat_ids: list[UUID], held: int
    ) -> None:
        self.waiting -= quantity
        self.reserved -= quantity
        self.held += held
        taken = set(seat_ids)
        self.reserved_seats = tuple(s for s in self.reserved_seats if s not in taken)
        self.waitlist_orders = (*self.waitlist_orders, order_id)

    def settle_waitlist_order(self, order_id: UUID) -> None:
        """The waitlist's order was paid or closed and the Waitlist says so (same save)."""
        if order_id in self.waitlist_orders:
            self._settle_waitlist_order(order_id=order_id)

    class WaitlistOrderSettled(Aggregate.Event):
        order_id: UUID

    @event(WaitlistOrderSettled)
    def _settle_waitlist_order(self, order_id: UUID) -> None:
        self.waitlist_orders = tuple(o for o in self.waitlist_orders if o != order_id)


def _check_terms(terms: dict[str, Any]) -> None:
    if not str(terms.get("name", "")).strip():
        raise Invalid("name is required", field="name")
    if terms["price"] < 0:
        raise Invalid("price cannot be negative", field="price")
    if terms["currency"] not in CURRENCIES:
        raise Invalid(f"unsupported currency {terms['currency']!r}", field="currency")
    quantity = terms["quantity_for_sale"]
    if terms["tier_kind"] == "general" and quantity is None:
        raise Invalid("general admission offers need quantity_for_sale", field="quantity_for_sale")
    if quantity is not None and quantity < 0:
        raise Invalid("quantity_for_sale cannot be negative", field="quantity_for_sale")
    if terms["min_per_order"] < 1:
        raise Invalid("min_per_order must be at least 1", field="min_per_order")
    if terms["max_per_order"] < terms["min_per_order"]:
        raise Invalid("max_per_order must be at least min_per_order", field="max_per_order")
    start, end = terms["sale_start_time"], terms["sale_end_time"]
    if start is not None and end is not None and end <= start:
        raise Invalid("sale_end_time must be after sale_start_time", field="sale_end_time")
