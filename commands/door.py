"""At the door and after: scanners, check-in, ticket transfer."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from commands.base import BaseApplication, utcnow
from domain.errors import Forbidden, NotFound
from domain.event import Event
from domain.order import Order


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
        """Admit a ticket holder once. Two scanners racing on one ticket: the store lets one win,
        the retry of the other sees the first check-in and answers `already_checked_in`."""
        show = self.load(event_id, "event", Event)
        if not (scanner_is_admin or show.may_scan(scanner_id)):
            raise Forbidden("you are not a scanner of this event", code="not_a_scanner")

        def attempt() -> Order:
            order = self.load(order_id, "order", Order)
            if order.event_id != event_id:
                raise NotFound("this ticket is not for this event", code="ticket_not_found")
            order.check_in(ticket_id, generation, scanner_id, at or utcnow())
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
