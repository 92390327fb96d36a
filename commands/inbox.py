"""The Inbox application: provider webhooks, each stored once, in an event store of its own
(so a burst of webhooks never queues behind ticket sales for the same table lock)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from commands.base import BaseApplication, utcnow
from domain.provider_event import ProviderEvent, provider_event_id


class Inbox(BaseApplication):
    name = "inbox"

    def receive(self, provider: str, external_id: str, type_: str, payload: dict[str, Any],
                *, at: datetime | None = None) -> tuple[UUID, bool]:  # fmt: skip
        """Store a delivery; returns (id, is_new). A repeated delivery is not stored again."""
        delivery = ProviderEvent(
            provider=provider, external_id=external_id, type=type_, payload=payload, received_at=at or utcnow()
        )
        try:
            self.save(delivery)
        except IntegrityError:
            return provider_event_id(provider, external_id), False
        return delivery.id, True

    def get(self, delivery_id: UUID) -> ProviderEvent:
        return self.load(delivery_id, "provider event", ProviderEvent)

    def mark_applied(self, delivery_id: UUID, outcome: str) -> None:
        def attempt() -> None:
            delivery = self.get(delivery_id)
            if delivery.outcome is None:
                delivery.mark_applied(outcome)
                self.save(delivery)

        self.retrying(attempt)
