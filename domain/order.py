"""Order: what a buyer holds and pays for. held -> paid | cancelled | expired.

The order remembers exactly which inventory it holds (quantities per offer, seats), so
releasing or selling it is driven from here and can happen only once.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import Conflict, Gone, Invalid

MAX_ITEMS = 50


class OrderItem(TypedDict):
    offer_id: UUID
    tier_id: UUID
    seat_id: UUID | None
    seat_label: str | None
    quantity: int
    unit_price: int


class WrongOrderState(Conflict):
    code = "wrong_order_state"


class HoldExpired(Gone):
    code = "hold_expired"


def compute_fee(subtotal: int, percent_basis_points: int, fixed: int) -> int:
    """Service fee in minor units: a percentage (in basis points, rounded up) plus a fixed part."""
    if subtotal <= 0:
        return 0
    return -(-subtotal * percent_basis_points // 10_000) + fixed


class Order(Aggregate):
    class Placed(Aggregate.Created):
        buyer_id: UUID
        event_id: UUID
        items: list[OrderItem]
        currency: str
        subtotal: int
        fees: int
        total: int
        placed_at: datetime
        hold_expires_at: datetime

    @event(Placed)
    def __init__(
        self,
        buyer_id: UUID,
        event_id: UUID,
        items: list[OrderItem],
        currency: str,
        subtotal: int,
        fees: int,
        total: int,
        placed_at: datetime,
        hold_expires_at: datetime,
    ) -> None:
        self.buyer_id = buyer_id
        self.event_id = event_id
        self.items = items
        self.currency = currency
        self.subtotal = subtotal
        self.fees = fees
        self.total = total
        self.placed_at = placed_at
        self.hold_expires_at = hold_expires_at
        self.status = "held"
        self.closed_at: datetime | None = None

    @classmethod
    def place(
        cls,
        *,
        order_id: UUID,
        buyer_id: UUID,
        event_id: UUID,
        items: list[OrderItem],
        currency: str,
        fee_basis_points: int,
        fee_fixed: int,
        at: datetime,
        hold_until: datetime,
    ) -> Order:
        """Create a held order whose totals are derived from its items (never trusted input)."""
        if not items:
            raise Invalid("an order needs at least one item", field="items")
        if len(items) > MAX_ITEMS:
            raise Invalid(f"at most {MAX_ITEMS} items per order", field="items")
        seats = [i["seat_id"] for i in items if i["seat_id"] is not None]
        if len(seats) != len(set(seats)):
            raise Invalid("the same seat appears twice", field="items")
        for item in items:
            if item["quantity"] <= 0:
                raise Invalid("quantity must be positive", field="items")
            if item["seat_id"] is not None and item["quantity"] != 1:
                raise Invalid("a seat item has quantity 1", field="items")
        subtotal = sum(i["unit_price"] * i["quantity"] for i in items)
        fees = compute_fee(subtotal, fee_basis_points, fee_fixed)
        return cls._create(
            cls.Placed,
            id=order_id,
            buyer_id=buyer_id,
            event_id=event_id,
            items=items,
            currency=currency,
            subtotal=subtotal,
            fees=fees,
            total=subtotal + fees,
            placed_at=at,
            hold_expires_at=hold_until,
        )

    @property
    def ticket_count(self) -> int:
        return sum(i["quantity"] for i in self.items)

    def quantities_by_offer(self) -> dict[UUID, int]:
        """GA quantity held per offer (seats are held on their Seat aggregates)."""
        out: dict[UUID, int] = {}
        for item in self.items:
            if item["seat_id"] is None:
                out[item["offer_id"]] = out.get(item["offer_id"], 0) + item["quantity"]
        return out

    def seat_ids(self) -> list[UUID]:
        return [i["seat_id"] for i in self.items if i["seat_id"] is not None]

    def seat_items_by_offer(self) -> dict[UUID, int]:
        out: dict[UUID, int] = {}
        for item in self.items:
            if item["seat_id"] is not None:
                out[item["offer_id"]] = out.get(item["offer_id"], 0) + 1
        return out

    def is_hold_lapsed(self, at: datetime) -> bool:
        return at >= self.hold_expires_at

    def cancel(self, at: datetime) -> None:
        if self.status != "held":
            raise WrongOrderState(f"only held orders can be cancelled (this one is {self.status})")
        self._cancel(at=at)

    class Cancelled(Aggregate.Event):
        at: datetime

    @event(Cancelled)
    def _cancel(self, at: datetime) -> None:
        self.status = "cancelled"
        self.closed_at = at

    def expire(self, at: datetime) -> None:
        if self.status != "held":
            raise WrongOrderState(f"only held orders expire (this one is {self.status})")
        if not self.is_hold_lapsed(at):
            raise Conflict("the hold has not lapsed yet", code="hold_not_lapsed")
        self._expire(at=at)

    class Expired(Aggregate.Event):
        at: datetime

    @event(Expired)
    def _expire(self, at: datetime) -> None:
        self.status = "expired"
        self.closed_at = at

    def check_payable(self, at: datetime) -> None:
        if self.status in ("expired",) or (self.status == "held" and self.is_hold_lapsed(at)):
            raise HoldExpired("the hold on this order has expired")
        if self.status != "held":
            raise WrongOrderState(f"this order is {self.status}")

    def extend_hold(self, until: datetime) -> None:
        if self.status != "held":
            raise WrongOrderState(f"this order is {self.status}")
        if until > self.hold_expires_at:
            self._extend_hold(until=until)

    class HoldExtended(Aggregate.Event):
        until: datetime

    @event(HoldExtended)
    def _extend_hold(self, until: datetime) -> None:
        self.hold_expires_at = until
