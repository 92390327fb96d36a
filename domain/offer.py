"""Offer: a price point of a tier, with a sale window and per-order limits.

General-admission inventory is held, sold and released here as counters; which order holds
what is the Order's business, and both are saved in one transaction, so the counters can
never drift from the orders.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

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


class Offer(Aggregate):
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
        return self.quantity_for_sale - self.held - self.sold

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
        if quantity is not None and quantity < self.held + self.sold:
            raise Conflict(
                f"quantity_for_sale cannot drop below the {self.held + self.sold} already held or sold",
                code="quantity_below_claimed",
                field="quantity_for_sale",
            )
        changed = {k: v for k, v in changes.items() if getattr(self, k) != v}
        if "name" in changed:
            self._rename(name=terms["name"])
        if changed.keys() & {"price", "currency"}:
            self._reprice(price=terms["price"], currency=terms["currency"])
        if "quantity_for_sale" in changed:
            self._change_quantity(quantity_for_sale=quantity)
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

    class Returned(Aggregate.Event):
        order_id: UUID
        quantity: int

    @event(Returned)
    def _take_back(self, order_id: UUID, quantity: int) -> None:
        self.sold -= quantity


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
