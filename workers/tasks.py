"""Dramatiq actors: thin adapters that decode a message and call one idempotent command."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

import dramatiq
from dramatiq.brokers.redis import RedisBroker

if TYPE_CHECKING:
    from commands.boxoffice import BoxOffice
    from ticketing import Settings

log = logging.getLogger("workers")


def build_broker(settings: Settings) -> RedisBroker:
    return RedisBroker(url=settings.redis_url, namespace="ticketing")  # type: ignore[no-untyped-call]


@dataclass
class Runtime:
    """What actors need in a worker process, built once on first use."""

    settings: Settings
    boxoffice: BoxOffice
    read_dsn: str


@dataclass
class Actors:
    expire_hold: dramatiq.Actor[[str], None]
    sweep_holds: dramatiq.Actor[[], int]

    def schedule_expiry(self, order_id: UUID, deadline: datetime) -> None:
        """Expire the hold at its deadline (a delayed message); the sweep is the safety net."""
        delay_ms = max(0, int((deadline - datetime.now(UTC)).total_seconds() * 1000) + 250)
        self.expire_hold.send_with_options(args=(str(order_id),), delay=delay_ms)


def declare_actors(broker: dramatiq.Broker, runtime: Callable[[], Runtime]) -> Actors:
    """Declare the actors on `broker`; `runtime` is only called inside a worker."""

    @dramatiq.actor(broker=broker, actor_name="expire_hold", queue_name="holds", max_retries=10)
    def expire_hold(order_id: str) -> None:
        expired = runtime().boxoffice.expire_hold(UUID(order_id))
        log.info("hold %s %s", order_id, "expired" if expired else "already closed or extended")

    @dramatiq.actor(broker=broker, actor_name="sweep_holds", queue_name="holds", max_retries=3)
    def sweep_holds() -> int:
        """Expire every hold past its deadline that a delayed message has not handled."""
        import psycopg
        from psycopg.rows import dict_row

        from projections.holds import due_holds

        rt = runtime()
        with psycopg.connect(rt.read_dsn, row_factory=dict_row) as conn:
            due = due_holds(conn)
        expired = sum(1 for order_id in due if rt.boxoffice.expire_hold(order_id))
        if due:
            log.info("sweep: %d holds due, %d expired", len(due), expired)
        return expired

    return Actors(expire_hold=expire_hold, sweep_holds=sweep_holds)


def make_runtime(settings: Settings) -> Callable[[], Runtime]:
    cache: dict[str, Runtime] = {}

    def get() -> Runtime:
        if "rt" not in cache:
            from commands.setup import open_boxoffice

            cache["rt"] = Runtime(settings=settings, boxoffice=open_boxoffice(settings), read_dsn=settings.database_url)
        return cache["rt"]

    return get
