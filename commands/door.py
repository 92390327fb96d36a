"""At the door and after: scanners, check-in (online and synced from offline scanners),
attendee names, ticket transfer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from commands.base import BaseApplication, utcnow
from domain.errors import Forbidden, Invalid, NotFound
from domain.event import Event
from domain.order import AlreadyCheckedIn, Order, TicketNotValid, WrongDay

# Results of a synced scan (see `DoorCommands.check_in_batch`).
CHECKED_IN = "checked_in"
ALREADY_CHECKED_IN = "already_checked_in"
WRONG_DAY = "wrong_day"
VOIDED = "voided"
INVALID = "invalid"


@dataclass(frozen=True)
class Scan:
    """One offline scan whose code was verified: which ticket, which issue of it, and when."""

    index: int
    ticket_id: UUID
    order_id: UUID
    generation: int
    at: datetime


@dataclass(frozen=True)
class ScanResult:
    index: int
    result: str
    message: str
    # When the ticket was admitted: by this scan (checked_in), or first (already_checked_in).
    checked_in_at: datetime | None = None
    checked_in_by: UUID | None = None
    valid_day: str | None = None


class DoorCommands(BaseApplication):
    def grant_scanner(self, event_id: UUID, account_id: UUID) -> Event:
        def attempt() -> Event:
            show = self.load(event_id, "event", Event)
            show.grant_scanner(account_id)
            self.save(show)
            return show

        return self.retrying(attempt)

    def revoke_scanner(self, event_id: UUID, account_id: UUID) -> Event:
        def attempt() -> Event:
            show = self.load(event_id, "event", Event)
            show.revoke_scanner(account_id)
            self.save(show)
            return show

        return self.retrying(attempt)

    def check_in(
        self,
        *,
        event_id: UUID,
        order_id: UUID,
        ticket_id: UUID,
        generation: int,
        scanner_id: UUID,
        scanner_is_admin: bool = False,
        at: datetime | None = None,
    ) -> Order:
        """Admit a ticket holder once (a day pass only on its day). Two scanners racing on one
        ticket: the store lets one win, the retry of the other sees the first check-in and
        answers `already_checked_in`."""
        show = self._door_of(event_id, scanner_id, scanner_is_admin)

        def attempt() -> Order:
            order = self.load(order_id, "order", Order)
            if order.event_id != event_id:
                raise NotFound("this ticket is not for this event", code="ticket_not_found")
            ticket = order.ticket(ticket_id)
            tier = show.tiers.get(ticket["tier_id"])
            order.check_in(
                ticket_id,
                generation,
                scanner_id,
                at or utcnow(),
                valid_day=tier.day if tier else None,
                timezone=show.timezone,
            )
            self.save(order)
            return order

        return self.retrying(attempt)

    def check_in_batch(
        self, *, event_id: UUID, scans: list[Scan], scanner_id: UUID, scanner_is_admin: bool = False
    ) -> list[ScanResult]:
        """Record what an offline scanner admitted, in one transaction: scans are applied
        earliest first, so the first scan of a ticket wins (also over a check-in recorded since,
        if it was earlier), and a scan already recorded is recognised, so sending the same batch
        twice gives the same answer and changes nothing the second time."""
        show = self._door_of(event_id, scanner_id, scanner_is_admin)

        def attempt() -> list[ScanResult]:
            orders = self.load_many({scan.order_id for scan in scans})
            results = [self._apply_scan(show, orders.get(scan.order_id), scan, scanner_id)
                       for scan in sorted(scans, key=lambda s: (s.at, s.index))]  # fmt: skip
            changed = [order for order in orders.values() if order.pending_events]
            if changed:
                self.save(*changed)
            return sorted(results, key=lambda r: r.index)

        return self.retrying(attempt)

    @staticmethod
    def _apply_scan(show: Event, order: Order | None, scan: Scan, scanner_id: UUID) -> ScanResult:
        if not isinstance(order, Order) or order.event_id != show.id:
            return ScanResult(scan.index, INVALID, "no such ticket for this event")
        try:
            ticket = order.ticket(scan.ticket_id)
            tier = show.tiers.get(ticket["tier_id"])
            order.check_in(
                scan.ticket_id,
                scan.generation,
                scanner_id,
                scan.at,
                valid_day=tier.day if tier else None,
                timezone=show.timezone,
                offline=True,
            )
        except AlreadyCheckedIn as refused:
            return ScanResult(scan.index, ALREADY_CHECKED_IN, refused.message,
                              refused.first_checked_in_at, refused.checked_in_by)  # fmt: skip
        except WrongDay as refused:
            return ScanResult(scan.index, WRONG_DAY, refused.message, valid_day=refused.valid_day)
        except TicketNotValid as refused:
            return ScanResult(scan.index, VOIDED, refused.message)
        except NotFound:
            return ScanResult(scan.index, INVALID, "no such ticket for this event")
        return ScanResult(scan.index, CHECKED_IN, "checked in", scan.at, scanner_id)

    def _door_of(self, event_id: UUID, scanner_id: UUID, scanner_is_admin: bool) -> Event:
        show = self.load(event_id, "event", Event)
        if not (scanner_is_admin or show.may_scan(scanner_id)):
            raise Forbidden("you are not a scanner of this event", code="not_a_scanner")
        return show

    def name_attendees(self, order_id: UUID, names: dict[UUID, str | None], *, by: UUID) -> Order:
        """Print these names on these tickets of one order (the buyer before payment, each
        ticket's holder after)."""

        def attempt() -> Order:
            order = self.load(order_id, "order", Order)
            if order.name_attendees(names, by):
                self.save(order)
            return order

        return self.retrying(attempt)

    def name_order_attendees(self, order_id: UUID, names: list[str | None], *, by: UUID) -> Order:
        """One name (or None) per ticket of the order, in item order."""

        def attempt() -> Order:
            order = self.load(order_id, "order", Order)
            ticket_ids = order.ticket_ids()
            if len(names) != len(ticket_ids):
                raise Invalid(f"this order has {len(ticket_ids)} tickets: send one name (or null) for each",
                              field="attendee_names")  # fmt: skip
            if order.name_attendees(dict(zip(ticket_ids, names, strict=True)), by):
                self.save(order)
            return order

        return self.retrying(attempt)

    def transfer_ticket(self, order_id: UUID, ticket_id: UUID, *, from_id: UUID, to_id: UUID) -> int:
        """Reissue a ticket to another account (the old QR code stops being valid)."""

        def attempt() -> int:
            order = self.load(order_id, "order", Order)
            generation = order.transfer(ticket_id, from_id, to_id)
            self.save(order)
            return generation

        return self.retrying(attempt)
