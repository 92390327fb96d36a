"""ProviderEvent: one delivery from the payment provider, stored once by the provider's id.

The id is uuid5 of the provider's event id, so a second delivery of the same event fails to be
recorded (a version conflict) and is recognised as a duplicate without any lookup table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.audit import Audited

NAMESPACE = UUID("0d6c5c1e-8a53-4bb0-9a45-0f3b1f8f2f61")


def provider_event_id(provider: str, external_id: str) -> UUID:
    return uuid5(NAMESPACE, f"{provider}:{external_id}")


class ProviderEvent(Audited):
    class Received(Aggregate.Created):
        provider: str
        external_id: str
        type: str
        payload: dict[str, Any]
        received_at: datetime

    @staticmethod
    def create_id(provider: str, external_id: str, **_: Any) -> UUID:
        return provider_event_id(provider, external_id)

    @event(Received)
    def __init__(
        self, provider: str, external_id: str, type: str, payload: dict[str, Any], received_at: datetime
    ) -> None:
        self.provider = provider
        self.external_id = external_id
        self.type = type
        self.payload = payload
        self.received_at = received_at
        self.outcome: str | None = None

    class Applied(Aggregate.Event):
        outcome: str

    @event(Applied)
    def mark_applied(self, outcome: str) -> None:
        self.outcome = outcome
