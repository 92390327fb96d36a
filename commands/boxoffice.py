"""The BoxOffice application: shows, offers, seats, orders and waitlists in one event store, so
an order, its offers, its seats and a waitlist are always saved together in one transaction."""

from __future__ import annotations

from commands.catalog import CatalogCommands
from commands.door import DoorCommands
from commands.payments import PaymentCommands
from commands.waitlist import WaitlistCommands


class BoxOffice(CatalogCommands, PaymentCommands, DoorCommands, WaitlistCommands):
    name = "boxoffice"
