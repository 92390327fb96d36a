"""Order: what a buyer holds and pays for. held -> paid | cancelled | expired.

The order remembers exactly which inventory it holds (quantities per offer, seats), so
releasing or selling it is driven from here and can happen only once. One module for the whole
life of an order (hold, payment, refunds, its tickets at the door), as for every aggregate.
"""

from __future__ import annotations

from copy import deepcopy
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypedDict
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate, event

from domain.audit import Audited
from domain.errors import Conflict, Gone, Invalid, NotFound
from domain.order_number import order_number

MAX_ITEMS = 50
MAX_ATTENDEE_NAME = 100


class Ticket(TypedDict):
    """One admitted person. `price` is the unit price plus this ticket's share of the fees, so the
    tickets of an order add up to its total and a refund of tickets is exact."""

    id: UUID
    offer_id: UUID
    tier_id: UUID
    seat_id: UUID | None
    seat_label: str | None
    price: int
    status: str


class TicketState(TypedDict, total=False):
    """What happened to a ticket after issue (kept apart so issued tickets stay immutable)."""

    checked_in_at: datetime
    checked_in_by: UUID
    holder_id: UUID
    generation: int
    attendee_name: str


class AlreadyCheckedIn(Conflict):
    """A second scan: says when (and by whom) the ticket was first admitted."""

    code = "already_checked_in"

    def __init__(self, first_checked_in_at: datetime, checked_in_by: UUID | None) -> None:
        super().__init__(f"already checked in at {first_checked_in_at.isoformat()}")
        self.first_checked_in_at = first_checked_in_at
        self.checked_in_by = checked_in_by


class TicketNotValid(Conflict):
    code = "ticket_not_valid"


class WrongDay(Conflict):
    """A day pass scanned on another day (in the show's time zone) than the one it is for."""

    code = "wrong_day"

    def __init__(self, valid_day: str, scan_day: str) -> None:
        super().__init__(f"this ticket is valid on {valid_day} only (today is {scan_day} at the venue)")
        self.valid_day = valid_day
        self.scan_day = scan_day


def check_admission_day(valid_day: str | None, timezone: str, at: datetime) -> None:
    """A ticket of a tier with a `day` admits only on that date, in the show's time zone."""
    if valid_day is None:
        return
    try:
        zone = ZoneInfo(timezone)
    except (KeyError, ValueError, OSError):
        zone = ZoneInfo("UTC")
    scan_day = at.astimezone(zone).date().isoformat()
    if scan_day != valid_day:
        raise WrongDay(valid_day, scan_day)


def clean_attendee_name(name: str | None) -> str | None:
    """An attendee name as stored: whitespace collapsed, at most `MAX_ATTENDEE_NAME` characters;
    None (or only spaces) clears it."""
    if name is None:
        return None
    cleaned = " ".join(name.split())
    if not cleaned:
        return None
    if len(cleaned) > MAX_ATTENDEE_NAME:
        raise Invalid(f"an attendee name has at most {MAX_ATTENDEE_NAME} characters", field="attendee_name")
    if any(ord(char) < 32 or 127 <= ord(char) < 160 for char in cleaned):
        raise Invalid("an attendee name must not contain control characters", field="attendee_name")
    return cleaned


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


