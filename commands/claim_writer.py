"""The in-process adapter of the claims port: group commit of many buyers' orders.

The event store serialises writers (a table lock per insert), and a hot offer is one aggregate,
so placing orders one transaction at a time caps a show at a few hundred orders a second. Here
every order of the process goes through one queue; a single writer thread takes whatever has
queued up, loads the aggregates involved once (one query), decides every order in turn on that
in-memory state (`domain.placement.place_order`: an order is checked completely before it
changes anything, so a refused order leaves no trace), and saves all accepted orders and the
offers and seats they claimed in one transaction. If another process wrote one of those
aggregates meanwhile, the insert fails as a whole and the batch is decided again on fresh state,
so nothing is ever oversold and no accepted order is lost.
"""

from __future__ import annotations

import logging
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError
from psycopg_pool import PoolTimeout

from commands.base import Busy, expect, utcnow
from commands.claims import ClaimRequest, Outcome, Placed, PlacedOrder, deliver
from commands.recorder import CLAIMS_LOCK, ColumnarRecorder
from domain.errors import Conflict, DomainError
from domain.event import Event
from domain.offer import Offer
from domain.order import Order
from domain.placement import place_order, same_items

if TYPE_CHECKING:
    from commands.sales import SalesCommands

log = logging.getLogger("claims")
T = TypeVar("T")
MAX_BATCH = 400
# How long a batch keeps trying while the event store is unreachable (a Postgres restart takes
# a few seconds) before its orders are told to retry.
COMMIT_DEADLINE = 15.0
# A claim transaction is idle between its statements for milliseconds. One idle this long belongs
# to a writer that has stopped (a frozen claims service): Postgres ends its session, so the lock
# it holds passes to the other writers (the API processes' fallbacks) instead of waiting for the
# pool's 10 s. If the writer was merely slow, its batch fails as a lost connection and is retried.
IDLE_IN_CLAIM = "1s"
# Postgres arms that timeout only once it has told the client it is ready for the next query: a
# writer stopped inside a pipeline (its insert's LOCK TABLE, NOTIFY and INSERT go out before their
# Sync) leaves a session "active", holding the lock with no timeout at all (seen in `.ci/run`: a
# frozen claims service kept the lock for its whole 5 s freeze). So a writer waits for its turn at
# most LOCK_PATIENCE at a time; then it ends the sessions of stuck writers (see
# `commands.recorder.STUCK_AFTER`: holders of this lock or of the events table's) and waits again.
LOCK_PATIENCE = "250ms"
# The claim writers' lock, waited for at most LOCK_PATIENCE; the session's own lock_timeout is set
# back in the same statement (OFFSET 0: read before the change, not inlined after it).
_PATIENTLY = (
    "set_config('lock_timeout', %s, true), pg_advisory_xact_lock(%s), set_config('lock_timeout', s.was, true)"
    " FROM (SELECT current_setting('lock_timeout') AS was OFFSET 0) AS s"
)
PATIENT_LOCK = "SELECT " + _PATIENTLY
# A claim writer's: with its idle timeout (IDLE_IN_CLAIM) in the same round trip.
TAKE_TURN = "SELECT set_config('idle_in_transaction_session_timeout', %s, true), " + _PATIENTLY


def take_turn_patiently(conn: Any, recorder: ColumnarRecorder, deadline: float) -> None:
    """Take the claim writers' lock in `conn`'s open transaction (for the payments and expiries
    that take turns with the writers), LOCK_PATIENCE at a time, ending stuck writers' sessions
    between waits: a savepoint undoes each wait that timed out. Past `deadline`, `Busy`."""
    while True:
        try:
            with conn.transaction():
                conn.execute(PATIENT_LOCK, (LOCK_PATIENCE, CLAIMS_LOCK))
            return
        except psycopg.errors.LockNotAvailable:
            if time.monotonic() > deadline:
                raise Busy("the claim writers' lock stayed taken; please retry") from None
            recorder.cut_off_stuck_writers()


class LockWait(Exception):
    """The claim writers' lock was not free within LOCK_PATIENCE, or the events table's within
    its patience (nothing was written)."""


# How long one try of a batch may last before its writer counts as stuck. A try waits for a lock
# at most its patience (LOCK_PATIENCE, `commands.recorder.TABLE_PATIENCE`) and for a lost store at
# most a second before the next try, so minutes in one try is a thread that no longer runs (a
# deadlock, a call that never returns): the claims service then fails its liveness probe and is
# restarted (`ClaimWriter.stalled`).
STALLED_AFTER = 60.0
# Conflicts a batch of several requests retries (deciding again on fresh state) before it is split
# in halves: another process's write is cured by one retry, a poisoned request never is.
SPLIT_AFTER = 4
# The store's "connection lost / server gone" failures (the library's wrappers of psycopg's, and
# the pool's timeout): the batch's outcome is unknown.
TRANSIENT: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, PoolTimeout)


