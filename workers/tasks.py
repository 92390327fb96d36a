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
    from commands.inbox import Inbox
    from domain.order import Order
    from ticketing import Settings

log = logging.getLogger("workers")
SYSTEM = UUID(int=0)  # the actor of refunds the service makes on its own (cancelled shows)


def build_broker(settings: Settings) -> RedisBroker:
    return RedisBroker(url=settings.redis_url, namespace="ticketing")  # type: ignore[no-untyped-call]


@dataclass
class Runtime:
    """What actors need in a worker process, built once on first use."""

    settings: Settings
    boxoffice: BoxOffice
    inbox: Inbox
    read_dsn: str


@dataclass
class Actors:
    expire_hold: dramatiq.Actor[[str], None]
    expire_holds: dramatiq.Actor[[list[str]], None]
    sweep_holds: dramatiq.Actor[[], None]
    apply_provider_event: dramatiq.Actor[[str], None]
    settle_cancelled_event: dramatiq.Actor[[str], None]
    send_email: dramatiq.Actor[[str, str], None]

    def schedule_expiry(self, order_id: UUID, deadline: datetime) -> None:
        """Expire the hold at its deadline (a delayed message); the sweep is the safety net."""
        delay_ms = max(0, int((deadline - datetime.now(UTC)).total_seconds() * 1000) + 250)
        self.expire_hold.send_with_options(args=(str(order_id),), delay=delay_ms)

    def schedule_expiries(self, orders: list[Order]) -> None:
        """One delayed message for a batch of new holds (they lapse within moments of each other);
        the claim writer's `after_commit` hook."""
        if not orders:
            return
        latest = max(order.hold_expires_at for order in orders)
        delay_ms = max(0, int((latest - datetime.now(UTC)).total_seconds() * 1000) + 250)
        self.expire_holds.send_with_options(args=([str(order.id) for order in orders],), delay=delay_ms)


def declare_actors(broker: dramatiq.Broker, runtime: Callable[[], Runtime]) -> Actors:
    """Declare the actors on `broker`; `runtime` is only called inside a worker."""

    @dramatiq.actor(broker=broker, actor_name="expire_hold", queue_name="holds", max_retries=10)
    def expire_hold(order_id: str) -> None:
        expired = runtime().boxoffice.expire_hold(UUID(order_id))
        log.info("hold %s %s", order_id, "expired" if expired else "already closed or extended")

    @dramatiq.actor(broker=broker, actor_name="expire_holds", queue_name="holds", max_retries=10)
    def expire_holds(order_ids: list[str]) -> None:
        """Expire a batch of holds placed together; each expiry is idempotent."""
        app = runtime().boxoffice
        expired = sum(1 for order_id in order_ids if app.expire_hold(UUID(order_id)))
        log.info("holds: %d of %d expired", expired, len(order_ids))

    @dramatiq.actor(broker=broker, actor_name="sweep_holds", queue_name="holds", max_retries=3)
    def sweep_holds() -> None:
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

    @dramatiq.actor(broker=broker, actor_name="apply_provider_event", queue_name="payments", max_retries=20)
    def apply_provider_event(delivery_id: str) -> None:
        """Apply a stored Stripe event once; repeats and reorderings are absorbed by the order."""
        rt = runtime()
        delivery = rt.inbox.get(UUID(delivery_id))
        if delivery.outcome is not None:
            log.info("stripe %s %s: already applied (%s)", delivery.type, delivery.external_id, delivery.outcome)
            return
        outcome = rt.boxoffice.apply_provider_event(delivery.type, delivery.payload)
        rt.inbox.mark_applied(delivery.id, outcome)
        log.info("stripe %s %s: %s", delivery.type, delivery.external_id, outcome)

    @dramatiq.actor(broker=broker, actor_name="settle_cancelled_event", queue_name="payments", max_retries=20)
    def settle_cancelled_event(event_id: str) -> None:
        """A cancelled show: release every hold and refund every paid order (idempotent)."""
        import psycopg
        from psycopg.rows import dict_row

        rt = runtime()
        with psycopg.connect(rt.read_dsn, row_factory=dict_row) as conn:
            rows = conn.execute(
                """SELECT id, status FROM read.orders
                   WHERE event_id = %s AND status IN ('held', 'paid', 'partially_refunded')""",
                (UUID(event_id),),
            ).fetchall()
        settled = 0
        for row in rows:
            if row["status"] == "held":
                settled += rt.boxoffice.cancel_unpaid(row["id"])
            else:
                rt.boxoffice.refund_order(row["id"], actor_id=SYSTEM, actor_role="admin", reason="event cancelled")
                settled += 1
        log.info("event %s cancelled: %d orders settled", event_id, settled)

    from workers.mail import make_mail_runtime

    mail_runtime = make_mail_runtime(lambda: runtime().settings)

    @dramatiq.actor(broker=broker, actor_name="send_email", queue_name="mail", max_retries=10)
    def send_email(kind: str, email: str) -> None:
        """Account mail (`verify_email`, `password_reset`): the secret is made and mailed here."""
        from workers.mail import send_account_email

        send_account_email(mail_runtime(), kind, email)

    return Actors(
        expire_hold=expire_hold,
        expire_holds=expire_holds,
        sweep_holds=sweep_holds,
        apply_provider_event=apply_provider_event,
        settle_cancelled_event=settle_cancelled_event,
        send_email=send_email,
    )


def make_runtime(settings: Settings) -> Callable[[], Runtime]:
    cache: dict[str, Runtime] = {}

    def get() -> Runtime:
        if "rt" not in cache:
            from commands.setup import open_boxoffice, open_inbox

            cache["rt"] = Runtime(
                settings=settings,
                boxoffice=open_boxoffice(settings),
                inbox=open_inbox(settings),
                read_dsn=settings.database_url,
            )
        return cache["rt"]

    return get
