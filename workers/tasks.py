"""Dramatiq actors: thin adapters that decode a message and call one idempotent command.

`declare_actors` declares them on a broker; `Actors` is also what the API and the claim writer
hand work to (`queue_*`, `schedule_*`: the `Tasks` port of `api/services.py`). The worker
process's entry point is the composition root (`dramatiq ticketing:worker`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from projections.notifier import EVENT_CANCELLED_REASON
from workers.batching import GroupCommit

if TYPE_CHECKING:
    from commands.boxoffice import BoxOffice
    from commands.claims import PlacedOrder
    from commands.inbox import Inbox
    from workers.mail import MailRuntime

log = logging.getLogger("workers")
SYSTEM = UUID(int=0)  # the actor of refunds the service makes on its own (cancelled shows)
# Due holds the hold sweep reads at once (it reads pages until none is left).
SWEEP_PAGE = 10_000


def build_broker(redis_url: str) -> RedisBroker:
    # Timeouts: with Redis frozen, a send fails in seconds instead of hanging its caller.
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=redis_url, namespace="ticketing", socket_timeout=5, socket_connect_timeout=2
    )


@dataclass
class Runtime:
    """What actors need in a worker process (built by the composition root on first use)."""

    boxoffice: BoxOffice
    inbox: Inbox
    read_dsn: str
    mail: MailRuntime
    # Unsent mails queued longer ago than this are queued again by the mail sweep.
    mail_requeue_seconds: float = 3 * 3600
    # The payment reconciler's marks in this process: the inbox head at its previous run, and
    # the position below which every delivery is known to be applied.
    reconcile_lock: threading.Lock = field(default_factory=threading.Lock)
    reconciled_head: int | None = None
    reconciled_after: int = 0
    # Stripe deliveries, applied in batches by the worker's threads (workers/batching.py).
    deliveries: GroupCommit[UUID, str] = field(init=False)

    def __post_init__(self) -> None:
        self.deliveries = GroupCommit(self.apply_deliveries)

    def apply_deliveries(self, delivery_ids: list[UUID]) -> list[str]:
        """Apply these stored Stripe events (each once; one applied already keeps its outcome)
        under their locks, payments of held orders captured together; their outcomes."""
        with self.inbox.applying(delivery_ids) as deliveries:
            todo = [d for d in deliveries if d.outcome is None]
            outcomes = dict(zip((d.id for d in todo), self.boxoffice.apply_provider_events(
                [(d.type, d.payload) for d in todo]), strict=True))  # fmt: skip
            self.inbox.mark_applied(outcomes)
        for d in deliveries:
            said = outcomes.get(d.id, f"already applied ({d.outcome})")
            log.info("stripe %s %s: %s", d.type, d.external_id, said)
        return [outcomes.get(d, "already applied") for d in delivery_ids]


@dataclass
class Actors:
    expire_hold: dramatiq.Actor[[str], None]
    expire_holds: dramatiq.Actor[[list[str]], None]
    sweep_holds: dramatiq.Actor[[], None]
    apply_provider_event: dramatiq.Actor[[str], None]
    settle_cancelled_event: dramatiq.Actor[[str], None]
    sweep_cancelled_events: dramatiq.Actor[[], None]
    reconcile_payments: dramatiq.Actor[[], None]
    send_email: dramatiq.Actor[[str, str], None]
    deliver_mail: dramatiq.Actor[[str], None]
    sweep_mail: dramatiq.Actor[[], None]
    promote_waitlist: dramatiq.Actor[[str], None]
    sweep_waitlists: dramatiq.Actor[[], None]

    def schedule_expiry(self, order_id: UUID, deadline: datetime) -> None:
        """Expire the hold at its deadline (a delayed message); the sweep is the safety net."""
        delay_ms = max(0, int((deadline - datetime.now(UTC)).total_seconds() * 1000) + 250)
        self.expire_hold.send_with_options(args=(str(order_id),), delay=delay_ms)

    def schedule_expiries(self, orders: list[PlacedOrder]) -> None:
        """One delayed message for a batch of new holds (they lapse within moments of each other);
        the claim writer's `after_commit` hook."""
        if not orders:
            return
        latest = max(order.hold_expires_at for order in orders)
        delay_ms = max(0, int((latest - datetime.now(UTC)).total_seconds() * 1000) + 250)
        self.expire_holds.send_with_options(args=([str(order.id) for order in orders],), delay=delay_ms)

    def queue_payment(self, delivery_id: UUID) -> None:
        self.apply_provider_event.send(str(delivery_id))

    def queue_settlement(self, event_id: UUID) -> None:
        self.settle_cancelled_event.send(str(event_id))

    def queue_email(self, kind: str, email: str) -> None:
        self.send_email.send(kind, email)

    def queue_mails(self, keys: list[str]) -> None:
        """Send the mails of these outbox rows (the notifier's hook; the mail sweep is the safety net)."""
        for key in keys:
            self.deliver_mail.send(key)

    def queue_promotions(self, offer_ids: list[UUID]) -> None:
        """Stock came back to offers with a waitlist: offer it to the first in line (the
        `after_waitlist_change` hook of the applications; the waitlist sweep is the safety net)."""
        for offer_id in offer_ids:
            self.promote_waitlist.send(str(offer_id))


