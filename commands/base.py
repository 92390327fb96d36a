"""What every Application here shares: the clock, save positions, and conflict retries."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Recording

from domain.errors import DomainError, NotFound

T = TypeVar("T")


class Busy(DomainError):
    """The store stayed contended after every retry; the client may try again (503)."""

    code = "busy"


def utcnow() -> datetime:
    return datetime.now(UTC)


class BaseApplication(Application[UUID]):
    """Records the notification position of the last save made by the calling thread.

    The API uses it to wait, after a write, until the read models have caught up with that
    position, so a client always reads its own writes.
    """

    conflict_attempts = 12

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env=env)
        self._local = threading.local()

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        recordings = super().save(*objs, **kwargs)
        if recordings:
            self._local.position = max(r.notification.id for r in recordings)
        return recordings

    def take_position(self) -> int | None:
        """The position of this thread's last save, then forget it."""
        position: int | None = getattr(self._local, "position", None)
        self._local.position = None
        return position

    def load(self, aggregate_id: UUID, what: str, cls: type[T]) -> T:
        """Get an aggregate of a known type or raise `NotFound` naming `what`."""
        try:
            aggregate: object = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(f"{what} not found", code=f"{what.replace(' ', '_')}_not_found") from None
        if not isinstance(aggregate, cls):
            raise NotFound(f"{what} not found", code=f"{what.replace(' ', '_')}_not_found")
        return aggregate

    def exists(self, aggregate_id: UUID) -> bool:
        return aggregate_id in self.repository

    def retrying(self, attempt: Callable[[], T]) -> T:
        """Run load -> decide -> save again when another writer got there first.

        Every attempt reloads (the cache fast-forwards), so a retry decides on fresh state:
        a conflicting seat turns into `SeatTaken`, a drained offer into `SoldOut`.
        """
        for n in range(self.conflict_attempts):
            try:
                return attempt()
            except IntegrityError:
                time.sleep(random.uniform(0, 0.002 * (n + 1)))
        raise Busy("too many concurrent changes, please retry")
