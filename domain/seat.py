"""Seat: one per seat per event (id uuid5(event, seat key)); held or sold by at most one order.

Two buyers holding the same seat both try to write the same next version of this aggregate,
so the second save fails in the event store: a double booking cannot be recorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.audit import Audited
from domain.errors import Conflict
from domain.ids import seat_id

if TYPE_CHECKING:
    from domain.event import Event
    from domain.venue import Venue


class SeatTaken(Conflict):
    code = "seat_taken"


class Seat(Audited):
    # Every attribute holds an immutable value (ids, strings, numbers, datetimes, None) and the
    # events rebind attributes instead of mutating them, so a copy may share the values
    # (`commands.base.copy_aggregate`). Keep it that way, or drop this flag.
    immutable_state: ClassVar[bool] = True

    @staticmethod
    def create_id(event_id: UUID, key: str, **_: Any) -> UUID:
        return seat_id(event_id, key)

    class Created(Aggregate.Created):
        event_id: UUID
        key: str
        tier_id: UUID
        section_id: str
        section: str
        row: str
        label: str
        x: float
        y: float
        accessible: bool
        day: str | None

    @event(Created)
    def __init__(
        self,
        event_id: UUID,
        key: str,
        tier_id: UUID,
        section_id: str,
        section: str,
        row: str,
        label: str,
        x: float,
        y: float,
        accessible: bool = False,
        day: str | None = None,
    ) -> None:
        self.event_id = event_id
        self.key = key
        self.tier_id = tier_id
        self.section_id = section_id
        self.section = section
        self.row = row
        self.label = label
        self.x = x
        self.y = y
        self.accessible = accessible
        self.day = day
        self.status = "available"
        self.order_id: UUID | None = None
        self.held_until: datetime | None = None

    def check_hold(self) -> None:
        """Raise unless the seat can be held (checked before any claim of an order is made)."""
        if self.status != "available":
            raise SeatTaken(f"seat {self.section} {self.row}-{self.label} is {self.status}")

    def hold(self, order_id: UUID, until: datetime) -> None:
        self.check_hold()
        self._hold(order_id=order_id, until=until)

    class Held(Aggregate.Event):
        order_id: UUID
        until: datetime

    @event(Held)
    def _hold(self, order_id: UUID, until: datetime) -> None:
        self.status = "held"
        self.order_id = order_id
        self.held_until = until

    def release(self, order_id: UUID) -> None:
        if self.order_id != order_id or self.status != "held":
            raise Conflict("seat is not held by this order", code="seat_not_held")
        self._release(order_id=order_id)

    class Released(Aggregate.Event):
        order_id: UUID

    @event(Released)
    def _release(self, order_id: UUID) -> None:
        self.status = "available"
        self.order_id = None
        self.held_until = None

    def sell(self, order_id: UUID) -> None:
        if self.order_id != order_id or self.status != "held":
            raise SeatTaken("seat is not held by this order")
        self._sell(order_id=order_id)

    class Sold(Aggregate.Event):
        order_id: UUID

    @event(Sold)
    def _sell(self, order_id: UUID) -> None:
        self.status = "sold"
        self.held_until = None

    def sell_unheld(self, order_id: UUID) -> None:
        """A late payment re-claims its seat only if nobody else has it."""
        if self.status != "available":
            raise SeatTaken(f"seat {self.section} {self.row}-{self.label} was taken meanwhile")
        self._sell_unheld(order_id=order_id)

    class SoldWithoutHold(Aggregate.Event):
        order_id: UUID

    @event(SoldWithoutHold)
    def _sell_unheld(self, order_id: UUID) -> None:
        self.status = "sold"
        self.order_id = order_id

    def take_back(self, order_id: UUID) -> None:
        if self.order_id != order_id or self.status != "sold":
            raise Conflict("seat is not sold to this order", code="seat_not_sold")
        self._take_back(order_id=order_id)

    class Returned(Aggregate.Event):
        order_id: UUID

    @event(Returned)
    def _take_back(self, order_id: UUID) -> None:
        self.status = "available"
        self.order_id = None

    # Waitlist: a seat that comes back while its offer has waiting demand is kept ("reserved")
    # for the first in line instead of going back on sale; the public sees it as taken.

    def keep_for_waitlist(self, offer_id: UUID) -> None:
        if self.status != "available":
            raise SeatTaken(f"seat {self.section} {self.row}-{self.label} is {self.status}")
        self._keep_for_waitlist(offer_id=offer_id)

    class KeptForWaitlist(Aggregate.Event):
        offer_id: UUID

    @event(KeptForWaitlist)
    def _keep_for_waitlist(self, offer_id: UUID) -> None:
        self.status = "reserved"
        self.order_id = None
        self.held_until = None

    def hold_for_waitlist(self, order_id: UUID, until: datetime) -> None:
        if self.status != "reserved":
            raise SeatTaken(f"seat {self.section} {self.row}-{self.label} is not kept for the waitlist")
        self._hold_for_waitlist(order_id=order_id, until=until)

    class HeldForWaitlist(Aggregate.Event):
        order_id: UUID
        until: datetime

    @event(HeldForWaitlist)
    def _hold_for_waitlist(self, order_id: UUID, until: datetime) -> None:
        self.status = "held"
        self.order_id = order_id
        self.held_until = until

    def return_from_waitlist(self) -> None:
        if self.status != "reserved":
            raise Conflict("seat is not kept for the waitlist", code="seat_not_reserved")
        self._return_from_waitlist()

    class ReturnedFromWaitlist(Aggregate.Event):
        pass

    @event(ReturnedFromWaitlist)
    def _return_from_waitlist(self) -> None:
        self.status = "available"

    def block(self) -> None:
        """Take a free seat off sale (house seats, a broken chair); blocking it again is no change."""
        if self.status == "blocked":
            return
        if self.status != "available":
            raise SeatTaken(f"seat {self.label} is {self.status}: only available seats can be blocked")
        self._block()

    class Blocked(Aggregate.Event):
        pass

    @event(Blocked)
    def _block(self) -> None:
        self.status = "blocked"

    def unblock(self) -> None:
        """Put a blocked seat back on sale; a seat already on sale is no change."""
        if self.status == "available":
            return
        if self.status != "blocked":
            raise Conflict(f"seat {self.label} is {self.status}, not blocked", code="seat_not_blocked")
        self._unblock()

    class Unblocked(Aggregate.Event):
        pass

    @event(Unblocked)
    def _unblock(self) -> None:
        self.status = "available"


def materialise_seats(show: Event, venue: Venue) -> list[Seat]:
    """The Seat aggregates a show still lacks: one per seat of every seated tier's sections
    (per day for multi-day shows). The show records which sections now have their seats."""
    pending = show.sections_to_materialise()
    seats = [
        Seat(
            event_id=show.id,
            key=f"{tier.day}|{spec['key']}" if tier.day else spec["key"],
            tier_id=tier.id,
            section_id=spec["section_id"],
            section=spec["section"],
            row=spec["row"],
            label=spec["label"],
            x=spec["x"],
            y=spec["y"],
            accessible=spec["accessible"],
            day=tier.day,
        )
        for tier, section in pending
        for spec in venue.seats_in({section})
    ]
    if pending:
        show.mark_seats_materialised(sorted({f"{tier.day or ''}|{section}" for tier, section in pending}))
    return seats
