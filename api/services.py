"""The objects a running API process shares, built once by the app factory."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import dramatiq
from litestar.concurrency import sync_to_thread
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.common import ResponseCache
from api.seatmaps import SeatMaps
from commands.accounts import Accounts
from commands.boxoffice import BoxOffice
from commands.inbox import Inbox
from commands.tickets_signing import TicketSigner
from domain.errors import DomainError
from projections.base import CHANNEL
from projections.runner import READ_MODELS

if TYPE_CHECKING:
    from ticketing import Settings
    from workers.tasks import Actors

log = logging.getLogger("api")
T = TypeVar("T")


class ReadModelsLagging(Exception):
    """The read models did not reach a write's position in time: the write is saved, so the
    answer is 202 (never a "retry", which would make a client without a key do it twice)."""

    def __init__(self, position: int) -> None:
        super().__init__(f"read models are behind position {position}")
        self.position = position


class Unavailable(DomainError):
    """A service the request needs (Redis: the queue, rate limits, sessions) does not answer in
    time: 503 with Retry-After. Nothing was written, or (said in the message) what was written
    is safe and will be processed."""

    code = "unavailable"
    # What Redis and the broker raise when Redis is down, frozen or restarting.
    CAUSES: tuple[type[BaseException], ...] = (RedisError, dramatiq.errors.BrokerConnectionError)


class PositionWatcher:
    """Knows how far every read model has got, from the runners' NOTIFY messages.

    After a write, the API waits until all read models have applied the write's position,
    so the very next query by the same client sees it. Waiters sit in a heap by position: a
    NOTIFY wakes exactly those whose position was reached, not every waiter in the process.
    """

    def __init__(self, conninfo: str, app_name: str) -> None:
        self.conninfo = conninfo
        self.app_name = app_name
        self.positions: dict[str, int] = {}
        self.task: asyncio.Task[None] | None = None
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # ties in the heap never compare futures

    @property
    def position(self) -> int:
        """The position every read model has reached."""
        return min(self.positions.values()) if self.positions else 0

    async def start(self) -> None:
        await self._load()
        self.task = asyncio.create_task(self._listen(), name="position-watcher")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _load(self) -> None:
        async with await AsyncConnection.connect(self.conninfo, row_factory=dict_row) as conn:
            for name in READ_MODELS:
                table = f"{name}_tracking"
                cur = await conn.execute(
                    f"SELECT notification_id FROM read.{table} WHERE application_name = %s",
                    (self.app_name,),
                )
                row = await cur.fetchone()
                self.positions[table] = row["notification_id"] if row else 0

    async def _listen(self) -> None:
        while True:
            try:
                async with await AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await self._load()  # anything missed while (re)connecting
                    self._wake()
                    async for notify in conn.notifies():
                        table, app_name, position = notify.payload.rsplit(":", 2)
                        if app_name == self.app_name and int(position) > self.positions.get(table, 0):
                            self.positions[table] = int(position)
                            self._wake()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("position watcher lost its connection; reconnecting", exc_info=True)
                await asyncio.sleep(0.5)

    def _wake(self) -> None:
        reached = self.position
        waiters = self._waiters
        while waiters and waiters[0][0] <= reached:
            waiter = heapq.heappop(waiters)[2]
            if not waiter.done():  # a waiter that timed out or was cancelled stays until passed
                waiter.set_result(None)

    async def wait(self, position: int | None, timeout: float) -> None:
        if not position or self.position >= position:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._waiters, (position, next(self._order), waiter))
        timer = loop.call_later(timeout, _time_out, waiter, position)
        try:
            await waiter
        finally:
            timer.cancel()


def _time_out(waiter: asyncio.Future[None], position: int) -> None:
    if not waiter.done():
        waiter.set_exception(ReadModelsLagging(position))


def queue_follow_up(send: Callable[[], object], what: str) -> None:
    """Queue a follow-up of a write that is already saved: a queue that is down must not turn
    the saved write into an error. Each follow-up queued this way has a second way to happen: a
    periodic sweep (hold expiry, settling a cancelled show) or the person asking again (mail)."""
    try:
        send()
    except Unavailable.CAUSES as error:
        log.warning("could not queue the %s (it will happen another way): %r", what, error)


class Services:
    """Not a dataclass on purpose: Litestar would try to validate it as request data."""

    def __init__(
        self,
        *,
        settings: Settings,
        boxoffice: BoxOffice,
        accounts: Accounts,
        pool: AsyncConnectionPool[Any],
        redis: Redis,
        watcher: PositionWatcher,
        actors: Actors,
        inbox: Inbox,
        signer: TicketSigner,
    ) -> None:
        self.settings = settings
        self.boxoffice = boxoffice
        self.accounts = accounts
        self.pool = pool
        self.redis = redis
        self.watcher = watcher
        self.actors = actors
        # Holds placed through the claim writer expire at their deadline (the sweep is the safety net).
        boxoffice.claims.after_commit = actors.schedule_expiries
        self.inbox = inbox
        self.signer = signer
        self.seat_maps = SeatMaps(size=8)
        self.listings = ResponseCache(redis, settings.listing_cache_seconds)

    async def command(self, fn: Callable[[], T], *, app: BoxOffice | Accounts | Inbox | None = None) -> T:
        """Run a (blocking) command in a worker thread and wait for the read models to apply it."""
        target = app or self.boxoffice

        def run() -> tuple[T, int | None]:
            result = fn()
            return result, target.take_position()

        result, position = await sync_to_thread(run)
        if target is self.boxoffice:
            await self.watcher.wait(position, self.settings.projection_wait_seconds)
        return result

    async def call(self, fn: Callable[[], T]) -> T:
        """Run a blocking read of the write side (no projection wait)."""
        return await sync_to_thread(fn)