class Order(Audited):
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
        # The human order number (domain/order_number.py); orders placed before numbering have none.
        number: str | None = None

        def acting(self) -> UUID | None:
            """An order is placed by its buyer: the claim path saves without naming an actor (a
            waitlist offer is placed for the entry's account, on the system's initiative)."""
            actor: UUID | None = getattr(self, "actor_id", None)
            return actor or self.buyer_id

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
        number: str | None = None,
    ) -> None:
        self.number = number
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
        self.payment_status = "unpaid"
        self.payment_intent_id: str | None = None
        self.amount_paid = 0
        self.amount_refunded = 0
        self.refund_ids: list[str] = []
        self.payment_failures = 0
        self.last_payment_error: str | None = None
        self.tickets: list[Ticket] = []
        self.paid_at: datetime | None = None
        self.ticket_states: dict[UUID, TicketState] = {}
        self.refund_keys: dict[str, str] = {}

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
        serial: int | None = None,
    ) -> Order:
        """Create a held order whose totals are derived from its items (never trusted input).

        `serial` is the order's unique serial from the store; its human number derives from it."""
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
            number=order_number(serial) if serial is not None else None,
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> Order:
        """An independent copy, as `copy.deepcopy` makes it (the aggregate cache hands out and
        keeps copies: `commands.base.copy_aggregate`): new lists and dicts all the way down. Only
        the immutable values in them (ids, strings, numbers, datetimes) are shared instead of
        rebuilt one by one: ~16 us an order instead of ~280 us, and hold expiry copies every
        order it closes twice."""
        clone = object.__new__(type(self))
        clone.__dict__.update({name: _copied(value, memo) for name, value in self.__dict__.items()})
        return clone

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

    # Payment ----------------------------------------------------------------------------

    def start_payment(self, payment_intent_id: str, at: datetime, *, extend_by: timedelta, cap: timedelta) -> None:
        """Record the provider's intent and keep the hold while the buyer pays: until `extend_by`
        from now, but never later than `cap` after the order was placed (starting to pay again and
        again must not keep tickets from everyone else), and never shorter than it already was."""
        self.check_payable(at)
        if self.payment_intent_id not in (None, payment_intent_id):
            raise WrongOrderState("this order already has a payment in progress")
        until = max(self.hold_expires_at, min(at + extend_by, self.placed_at + cap))
        if self.payment_intent_id == payment_intent_id and until == self.hold_expires_at:
            return
        self._start_payment(payment_intent_id=payment_intent_id, until=until)

    class PaymentStarted(Aggregate.Event):
        payment_intent_id: str
        until: datetime

    @event(PaymentStarted)
    def _start_payment(self, payment_intent_id: str, until: datetime) -> None:
        self.payment_intent_id = payment_intent_id
        self.payment_status = "pending"
        self.hold_expires_at = until

    def record_payment_failure(self, payment_intent_id: str, reason: str) -> None:
        """A declined attempt: the hold stays until its deadline so the buyer can retry."""
        if self.status != "held" or self.payment_intent_id != payment_intent_id:
            return
        self._fail(payment_intent_id=payment_intent_id, reason=reason[:300])

    class PaymentFailed(Aggregate.Event):
        payment_intent_id: str
        reason: str

    @event(PaymentFailed)
    def _fail(self, payment_intent_id: str, reason: str) -> None:
        self.payment_status = "failed"
        self.payment_failures += 1
        self.last_payment_error = reason

    def pay(self, payment_intent_id: str | None, amount: int, at: datetime, *, late: bool = False) -> None:
        """Money captured: the order is paid and issues one ticket per admitted person.

        `late` is a payment that arrived after the hold lapsed and whose inventory the caller
        managed to claim again.
        """
        allowed = ("held", "expired", "cancelled") if late else ("held",)
        if self.status not in allowed:
            raise WrongOrderState(f"this order is {self.status}")
        if amount != self.total:
            raise Conflict(f"paid {amount} but the order total is {self.total}", code="amount_mismatch")
        self._pay(payment_intent_id=payment_intent_id, amount=amount, at=at, late=late, tickets=self._new_tickets())

    class Paid(Aggregate.Event):
        payment_intent_id: str | None
        amount: int
        at: datetime
        late: bool
        tickets: list[Ticket]

    @event(Paid)
    def _pay(self, payment_intent_id: str | None, amount: int, at: datetime, late: bool, tickets: list[Ticket]) -> None:
        self.status = "paid"
        self.payment_status = "succeeded"
        self.payment_intent_id = payment_intent_id
        self.amount_paid = amount
        self.paid_at = at
        self.closed_at = None
        self.tickets = tickets

    def _new_tickets(self) -> list[Ticket]:
        tickets: list[Ticket] = []
        n = 0
        for item in self.items:
            for _ in range(item["quantity"]):
                tickets.append(
                    {
                        "id": uuid5(self.id, f"ticket:{n}"),
                        "offer_id": item["offer_id"],
                        "tier_id": item["tier_id"],
                        "seat_id": item["seat_id"],
                        "seat_label": item["seat_label"],
                        "price": item["unit_price"],
                        "status": "valid",
                    }
                )
                n += 1
        # Spread the fees over the tickets (remainder on the first) so they add up to the total.
        if tickets and self.fees:
            share, rest = divmod(self.fees, len(tickets))
            for index, ticket in enumerate(tickets):
                ticket["price"] += share + (rest if index == 0 else 0)
        return tickets

    def refund_late_payment(self, payment_intent_id: str, amount: int, refund_id: str, at: datetime) -> None:
        """The payment came after the hold lapsed and the inventory was gone: money goes back."""
        if self.status in ("paid", "partially_refunded", "refunded") or refund_id in self.refund_ids:
            return
        self._refund_late(payment_intent_id=payment_intent_id, amount=amount, refund_id=refund_id, at=at)

    class LatePaymentRefunded(Aggregate.Event):
        payment_intent_id: str
        amount: int
        refund_id: str
        at: datetime

    @event(LatePaymentRefunded)
    def _refund_late(self, payment_intent_id: str, amount: int, refund_id: str, at: datetime) -> None:
        self.status = "refunded"
        self.payment_status = "refunded"
        self.payment_intent_id = payment_intent_id
        self.amount_paid = amount
        self.amount_refunded = amount
        self.refund_ids = [*self.refund_ids, refund_id]
        self.closed_at = at

    # Refunds ----------------------------------------------------------------------------

    def valid_tickets(self) -> list[Ticket]:
        return [t for t in self.tickets if t["status"] == "valid"]

    def tickets_to_refund(self, ticket_ids: list[UUID] | None) -> list[Ticket]:
        """The tickets a refund covers: the named ones, or every valid one (full refund)."""
        if self.status not in ("paid", "partially_refunded"):
            raise WrongOrderState(f"only paid orders can be refunded (this one is {self.status})")
        valid = {t["id"]: t for t in self.valid_tickets()}
        if not ticket_ids:
            if not valid:
                raise WrongOrderState("every ticket of this order is already refunded")
            return list(valid.values())
        chosen = []
        for ticket_id in dict.fromkeys(ticket_ids):
            if ticket_id not in valid:
                raise Invalid("ticket not refundable (unknown, voided or not in this order)", field="ticket_ids")
            chosen.append(valid[ticket_id])
        return chosen

    @property
    def refundable(self) -> int:
        """Money paid and not yet given back."""
        return self.amount_paid - self.amount_refunded

    def refund_of_key(self, request_key: str) -> str | None:
        """The refund a request with this Idempotency-Key already made, if any."""
        return self.refund_keys.get(request_key)

    def refund(
        self,
        refund_id: str,
        ticket_ids: list[UUID],
        amount: int,
        reason: str,
        at: datetime,
        request_key: str | None = None,
    ) -> None:
        """Record a refund of these tickets (voided) for `amount`: at most what they cost and
        what is left to refund (less keeps a fee). A refund id already recorded changes nothing."""
        if refund_id in self.refund_ids:
            return
        tickets = self.tickets_to_refund(ticket_ids)
        if not 0 <= amount <= min(sum(t["price"] for t in tickets), self.refundable):
            raise Conflict("refund amount does not match the refunded tickets", code="amount_mismatch")
        self._refund(refund_id=refund_id, ticket_ids=[t["id"] for t in tickets], amount=amount, reason=reason, at=at,
                     request_key=request_key)  # fmt: skip

    class Refunded(Aggregate.Event):
        refund_id: str
        ticket_ids: list[UUID]
        amount: int
        reason: str
        at: datetime
        # The Idempotency-Key of the request (None: none sent, or recorded before keys were kept).
        request_key: str | None = None

    @event(Refunded)
    def _refund(
        self, refund_id: str, ticket_ids: list[UUID], amount: int, reason: str, at: datetime,
        request_key: str | None = None,
    ) -> None:  # fmt: skip
        voided = set(ticket_ids)
        self.tickets = [{**t, "status": "voided"} if t["id"] in voided else t for t in self.tickets]
        self._record_refund(refund_id, amount, request_key)
        fully = not self.valid_tickets()
        self.status = "refunded" if fully else "partially_refunded"
        self.payment_status = "refunded" if fully else "partially_refunded"
        if fully:
            self.closed_at = at

    def refund_amount(
        self, refund_id: str, amount: int, reason: str, at: datetime, request_key: str | None = None
    ) -> None:
        """Give back part of the money while every ticket stays valid (a goodwill gesture, a
        price drop). Less than what is left to refund: all of it is a full refund of the tickets."""
        if refund_id in self.refund_ids:
            return
        if self.status not in ("paid", "partially_refunded"):
            raise WrongOrderState(f"only paid orders can be refunded (this one is {self.status})")
        if not self.valid_tickets():
            raise WrongOrderState("every ticket of this order is already refunded")
        if not 0 < amount < self.refundable:
            raise Conflict(
                f"a partial refund is more than 0 and less than the {self.refundable} (minor units) left to refund",
                code="amount_mismatch",
            )
        self._refund_amount(refund_id=refund_id, amount=amount, reason=reason, at=at, request_key=request_key)

    class AmountRefunded(Aggregate.Event):
        """Money given back without voiding any ticket."""

        refund_id: str
        amount: int
        reason: str
        at: datetime
        request_key: str | None

    @event(AmountRefunded)
    def _refund_amount(self, refund_id: str, amount: int, reason: str, at: datetime, request_key: str | None) -> None:
        self._record_refund(refund_id, amount, request_key)
        self.status = self.payment_status = "partially_refunded"

    def _record_refund(self, refund_id: str, amount: int, request_key: str | None) -> None:
        self.amount_refunded += amount
        self.refund_ids = [*self.refund_ids, refund_id]
        if request_key is not None:
            self.refund_keys = {**self.refund_keys, request_key: refund_id}

    # At the door and after ------------------------------------------------------------

    def ticket(self, ticket_id: UUID) -> Ticket:
        for ticket in self.tickets:
            if ticket["id"] == ticket_id:
                return ticket
        raise NotFound("ticket not found", code="ticket_not_found")

    def ticket_generation(self, ticket_id: UUID) -> int:
        return self.ticket_states.get(ticket_id, {}).get("generation", 0)

    def ticket_holder(self, ticket_id: UUID) -> UUID:
        return self.ticket_states.get(ticket_id, {}).get("holder_id", self.buyer_id)

    def check_in(
        self,
        ticket_id: UUID,
        generation: int,
        scanner_id: UUID,
        at: datetime,
        *,
        valid_day: str | None = None,
        timezone: str = "UTC",
        offline: bool = False,
    ) -> bool:
        """Admit the holder once; a second scan reports when the first one happened.

        `valid_day` is the day of a day pass (its tier's), checked against `at` in the show's
        `timezone`. An `offline` scan is one a scanner made without a network and syncs later:
        the earliest scan wins, so one made before the recorded check-in moves it earlier, and
        the very scan already recorded (same time, same scanner) is recognised, not refused, so
        a batch can be sent again. Returns False when nothing new was recorded.
        """
        ticket = self.ticket(ticket_id)
        if ticket["status"] != "valid" or generation != self.ticket_generation(ticket_id):
            raise TicketNotValid("this ticket is not valid (refunded, or reissued to someone else)")
        check_admission_day(valid_day, timezone, at)
        state = self.ticket_states.get(ticket_id, {})
        first = state.get("checked_in_at")
        if first is None:
            self._check_in(ticket_id=ticket_id, scanner_id=scanner_id, at=at)
            return True
        if offline and at == first and state.get("checked_in_by") == scanner_id:
            return False
        if offline and at < first:
            self._antedate_check_in(ticket_id=ticket_id, scanner_id=scanner_id, at=at, replaced_at=first)
            return True
        raise AlreadyCheckedIn(first, state.get("checked_in_by"))

    def first_check_in(self, ticket_id: UUID) -> tuple[datetime, UUID | None] | None:
        state = self.ticket_states.get(ticket_id, {})
        first = state.get("checked_in_at")
        return None if first is None else (first, state.get("checked_in_by"))

    class TicketCheckedIn(Aggregate.Event):
        ticket_id: UUID
        scanner_id: UUID
        at: datetime

    @event(TicketCheckedIn)
    def _check_in(self, ticket_id: UUID, scanner_id: UUID, at: datetime) -> None:
        state = dict(self.ticket_states.get(ticket_id, {}))
        state.update(checked_in_at=at, checked_in_by=scanner_id)
        self.ticket_states = {**self.ticket_states, ticket_id: state}  # type: ignore[dict-item]

    class TicketCheckInAntedated(Aggregate.Event):
        """An offline scan synced later turned out to be earlier than the recorded check-in."""

        ticket_id: UUID
        scanner_id: UUID
        at: datetime
        replaced_at: datetime

    @event(TicketCheckInAntedated)
    def _antedate_check_in(self, ticket_id: UUID, scanner_id: UUID, at: datetime, replaced_at: datetime) -> None:
        state = dict(self.ticket_states.get(ticket_id, {}))
        state.update(checked_in_at=at, checked_in_by=scanner_id)
        self.ticket_states = {**self.ticket_states, ticket_id: state}  # type: ignore[dict-item]

    # Attendee names ----------------------------------------------------------------------

    def ticket_ids(self) -> list[UUID]:
        """The ids of this order's tickets, in item order: issued ones, or (before payment) the
        ones payment will issue (they are derived from the order id)."""
        if self.tickets:
            return [t["id"] for t in self.tickets]
        return [uuid5(self.id, f"ticket:{n}") for n in range(self.ticket_count)]

    def attendee_name(self, ticket_id: UUID) -> str | None:
        return self.ticket_states.get(ticket_id, {}).get("attendee_name")

    def name_attendees(self, names: dict[UUID, str | None], by: UUID) -> list[UUID]:
        """Put a name on tickets (None clears it): before payment by the buyer, afterwards by
        each ticket's holder, until it is used. Returns the tickets whose name changed."""
        if self.status not in ("held", "paid", "partially_refunded"):
            raise WrongOrderState(f"attendee names cannot be changed on a {self.status} order")
        known = set(self.ticket_ids())
        if not known.issuperset(names):
            raise NotFound("ticket not found", code="ticket_not_found")
        cleaned = {t: clean_attendee_name(name) for t, name in names.items()}
        # Names sent again unchanged are no change: a full list can be sent after a transfer.
        changed = [t for t, name in cleaned.items() if name != self.attendee_name(t)]
        for ticket_id in changed:
            if self.status == "held":
                if by != self.buyer_id:
                    raise NotFound("ticket not found", code="ticket_not_found")
            else:
                if self.ticket_holder(ticket_id) != by:
                    raise NotFound("ticket not found", code="ticket_not_found")
                if self.ticket(ticket_id)["status"] != "valid":
                    raise TicketNotValid("this ticket is not valid (refunded)")
                if "checked_in_at" in self.ticket_states.get(ticket_id, {}):
                    raise TicketNotValid("this ticket was already used at the door")
        for ticket_id in changed:
            self._name_attendee(ticket_id=ticket_id, attendee_name=cleaned[ticket_id], person_id=by)
        return changed

    class AttendeeNamed(Aggregate.Event):
        """The name printed on one ticket (personal data: kept in its own field, sealed with the
        key of `person_id`, the holder who gave it; events stored before have no `person_id`)."""

        personal_data: ClassVar[tuple[str, ...]] = ("attendee_name",)
        personal_owner: ClassVar[str] = "person_id"
        ticket_id: UUID
        attendee_name: str | None
        person_id: UUID

    @event(AttendeeNamed)
    def _name_attendee(self, ticket_id: UUID, attendee_name: str | None, person_id: UUID | None = None) -> None:
        state = dict(self.ticket_states.get(ticket_id, {}))
        if attendee_name is None:
            state.pop("attendee_name", None)
        else:
            state["attendee_name"] = attendee_name
        self.ticket_states = {**self.ticket_states, ticket_id: state}  # type: ignore[dict-item]

    def transfer(self, ticket_id: UUID, from_id: UUID, to_id: UUID) -> int:
        """Reissue a ticket to another account; the old QR code stops working. Returns the new generation."""
        ticket = self.ticket(ticket_id)
        if self.ticket_holder(ticket_id) != from_id:
            raise NotFound("ticket not found", code="ticket_not_found")
        if ticket["status"] != "valid" or "checked_in_at" in self.ticket_states.get(ticket_id, {}):
            raise TicketNotValid("only valid tickets that have not been used can be transferred")
        if to_id == from_id:
            raise Invalid("the ticket already belongs to this account", field="email")
        generation = self.ticket_generation(ticket_id) + 1
        self._transfer(ticket_id=ticket_id, to_id=to_id, generation=generation)
        return generation

    class TicketTransferred(Aggregate.Event):
        ticket_id: UUID
        to_id: UUID
        generation: int

    @event(TicketTransferred)
    def _transfer(self, ticket_id: UUID, to_id: UUID, generation: int) -> None:
        state = dict(self.ticket_states.get(ticket_id, {}))
        state.update(holder_id=to_id, generation=generation)
        # The ticket is reissued to another person: the name printed on the old one is not theirs.
        state.pop("attendee_name", None)
        self.ticket_states = {**self.ticket_states, ticket_id: state}  # type: ignore[dict-item]


_SHARED = (UUID, str, int, float, bool, datetime, type(None))


def _copied(value: Any, memo: dict[int, Any]) -> Any:
    """`value` with every list and dict in it copied; immutable values shared; anything else
    (pending events) deep-copied."""
    kind = type(value)
    if kind is list:
        return [_copied(v, memo) for v in value]
    if kind is dict:
        return {k: _copied(v, memo) for k, v in value.items()}
    if isinstance(value, _SHARED):
        return value
    return deepcopy(value, memo)