def sweep_due_holds(boxoffice: BoxOffice, read_dsn: str) -> int:
    """Expire every hold past its deadline (the hold sweep): the read model of holds is read a
    page at a time, each page expired in saves per offer, until a page brings nothing new (the
    holds just expired stay listed until the projector has caught up). Returns how many expired."""
    import psycopg
    from psycopg.rows import dict_row

    from projections.holds import due_holds

    seen: set[UUID] = set()
    due_count = expired = saves = 0
    while True:
        with psycopg.connect(read_dsn, row_factory=dict_row) as conn:
            page = due_holds(conn, SWEEP_PAGE)
        due = [order_id for order_id in page if order_id not in seen]
        if not due:
            break
        seen.update(due)
        run = boxoffice.expire_holds(due)
        due_count, expired, saves = due_count + len(due), expired + run.expired, saves + run.saves
        if len(page) < SWEEP_PAGE:
            break
    if due_count:
        log.info("sweep: %d holds due, %d expired in %d saves", due_count, expired, saves)
    return expired


def declare_actors(broker: dramatiq.Broker, runtime: Callable[[], Runtime]) -> Actors:
    """Declare the actors on `broker`; `runtime` is only called inside a worker."""

    @dramatiq.actor(broker=broker, actor_name="expire_hold", queue_name="holds", max_retries=10)
    def expire_hold(order_id: str) -> None:
        expired = runtime().boxoffice.expire_holds([UUID(order_id)]).expired
        log.info("hold %s %s", order_id, "expired" if expired else "already closed or extended")

    @dramatiq.actor(broker=broker, actor_name="expire_holds", queue_name="holds", max_retries=10)
    def expire_holds(order_ids: list[str]) -> None:
        """Expire a batch of holds placed together, in saves per offer; idempotent."""
        run = runtime().boxoffice.expire_holds(UUID(order_id) for order_id in order_ids)
        log.info("holds: %d of %d expired in %d saves", run.expired, len(order_ids), run.saves)

    @dramatiq.actor(broker=broker, actor_name="sweep_holds", queue_name="holds", max_retries=3)
    def sweep_holds() -> None:
        """Expire every hold past its deadline that a delayed message has not handled."""
        rt = runtime()
        sweep_due_holds(rt.boxoffice, rt.read_dsn)

    @dramatiq.actor(broker=broker, actor_name="apply_provider_event", queue_name="payments", max_retries=20)
    def apply_provider_event(delivery_id: str) -> None:
        """Apply a stored Stripe event once; repeats and reorderings are absorbed by the order."""
        runtime().deliveries.commit(UUID(delivery_id))

    def settle(rt: Runtime, event_id: UUID) -> None:
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(rt.read_dsn, row_factory=dict_row) as conn:
            rows = conn.execute(
                """SELECT id, status FROM read.orders
                   WHERE event_id = %s AND status IN ('held', 'paid', 'partially_refunded')""",
                (event_id,),
            ).fetchall()
        settled = 0
        for row in rows:
            if row["status"] == "held":
                settled += rt.boxoffice.cancel_unpaid(row["id"])
            else:
                rt.boxoffice.refund_order(row["id"], actor_id=SYSTEM, actor_role="admin", reason=EVENT_CANCELLED_REASON)
                settled += 1
        log.info("event %s cancelled: %d orders settled", event_id, settled)

    @dramatiq.actor(broker=broker, actor_name="settle_cancelled_event", queue_name="payments", max_retries=20)
    def settle_cancelled_event(event_id: str) -> None:
        """A cancelled show: release every hold and refund every paid order (idempotent)."""
        settle(runtime(), UUID(event_id))

    @dramatiq.actor(broker=broker, actor_name="sweep_cancelled_events", queue_name="payments", max_retries=3)
    def sweep_cancelled_events() -> None:
        """Settle cancelled shows that still have open orders (their own message may have been
        lost with the queue, or failed for good)."""
        import psycopg

        rt = runtime()
        with psycopg.connect(rt.read_dsn) as conn:
            rows = conn.execute(
                """SELECT DISTINCT e.id FROM read.events e JOIN read.orders o ON o.event_id = e.id
                   WHERE e.status = 'cancelled' AND o.status IN ('held', 'paid', 'partially_refunded')"""
            ).fetchall()
        for (event_id,) in rows:
            settle(rt, event_id)

    @dramatiq.actor(broker=broker, actor_name="reconcile_payments", queue_name="payments", max_retries=3)
    def reconcile_payments() -> None:
        """Queue again every provider event stored at least one run ago and still not applied
        (its own message was never queued, or was lost). Applying is idempotent, so a delivery
        queued twice changes nothing twice."""
        rt = runtime()
        with rt.reconcile_lock:
            head = rt.inbox.head()
            previous, rt.reconciled_head = rt.reconciled_head, head
            if previous is None:
                return  # the first run of this process only notes where the inbox stands
            due: list[UUID] = []
            first = None
            after = rt.reconciled_after
            while True:
                page = rt.inbox.unapplied(after=after, up_to=previous)
                if not page:
                    break
                first = page[0][0] if first is None else first
                due += [delivery_id for _, delivery_id in page]
                after = page[-1][0]
            for delivery_id in due:
                apply_provider_event.send(str(delivery_id))
            rt.reconciled_after = first - 1 if first is not None else previous
        if due:
            log.warning("reconciler: %d stored provider events were not applied; queued them again", len(due))

    @dramatiq.actor(broker=broker, actor_name="send_email", queue_name="mail", max_retries=10)
    def send_email(kind: str, email: str) -> None:
        """Account mail (`verify_email`, `password_reset`): the secret is made and mailed here."""
        from workers.mail import send_account_email

        send_account_email(runtime().mail, kind, email)

    # A mail server that is down delays mails, it loses none: retries back off from 1 s to 5
    # minutes (about two hours in all), then the mail sweep queues the row again.
    @dramatiq.actor(
        broker=broker, actor_name="deliver_mail", queue_name="mail", max_retries=30, min_backoff=1000,
        max_backoff=300_000,
    )  # fmt: skip
    def deliver_mail(key: str) -> None:
        """Send the mail of one outbox row, once (`workers/outbox.py`)."""
        from workers.outbox import NotReady, deliver, record_failure

        rt = runtime()
        try:
            outcome, added = deliver(rt.mail, rt.boxoffice, rt.read_dsn, key)
        except NotReady:
            raise
        except Exception as error:
            record_failure(rt.read_dsn, key, error)
            raise
        for child in added:
            deliver_mail.send(child)
        log.info("mail %s: %s", key, outcome)

    @dramatiq.actor(broker=broker, actor_name="sweep_mail", queue_name="mail", max_retries=3)
    def sweep_mail() -> None:
        """Queue the reminders that are due (a day before a show) and, again, every unsent mail
        whose message was lost or ran out of retries."""
        import psycopg
        from psycopg.rows import dict_row

        from projections.notifier import due_for_requeue
        from workers.outbox import queue_reminders

        rt = runtime()
        keys = queue_reminders(rt.read_dsn)
        with psycopg.connect(rt.read_dsn, row_factory=dict_row) as conn:
            keys += due_for_requeue(conn, rt.mail_requeue_seconds)
        for key in keys:
            deliver_mail.send(key)
        if keys:
            log.info("mail sweep: %d mails queued", len(keys))

    def promote(rt: Runtime, offer_id: UUID) -> int:
        orders = rt.boxoffice.promote_waitlist(offer_id)
        for order in orders:  # a waitlist order's hold lapses like any other (the hold sweep too)
            delay_ms = max(0, int((order.hold_expires_at - datetime.now(UTC)).total_seconds() * 1000) + 250)
            expire_hold.send_with_options(args=(str(order.id),), delay=delay_ms)
        if orders:
            log.info("waitlist of offer %s: %d offered", offer_id, len(orders))
        return len(orders)

    @dramatiq.actor(broker=broker, actor_name="promote_waitlist", queue_name="holds", max_retries=10)
    def promote_waitlist(offer_id: str) -> None:
        """Offer stock kept for a waitlist to the first in line; idempotent."""
        promote(runtime(), UUID(offer_id))

    @dramatiq.actor(broker=broker, actor_name="sweep_waitlists", queue_name="holds", max_retries=3)
    def sweep_waitlists() -> None:
        """Promote every waitlist with someone waiting or an offer out (a message may have been
        lost; an offered order may have been paid or lapsed without stock coming back)."""
        import psycopg
        from psycopg.rows import dict_row

        from projections.waitlist import active_offers

        rt = runtime()
        with psycopg.connect(rt.read_dsn, row_factory=dict_row) as conn:
            offers = active_offers(conn)
        for offer_id in offers:
            promote(rt, offer_id)

    return Actors(
        expire_hold=expire_hold,
        expire_holds=expire_holds,
        sweep_holds=sweep_holds,
        apply_provider_event=apply_provider_event,
        settle_cancelled_event=settle_cancelled_event,
        sweep_cancelled_events=sweep_cancelled_events,
        reconcile_payments=reconcile_payments,
        send_email=send_email,
        promote_waitlist=promote_waitlist,
        sweep_waitlists=sweep_waitlists,
        deliver_mail=deliver_mail,
        sweep_mail=sweep_mail,
    )
