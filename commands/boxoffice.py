"""The BoxOffice application: shows, offers, seats and orders in one event store, so an
order, its offers and its seats are always saved together in one transaction."""

from __future__ import annotations

from commands.catalog import CatalogCommands
from commands.door import DoorCommands
from commands.payments import PaymentCommands


class BoxOffice(CatalogCommands, PaymentCommands, DoorCommands):
    name = "boxoffice"
