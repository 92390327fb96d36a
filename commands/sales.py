"""Sales commands: place an order (through the claims port), cancel, expire.

Expiry works in batches (`expire_holds`). Saving one expired hold at a time made every lapsed
hold of a hot offer its own contended write of that offer: worker threads and claim writers kept
invalidating each other's loads (1,197 `Busy` retries measured) and 25,000 lapsed holds took
about 8 minutes to come back on sale. Lapsed holds are grouped by the offers they hold, and each
batch of up to `expiry_batch` orders of a group is decided and saved at once: its orders expired,
their offers' counters and their seats released, one save (one transaction).

Who else writes those aggregates, and how a batch stays correct:
- the claim writers (every order placed changes its offer): a batch takes their advisory lock
  (`CLAIMS_LOCK`) before it loads the offers and seats and keeps it until its save committed, so
  a batch and a claim batch take turns instead of invalidating each other's loaded versions;
- other expiry batches (the delayed messages of several worker threads, the sweep): they first
  take turns on their own lock (`EXPIRY_LOCK`), so at most one of them waits for the claim
  writers' lock and a sale's orders wait for at most one expiry batch;
- payments and cancellations (one order and its offer, saved with the versions they loaded,
  without these locks): if one of them wrote an order, offer or seat of the batch after the batch
  loaded it, the insert fails as a whole and that batch alone is decided again on fresh state,
  where a paid order is no longer held and is left alone.
The locks are held in a transaction of their own around the save, which commits in its own
transaction so the application's save hooks run as for any other save: they only make writers
take turns, the aggregates' versions keep the store correct.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from commands.base import BaseApplication, Busy, utcnow
from commands.claim_writer import COMMIT_DEADLINE, ClaimWriter, take_turn_patiently
from commands.claims import ClaimRequest, Claims, Placed
from domain.errors import Conflict
from domain.offer import Offer
from domain.order import Order, WrongOrderState
from domain.placement import ItemRequest, SalesPolicy
from domain.seat import Seat

T = TypeVar("T")
EXPIRY_LOCK = 0x65787079  # one advisory lock key for all expiry batches ("expy")
# Orders loaded at once to find the lapsed ones and group them by offer.
EXPIRY_PAGE = 2000


@dataclass
class ExpiryRun:
    """What `expire_holds` did: orders expired, saves made, batches decided again after a conflict."""

    expired: int = 0
    saves: int = 0
    conflicts: int = 0


class SalesCommands(BaseApplication):
    policy = SalesPolicy()
    # Orders expired per save (one transaction): bounds the save's size and how long the claim
    # writers wait for it.
    expiry_batch = 250

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env=env)
        # This process's own claim writer, and the port orders are placed through: the writer,
        # unless the composition root points it at the claims service (a ClaimClient).
        self.writer = ClaimWriter(self)
        self.claims: Claims = self.writer
        # This process's turns (`turn`) wait for each other here before they take a connection.
        self._turns = threading.RLock()

    def place_order(
        self,
        buyer_id: UUID,
        items: list[ItemRequest],
        *,
        idempotency_key: str | None = None,
        at: datetime | None = None,
    ) -> tuple[Order, bool]:
        """Hold the requested inventory for a new order, from a thread (this process's writer);
        returns (order, created).

        With an idempotency key the order id is derived from it, so a retried request finds
        the order it already placed (created=False) instead of placing a second one. Raises the
        domain error that rejected the order (sold out, seat taken, limits ...).
        """
        future: Future[Placed] = Future()
        self.writer.submit(ClaimRequest.new(buyer_id, items, idempotency_key, at=at, future=future))
        placed = future.result()
        if placed.position is not None:
            self._local.position = placed.position
        return self.get_order(placed.order.id), placed.created

    def get_order(self, order_id: UUID) -> Order:
        return self.load(order_id, "order", Order)

    def cancel_order(self, order_id: UUID, *, at: datetime | None = None) -> Order:
        """The buyer gives up a held order; its inventory goes back on sale at once."""

        def attempt() -> Order:
            order = self.get_order(order_id)
            order.cancel(at or utcnow())
            self.save(order, *self._release(order))
            return order

        return self.retrying(attempt)

    def expire_hold(self, order_id: UUID, *, at: datetime | None = None) -> bool:
        """Expire a lapsed hold and release its inventory. Idempotent: repeats do nothing.

        Returns whether this call expired the order."""
        return self.expire_holds([order_id], at=at).expired == 1

    def expire_holds(self, order_ids: Iterable[UUID], *, at: datetime | None = None) -> ExpiryRun:
        """Expire those of these orders whose hold has lapsed, in batches per offer (see the
        module's docstring). Idempotent: orders paid, cancelled, already expired, extended or
        unknown are left alone. Raises `Busy` if a batch kept conflicting."""
        run = ExpiryRun()
        for page in _chunks(list(dict.fromkeys(order_ids)), EXPIRY_PAGE):
            now = at or utcnow()
            groups: dict[tuple[UUID, ...], list[Order]] = {}
            for order in self.load_many(page).values():
                if _lapsed(order, now):
                    groups.setdefault(tuple(sorted({i["offer_id"] for i in order.items})), []).append(order)
            for members in groups.values():
                for batch in _chunks(members, self.expiry_batch):
                    self._expire_batch(batch, at, run)
        return run

    def _expire_batch(self, orders: list[Order], at: datetime | None, run: ExpiryRun) -> None:
        """Expire one batch (orders of the same offers) in one save, on state loaded under the
        locks; decided again if another writer got there first (the insert conflicts, or a
        payment sold a hold after it was loaded and the offer no longer holds enough to release)."""
        order_ids = [o.id for o in orders]
        for n in range(self.conflict_attempts * 2):
            try:
                expired = self._expire_attempt(order_ids, at)
            except (IntegrityError, Conflict):
                run.conflicts += 1
                time.sleep(random.uniform(0, 0.002 * (n + 1)))
                continue
            if expired:
                run.expired += expired
                run.saves += 1
            return
        raise Busy("hold expiry kept conflicting with other writers; it will be tried again")

    def _expire_attempt(self, order_ids: list[UUID], at: datetime | None) -> int:
        """Decide and save the batch, taking turns with the other writers of its aggregates (the
        module's docstring); returns how many orders it expired."""
        with self.turn(EXPIRY_LOCK) as take_turn_with_claims:
            now = at or utcnow()
            # Cached since they were grouped: this reads only what changed since.
            orders = [o for o in self.load_many(order_ids).values() if _lapsed(o, now)]
            if not orders:
                return 0
            for order in orders:
                order.expire(now)
            take_turn_with_claims()
            offers = self.load_many(i["offer_id"] for o in orders for i in o.items)
            seat_ids = [s for o in orders for s in o.seat_ids()]
            seats = self.load_many(seat_ids) if seat_ids else {}
            changed: dict[UUID, Any] = {}
            for order in orders:
                changed[order.id] = order
                changed.update((a.id, a) for a in self._release(order, offers, seats))
            self.save(*changed.values())
        return len(orders)

    @contextmanager
    def turn(self, *locks: int) -> Iterator[Callable[[], None]]:
        """A transaction of its own holding these advisory locks (taken in order) until the
        block ends; the block calls what it is handed to take the claim writers' lock too,
        once it is about to load the offers and seats it will save (see the module's docstring:
        writers taking turns instead of invalidating each other's loads)."""
        datastore: Any = self.recorder.datastore  # type: ignore[attr-defined]
        # Every turn ends up waiting for the claim writers' lock, so this process's turns would only
        # wait for each other in Postgres, each holding one of the pool's connections: a worker with
        # more threads than its pool has connections starved the turn under way of the connections
        # for its loads and saves (PoolTimeout after 30 s, 25,000 lapsed holds back on sale in 42 s
        # instead of 21). They wait here first, holding none.
        with self._turns, datastore.get_connection() as conn, conn.transaction():
            for lock in locks:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            # Waiting for the writers, a stuck holder of their lock is cut off (as the writers do).
            yield lambda: take_turn_patiently(conn, self.recorder, time.monotonic() + COMMIT_DEADLINE)  # type: ignore[arg-type]

    def _release(
        self, order: Order, known: dict[UUID, Any] | None = None, seats: dict[UUID, Any] | None = None
    ) -> list[Any]:
        """Offers and seats with this order's holds released (to save with the order).

        While an offer's waitlist has demand, what comes back is kept for it instead of going
        on sale (`Offer.release` keeps GA stock; seats are kept here): same save, no race.
        `known` holds aggregates the caller already loaded (and saves), so each is changed once;
        `seats` the seats it loaded (a batch of expiries loads them all with one query)."""
        if order.status not in ("cancelled", "expired"):
            raise WrongOrderState("inventory is released only when an order closes")
        offers = {} if known is None else {k: v for k, v in known.items() if isinstance(v, Offer)}
        changed: dict[UUID, Any] = {}
        for offer, quantity in self._quota_offers(order, offers):
            offer.release(order.id, quantity)
            changed[offer.id] = offer
        for item in order.items:
            seat_id = item["seat_id"]
            if seat_id is None:
                continue
            loaded = None if seats is None else seats.get(seat_id)
            seat = loaded if isinstance(loaded, Seat) else self.load(seat_id, "seat", Seat)
            if seat.order_id == order.id and seat.status == "held":
                seat.release(order.id)
                changed[seat.id] = seat
                self._keep_seat_for_waitlist(seat, item["offer_id"], offers, changed)
        return list(changed.values())

    def _keep_seat_for_waitlist(self, seat: Seat, offer_id: UUID, offers: dict[UUID, Offer],
                                changed: dict[UUID, Any]) -> None:  # fmt: skip
        """A seat that just came back goes to its offer's waitlist while anyone waits for it."""
        offer = offers.get(offer_id)
        if offer is None:
            offer = offers[offer_id] = self.load(offer_id, "offer", Offer)
        if offer.wants_seat() and not (offer.has_quota and not offer.available):
            seat.keep_for_waitlist(offer.id)
            offer.keep_seat(seat.id)
            changed[offer.id] = offer

    def _quota_offers(self, order: Order, loaded: dict[UUID, Offer] | None = None) -> list[tuple[Offer, int]]:
        """The order's offers that count inventory, with how many units the order has of each
        (offers found in `loaded` are used as they are; the ones loaded here are added to it)."""
        loaded = {} if loaded is None else loaded
        quantities: dict[UUID, int] = {}
        for item in order.items:
            quantities[item["offer_id"]] = quantities.get(item["offer_id"], 0) + item["quantity"]
        for offer_id in quantities:
            if offer_id not in loaded:
                loaded[offer_id] = self.load(offer_id, "offer", Offer)
        return [(loaded[offer_id], n) for offer_id, n in quantities.items() if loaded[offer_id].has_quota]


def _lapsed(order: Any, at: datetime) -> bool:
    """A held order whose hold has lapsed at `at` (what expiry may close)."""
    return isinstance(order, Order) and order.status == "held" and order.is_hold_lapsed(at)


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