class Ledger:
    """The aggregates one batch works on, each loaded once."""

    def __init__(self, app: SalesCommands) -> None:
        self.app = app
        self.loaded: dict[UUID, Any] = {}

    def prefetch(self, ids: Iterable[UUID]) -> None:
        missing = [i for i in dict.fromkeys(ids) if i not in self.loaded]
        if missing:
            self.loaded.update(self.app.load_many(missing))

    def get(self, aggregate_id: UUID, what: str, cls: type[T]) -> T:
        return expect(self.loaded.get(aggregate_id), what, cls)


class ClaimWriter:
    """The process's single writer of orders (its thread starts on first use): the `Claims`
    port in this process."""

    def __init__(self, app: SalesCommands) -> None:
        self.app = app
        self.queue: queue.SimpleQueue[ClaimRequest] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.batches = 0
        self.conflicts = 0
        self.splits = 0  # batches split to isolate a request that failed them (`_isolate`)
        self.cut_off = 0  # sessions of stuck writers ended (`_cut_off_stuck_writers`)
        # Called with the orders of each committed batch, after their buyers were answered.
        self.after_commit: Callable[[list[PlacedOrder]], None] | None = None
        self._hooks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claim-hooks")
        self._last_ledger = Ledger(app)
        self.stalled_after = STALLED_AFTER
        self._trying_since: float | None = None  # when the try under way began; None while idle

    def stalled(self) -> bool:
        """True when one try of a batch has lasted more than `stalled_after` seconds."""
        since = self._trying_since
        return since is not None and time.monotonic() - since > self.stalled_after

    def submit(self, request: ClaimRequest) -> None:
        """Queue a request; its outcome arrives in `request.waiter` or `request.future`."""
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="claim-writer", daemon=True)
                    self._thread.start()
        self.queue.put(request)

    def _run(self) -> None:
        while True:
            self._trying_since = None
            batch = [self.queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _commit(self, batch: list[ClaimRequest]) -> None:
        """Decide and save the batch, retrying on conflicts and on lost connections, and answer.

        A lost connection or a failed COMMIT leaves it unknown whether the batch was stored. The
        next attempt therefore looks its orders up first (`_decide` with `attempted`): an order
        already stored is answered as placed, not decided again (which would find its own seats
        held and answer `seat_taken`). The same holds for a request `resent` by the claims
        client after the service went away with it. Only if the store stays unreachable past
        `COMMIT_DEADLINE` do the orders get `Busy` (503, retry with the Idempotency-Key); never
        a 500.

        One bad request fails alone, never its batch: an insert refused because a request's new
        order id is already stored refuses that request (409) and saves the rest at once; any
        other failure that persists (a conflict that deciding again does not cure, an error that
        is not a refusal) splits the batch in halves, each committed on its own, until the
        culprit is alone (`_isolate`).
        """
        deadline = time.monotonic() + COMMIT_DEADLINE
        # Orders an earlier attempt of this batch, or another writer before, may have stored.
        attempted: set[UUID] = {r.order_id for r in batch if r.resent}
        clashed: set[UUID] = set()  # new orders whose id the store refused once
        conflicts = 0
        pause = 0.05
        # A batch of many tries a few times before it is split; a lone request the full count.
        attempts = self.app.conflict_attempts * 2 if len(batch) == 1 else SPLIT_AFTER
        while True:
            self._trying_since = time.monotonic()
            try:
                outcomes, changed, names, position = self._attempt(batch, attempted)
            except LockWait:
                if time.monotonic() > deadline:
                    log.error("the claim writers' lock or the events table's stayed taken for %.0f s", COMMIT_DEADLINE)
                    break
                self._cut_off_stuck_writers()
                continue
            except IntegrityError as error:
                taken = _orders_already_stored(error, batch)
                if taken:
                    # Stored meanwhile by another writer: deciding again finds it (the same order
                    # answered as placed, another one refused). Clashing again, it is something
                    # the look-up cannot see: refused alone, the rest decided again at once.
                    again = [request for request in taken if request.order_id in clashed]
                    clashed.update(request.order_id for request in taken)
                    if again:
                        refusal = Conflict("this order id is already taken; use a new Idempotency-Key",
                                           code="idempotency_conflict")  # fmt: skip
                        deliver([(request, refusal) for request in again])
                        batch = [request for request in batch if request not in again]
                        if not batch:
                            return
                    continue
                # Another process wrote an offer or seat we used: decide the batch again.
                self.conflicts += 1
                conflicts += 1
                if conflicts >= attempts:
                    if len(batch) > 1:
                        self._isolate(batch, error)
                        return
                    break
                time.sleep(random.uniform(0, 0.001 * conflicts))
                continue
            except TRANSIENT as error:
                attempted.update(r.order_id for r in batch)
                if time.monotonic() + pause > deadline:
                    log.error("the event store stayed unreachable for %.0f s: %r", COMMIT_DEADLINE, error)
                    break
                log.warning("claim batch of %d: the event store failed (%r); trying again", len(batch), error)
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
                self._drop_dead_connections()
                continue
            except Exception as error:
                if len(batch) > 1:
                    self._isolate(batch, error)
                    return
                log.exception("claim request failed")
                deliver([(batch[0], error)])
                return
            except BaseException as error:
                log.exception("claim batch failed")
                deliver([(request, error) for request in batch])
                return
            self.app.refresh_cache(changed)
            self.batches += 1
            created: list[PlacedOrder] = []
            results: list[tuple[ClaimRequest, Outcome]] = []
            for request, outcome in outcomes:
                if isinstance(outcome, BaseException):
                    results.append((request, outcome))
                else:
                    order, is_new = outcome
                    results.append((request, Placed(order, is_new, position, names)))
                    if is_new:
                        created.append(order)
            deliver(results)
            if created and self.after_commit is not None:
                # Off the writer thread: the next batch should not wait for a message broker.
                self._hooks.submit(self._run_hook, self.after_commit, created)
            return
        busy = Busy("too many concurrent changes, or the store is unreachable; please retry")
        deliver([(request, busy) for request in batch])

    def _isolate(self, batch: list[ClaimRequest], error: BaseException) -> None:
        """Commit the halves of a batch that keeps failing, each on its own: the good requests are
        placed, and the request that fails (found in at most log2(MAX_BATCH) splits) fails alone."""
        self.splits += 1
        log.warning("claim batch of %d failed (%r); committing its halves apart", len(batch), error)
        half = len(batch) // 2
        self._commit(batch[:half])
        self._commit(batch[half:])

    def _attempt(
        self, batch: list[ClaimRequest], attempted: set[UUID]
    ) -> tuple[list[tuple[ClaimRequest, Any]], list[Any], dict[UUID, tuple[str, str]], int | None]:
        """One try: in one transaction, take turns with the claim writers of other processes (a
        Postgres advisory lock), decide every order, and insert the batch's events; committed
        when this returns. Without the lock, two API processes selling the same hot offer would
        keep invalidating each other's batches (each save makes the other's loaded versions
        stale); with it, each writer's queue simply grows into a bigger batch while the other
        one commits. Lock and batch share the transaction, so they succeed or fail as one; a writer
        that stops holding the lock loses it after `IDLE_IN_CLAIM`."""
        datastore: Any = self.app.recorder.datastore  # type: ignore[attr-defined]
        position = None
        with datastore.get_connection() as conn, conn.transaction():
            # SET LOCAL in the same round trip: a writer that stops between statements (a hung
            # claims service) loses its session, and with it the lock, after IDLE_IN_CLAIM.
            # The lock is waited for at most LOCK_PATIENCE (then `_commit` looks for a stuck
            # holder); the session's own lock_timeout applies again once it is taken.
            try:
                conn.execute(TAKE_TURN, (IDLE_IN_CLAIM, LOCK_PATIENCE, CLAIMS_LOCK), prepare=True)
            except psycopg.errors.LockNotAvailable as error:
                raise LockWait from error
            # One serial per request (one round trip): the human order numbers of the new orders.
            serials = self.app.order_serials(len(batch), conn)
            outcomes, changed = self._decide(batch, attempted, serials)
            names = _names(batch, self._last_ledger)
            if changed:
                try:
                    recordings = self.app.save(*changed, connection=conn)
                except psycopg.errors.LockNotAvailable as error:  # the events table's, past its patience
                    raise LockWait from error
                position = max((r.notification.id for r in recordings), default=None)
        return outcomes, changed, names, position

    def _cut_off_stuck_writers(self) -> None:
        self.cut_off += self.app.recorder.cut_off_stuck_writers()  # type: ignore[attr-defined]

    def _drop_dead_connections(self) -> None:
        """After a Postgres restart every idle pooled connection is dead; without this check the
        pool would hand them out one per attempt (a restart cost ~1 s of retries per connection)."""
        pool: Any = self.app.recorder.datastore.pool  # type: ignore[attr-defined]
        try:
            pool.check()
        except Exception as error:  # noqa: BLE001 - the next attempt reports what matters
            log.debug("checking the pool failed: %r", error)

    @staticmethod
    def _run_hook(hook: Callable[[list[PlacedOrder]], None], orders: list[PlacedOrder]) -> None:
        try:
            hook(orders)
        except Exception:
            log.exception("after-commit hook failed for %d orders", len(orders))

    def _decide(
        self, batch: list[ClaimRequest], attempted: Collection[UUID] = (), serials: list[int] | None = None
    ) -> tuple[list[tuple[ClaimRequest, Any]], list[Any]]:
        ledger = self._last_ledger = Ledger(self.app)
        ledger.prefetch(
            [i.offer_id for r in batch for i in r.items]
            + [i.seat_id for r in batch for i in r.items if i.seat_id is not None]
            # Every order id: a repeated Idempotency-Key, an order an earlier attempt of this batch
            # stored, or an id that is already something else (refused alone, not with its batch).
            + [r.order_id for r in batch]
        )
        ledger.prefetch(o.event_id for o in ledger.loaded.values() if isinstance(o, Offer))
        outcomes: list[tuple[ClaimRequest, Any]] = []
        new_orders: dict[UUID, Order] = {}
        changed: dict[UUID, Any] = {}
        for index, request in enumerate(batch):
            try:
                existing = new_orders.get(request.order_id) or ledger.loaded.get(request.order_id)
                if existing is not None:
                    outcomes.append((request, _already_there(request, existing, attempted)))
                    continue
                order, touched = place_order(
                    order_id=request.order_id,
                    buyer_id=request.buyer_id,
                    items=request.items,
                    find=ledger.get,
                    policy=self.app.policy,
                    now=request.at or utcnow(),
                    serial=serials[index] if serials else None,
                )
            except DomainError as error:
                # Without its traceback: that would tie this frame (the batch, the ledger) into a
                # reference cycle per refusal, freed only by the cyclic GC (846k objects in one
                # hot-seats run, most of them surviving into its oldest generation).
                outcomes.append((request, error.with_traceback(None)))
                continue
            except Exception as error:  # a defect met by this request only: it fails alone
                log.exception("deciding claim request for order %s failed", request.order_id)
                outcomes.append((request, error.with_traceback(None)))
                continue
            new_orders[order.id] = order
            changed.update((a.id, a) for a in touched)
            outcomes.append((request, (PlacedOrder.of(order), True)))
        return outcomes, [*new_orders.values(), *changed.values()]


def _already_there(request: ClaimRequest, existing: Any, attempted: Collection[UUID]) -> tuple[PlacedOrder, bool]:
    """The answer to a request whose order id is already taken: the order itself when it is this
    request's (a repeated Idempotency-Key: not new; stored by an earlier attempt of this very
    batch: new), a conflict otherwise."""
    if not isinstance(existing, Order) or existing.buyer_id != request.buyer_id:
        raise Conflict("this Idempotency-Key was used for another order", code="idempotency_conflict")
    if not same_items(existing, request.items):
        raise Conflict(
            "this Idempotency-Key was used for an order with other items; use a new key for a new order",
            code="idempotency_conflict",
        )
    return PlacedOrder.of(existing), request.order_id in attempted


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _orders_already_stored(error: IntegrityError, batch: list[ClaimRequest]) -> list[ClaimRequest]:
    """The requests whose new order's id the store already holds, as named by the unique
    violation (`Key (originator_id, originator_version)=(<id>, 1) already exists`): written, out
    of this writer's sight, between its look-up and its insert. Empty if the clash is on another
    aggregate (an offer or seat: a concurrent change, cured by deciding again)."""
    cause = error.__cause__
    diag = getattr(cause, "diag", None)
    text = (getattr(diag, "message_detail", None) or "") + " " + str(error)
    clashes = {UUID(found) for found in _UUID.findall(text)}
    return [request for request in batch if request.order_id in clashes] if clashes else []


def _names(batch: list[ClaimRequest], ledger: Ledger) -> dict[UUID, tuple[str, str]]:
    names: dict[UUID, tuple[str, str]] = {}
    for offer_id in {i.offer_id for r in batch for i in r.items}:
        offer = ledger.loaded.get(offer_id)
        show = ledger.loaded.get(offer.event_id) if isinstance(offer, Offer) else None
        if isinstance(offer, Offer) and isinstance(show, Event) and offer.tier_id in show.tiers:
            names[offer_id] = (offer.name, show.tiers[offer.tier_id].name)
    return names
