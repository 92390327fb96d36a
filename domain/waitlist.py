"""Waitlist: the queue for one sold-out offer, first come first served.

One aggregate per offer (id `uuid5(WAITLISTS, offer id)`, so two first joiners cannot create two
queues). An entry is `waiting`, then `offered` (a held order of its own, for its quantity, until a
deadline), then `converted` (paid) or `lapsed` (not paid in time, or cancelled); or `left`.

The stock itself is counted on the `Offer` (its `waiting` and `reserved` counters), which is saved
with this aggregate whenever someone joins, leaves or is offered: see `domain/offer.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.audit import Audited
from domain.errors import Conflict, NotFound

WAITLISTS = UUID("0c6f3f0e-2b1e-4c47-9a55-6b8c1d7e4a21")
ACTIVE = ("waiting", "offered")


def waitlist_id(offer_id: UUID) -> UUID:
    return uuid5(WAITLISTS, str(offer_id))


def waitlist_order_id(entry_id: UUID) -> UUID:
    """The one order an entry can be offered: a second promotion of the same entry conflicts."""
    return uuid5(entry_id, "waitlist-order")


class AlreadyWaiting(Conflict):
    code = "already_waiting"


class NotSoldOut(Conflict):
    code = "not_sold_out"


class Entry(TypedDict):
    id: UUID
    account_id: UUID
    quantity: int
    seq: int
    status: str
    joined_at: datetime
    order_id: UUID | None
    until: datetime | None


class Waitlist(Audited):
    @staticmethod
    def create_id(offer_id: UUID, **_: Any) -> UUID:
        return waitlist_id(offer_id)

    class Opened(Aggregate.Created):
        offer_id: UUID
        event_id: UUID

    @event(Opened)
    def __init__(self, offer_id: UUID, event_id: UUID) -> None:
        self.offer_id = offer_id
        self.event_id = event_id
        self.entries: dict[UUID, Entry] = {}
        self.line: tuple[UUID, ...] = ()  # ids of the waiting entries, first in line first

    def entry(self, entry_id: UUID) -> Entry:
        try:
            return self.entries[entry_id]
        except KeyError:
            raise NotFound("waitlist entry not found", code="waitlist_entry_not_found") from None

    def active_entry_of(self, account_id: UUID) -> Entry | None:
        for entry in self.entries.values():
            if entry["account_id"] == account_id and entry["status"] in ACTIVE:
                return entry
        return None

    def head(self) -> Entry | None:
        return self.entries[self.line[0]] if self.line else None

    def position(self, entry_id: UUID) -> int | None:
        """1-based place in line of a waiting entry; None for any other status."""
        try:
            return self.line.index(entry_id) + 1
        except ValueError:
            return None

    def offered(self) -> list[Entry]:
        return [e for e in self.entries.values() if e["status"] == "offered"]

    @property
    def waiting_quantity(self) -> int:
        return sum(self.entries[i]["quantity"] for i in self.line)

    # Joining and leaving -------------------------------------------------------------

    def join(self, account_id: UUID, quantity: int, at: datetime) -> UUID:
        """Queue `account_id` for `quantity` (limits and sold-out are checked on the offer)."""
        if self.active_entry_of(account_id) is not None:
            raise AlreadyWaiting("you are already on this waitlist")
        seq = len(self.entries)
        entry_id = uuid5(self.id, f"entry:{seq}")
        self._join(entry_id=entry_id, account_id=account_id, quantity=quantity, seq=seq, at=at)
        return entry_id

    class Joined(Aggregate.Event):
        entry_id: UUID
        account_id: UUID
        quantity: int
        seq: int
        at: datetime

    @event(Joined)
    def _join(self, entry_id: UUID, account_id: UUID, quantity: int, seq: int, at: datetime) -> None:
        entry: Entry = {"id": entry_id, "account_id": account_id, "quantity": quantity, "seq": seq,
                        "status": "waiting", "joined_at": at, "order_id": None, "until": None}  # fmt: skip
        self.entries = {**self.entries, entry_id: entry}
        self.line = (*self.line, entry_id)

    def leave(self, entry_id: UUID, at: datetime) -> Entry:
        """Stop waiting (or give up an offer: the caller cancels its order in the same save)."""
        entry = self.entry(entry_id)
        if entry["status"] not in ACTIVE:
            raise Conflict(f"this waitlist entry is already {entry['status']}", code="waitlist_entry_closed")
        self._leave(entry_id=entry_id, at=at)
        return entry

    class Left(Aggregate.Event):
        entry_id: UUID
        at: datetime

    @event(Left)
    def _leave(self, entry_id: UUID, at: datetime) -> None:
        self._set(entry_id, status="left")
        self.line = tuple(i for i in self.line if i != entry_id)

    # Offers ---------------------------------------------------------------------------

    def offer(self, entry_id: UUID, order_id: UUID, until: datetime) -> None:
        """The first in line gets a held order (made by the caller from kept stock)."""
        if not self.line or self.line[0] != entry_id:
            raise Conflict("only the first in line can be offered", code="waitlist_not_first")
        entry = self.entries[entry_id]
        self._offer(
            entry_id=entry_id,
            account_id=entry["account_id"],
            order_id=order_id,
            quantity=entry["quantity"],
            until=until,
        )

    class Offered(Aggregate.Event):
        entry_id: UUID
        account_id: UUID
        order_id: UUID
        quantity: int
        until: datetime

    @event(Offered)
    def _offer(self, entry_id: UUID, account_id: UUID, order_id: UUID, quantity: int, until: datetime) -> None:
        self._set(entry_id, status="offered", order_id=order_id, until=until)
        self.line = (
            self.line[1:] if self.line and self.line[0] == entry_id else tuple(i for i in self.line if i != entry_id)
        )

    def convert(self, entry_id: UUID) -> None:
        """The offered order was paid."""
        self._convert(entry_id=entry_id, order_id=self._offered_order(entry_id))

    class Converted(Aggregate.Event):
        entry_id: UUID
        order_id: UUID

    @event(Converted)
    def _convert(self, entry_id: UUID, order_id: UUID) -> None:
        self._set(entry_id, status="converted")

    def lapse(self, entry_id: UUID) -> None:
        """The offered order was not paid in time (or was cancelled): the next in line goes on."""
        self._lapse(entry_id=entry_id, order_id=self._offered_order(entry_id))

    class Lapsed(Aggregate.Event):
        entry_id: UUID
        order_id: UUID

    @event(Lapsed)
    def _lapse(self, entry_id: UUID, order_id: UUID) -> None:
        self._set(entry_id, status="lapsed")

    def _offered_order(self, entry_id: UUID) -> UUID:
        entry = self.entry(entry_id)
        if entry["status"] != "offered" or entry["order_id"] is None:
            raise Conflict(f"this waitlist entry is {entry['status']}", code="waitlist_entry_not_offered")
        return entry["order_id"]

    def _set(self, entry_id: UUID, **changes: Any) -> None:
        # Rebind, never mutate: copies of this aggregate may share the entries.
        self.entries = {**self.entries, entry_id: {**self.entries[entry_id], **changes}}  # type: ignore[typeddict-item]
