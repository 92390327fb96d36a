"""The Inbox application: provider webhooks, each stored once, in an event store of its own
(so a burst of webhooks never queues behind ticket sales for the same table lock).

The inbox is an outbox too: a delivery is stored first and queued for a worker after, and
queueing can fail (Redis down). A stored delivery without an outcome is therefore queued again
on every redelivery of it and by a periodic reconciler (`unapplied`), and applying it is
idempotent, so no captured payment is ever left without its tickets or its refund.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from psycopg.sql import SQL, Identifier

from commands.base import BaseApplication, expect, utcnow
from domain.provider_event import ProviderEvent, provider_event_id

INBOX_LOCK = 0x696E6278  # the advisory lock class of provider deliveries ("inbx")


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

    def get_many(self, delivery_ids: Iterable[UUID]) -> list[ProviderEvent]:
        """These deliveries (each once, in the order given), loaded with one query."""
        wanted = list(dict.fromkeys(delivery_ids))
        loaded = self.load_many(wanted)
        return [expect(loaded.get(delivery_id), "provider event", ProviderEvent) for delivery_id in wanted]

    @contextmanager
    def applying(self, delivery_ids: list[UUID]) -> Iterator[list[ProviderEvent]]:
        """Hold the deliveries' locks while they are applied; yields them as stored once the
        locks are held. The same delivery can be queued twice (a redelivery and the
        reconciler), and two workers applying it side by side would both decide before either
        marked it, e.g. both refund a late payment. Session-level advisory locks on one pooled
        connection serialise them (taken in one order, so two batches cannot deadlock); a dead
        worker's locks go with its connection."""
        keys = sorted({int.from_bytes(d.bytes[:4], "big", signed=True) for d in delivery_ids})
        recorder: Any = self.recorder
        with recorder.datastore.get_connection() as conn:
            # One statement, the locks taken in the array's order.
            conn.execute("SELECT pg_advisory_lock(%s, k) FROM unnest(%s::int[]) WITH ORDINALITY AS u(k, i) ORDER BY i",
                         (INBOX_LOCK, keys))  # fmt: skip
            try:
                yield self.get_many(delivery_ids)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, k) FROM unnest(%s::int[]) AS k", (INBOX_LOCK, keys))

    def is_applied(self, delivery_id: UUID) -> bool:
        return self.get(delivery_id).outcome is not None

    def mark_applied(self, outcomes: dict[UUID, str]) -> None:
        """Record the outcome of each delivery (in one save); one already recorded stays."""

        def attempt() -> None:
            changed = []
            for delivery in self.get_many(outcomes):
                if delivery.outcome is None:
                    delivery.mark_applied(outcomes[delivery.id])
                    changed.append(delivery)
            if changed:
                self.save(*changed)

        self.retrying(attempt)

    def head(self) -> int:
        """The position of the last stored delivery event (0 for an empty inbox)."""
        return self.recorder.max_notification_id() or 0

    def unapplied(self, *, after: int, up_to: int, limit: int = 1000) -> list[tuple[int, UUID]]:
        """Deliveries stored at positions in (after, up_to] that have no outcome yet, oldest
        first, as (position, delivery id). A delivery's outcome is its second event."""
        recorder: Any = self.recorder
        query = SQL(
            "SELECT e.notification_id, e.originator_id FROM {schema}.{table} e "
            "WHERE e.originator_version = 1 AND e.notification_id > %s AND e.notification_id <= %s "
            "AND NOT EXISTS (SELECT 1 FROM {schema}.{table} a "
            "                WHERE a.originator_id = e.originator_id AND a.originator_version = 2) "
            "ORDER BY e.notification_id LIMIT %s"
        ).format(schema=Identifier(recorder.datastore.schema), table=Identifier(recorder.events_table_name))
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(query, (after, up_to, limit))
            return [(row["notification_id"], row["originator_id"]) for row in curs.fetchall()]
