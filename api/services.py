"""The objects a running API process shares, opened once at start-up; what the API needs from
the settings and from the workers, as protocols the composition root fulfils."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

import dramatiq
from litestar.concurrency import sync_to_thread
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from api.common import ResponseCache
from commands.accounts import Accounts
from commands.base import acting_as
from commands.boxoffice import BoxOffice
from commands.claims import PlacedOrder
from commands.claims_client import ClaimClient
from commands.inbox import Inbox
from commands.tickets_signing import TicketSigner
from domain.errors import DomainError
from projections.base import CHANNEL
from projections.models import READ_MODELS

log = logging.getLogger("api")
T = TypeVar("T")


class ApiSettings(Protocol):
    """What the API reads of the settings (`ticketing.Settings` has all of it)."""

    @property
    def database_url(self) -> str: ...
    @property
    def redis_url(self) -> str: ...
    @property
    def jwt_secret(self) -> str: ...
    @property
    def is_development(self) -> bool: ...
    @property
    def stripe_webhook_secret(self) -> str: ...
    @property
    def max_body_bytes(self) -> int: ...
    @property
    def projection_wait_seconds(self) -> float: ...
    @property
    def listing_cache_seconds(self) -> int: ...
    @property
    def express_orders(self) -> bool: ...
    @property
    def cors_origins(self) -> tuple[str, ...]: ...
    @property
    def metrics_token(self) -> str: ...
    @property
    def rate_limits_enabled(self) -> bool: ...
    @property
    def rate_limit_login(self) -> str: ...
    @property
    def rate_limit_register(self) -> str: ...
    @property
    def rate_limit_forgot_password(self) -> str: ...
    @property
    def rate_limit_resend_verification(self) -> str: ...
    @property
    def rate_limit_orders(self) -> str: ...


class Tasks(Protocol):
    """Work the API hands to the workers (dramatiq on Redis; `workers/tasks.py`)."""

    def schedule_expiry(self, order_id: UUID, deadline: datetime) -> None: ...
    def schedule_expiries(self, orders: list[PlacedOrder]) -> None: ...
    def queue_payment(self, delivery_id: UUID) -> None: ...
    def queue_settlement(self, event_id: UUID) -> None: ...
    def queue_email(self, kind: str, email: str) -> None: ...


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

    def __init__(self, conninfo: str, app_name: str, read_models: Iterable[str]) -> None:
        self.conninfo = conninfo
        self.app_name = app_name
        self.read_models = list(read_models)
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
            for name in self.read_models:
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
                        # Only the read models this process waits for (other views announce too).
                        if (
                            app_name == self.app_name
                            and table in self.positions
                            and int(position) > self.positions[table]
                        ):
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


class OwnWrites:
    """Read-your-writes for an account, without making its orders wait for the read models.

    An order is answered as soon as it is stored (from the write itself). Its position in the
    store is remembered per account in Redis, which every API process shares; a request of that
    account that reads (`wait`) first waits, a bounded while, until the read models have applied
    it. So the buyer's next look at their orders, tickets or checkout finds the order, on any
    process. The notes of all orders answered in one turn of the event loop go to Redis in one
    command (`_flush`), and each order is answered once its note is there: one Redis call per
    claims batch rather than per order (per order, redis-py cost ~80 µs of the API's CPU, as much
    as waiting for the projector had saved). When Redis cannot take the notes, those orders wait
    for the read models as before (`remember` says so): never an order a following read does not
    see.
    """

    # Longer than the read models ever lag when they run; a note older than this has been applied.
    SECONDS = 30
    # KEYS: accounts; ARGV: their positions, then the lifetime. The greater position is kept: two
    # orders of one account may be noted in either order.
    _KEEP_MAX = """
local seconds = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  local now = tonumber(redis.call('GET', key) or '0')
  if tonumber(ARGV[i]) > now then
    redis.call('SET', key, ARGV[i], 'EX', seconds)
  else
    redis.call('EXPIRE', key, seconds)
  end
end
return #KEYS
"""

    def __init__(self, redis: Redis, watcher: PositionWatcher, timeout: float) -> None:
        self.redis = redis
        self.watcher = watcher
        self.timeout = timeout
        self._keep_max = redis.register_script(self._KEEP_MAX)
        self._pending: dict[UUID, int] = {}
        self._noted: asyncio.Future[bool] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def _key(account_id: UUID) -> str:
        return f"own-writes:{account_id}"

    async def remember(self, account_id: UUID, position: int | None) -> bool:
        """Note the account's write at `position`; False when Redis could not take the note."""
        if not position or self.watcher.position >= position:
            return True
        if position > self._pending.get(account_id, 0):
            self._pending[account_id] = position
        if self._noted is None:
            loop = asyncio.get_running_loop()
            self._noted = loop.create_future()
            # After the callbacks already due: every order answered in this turn joins the note.
            loop.call_soon(self._start_flush)
        return await asyncio.shield(self._noted)

    def _start_flush(self) -> None:
        task = asyncio.create_task(self._flush())
        self._tasks.add(task)  # held until done (the loop keeps only weak references)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        noted, self._noted = self._noted, None
        ok = False
        try:
            await self._keep_max(keys=[self._key(a) for a in pending], args=[*pending.values(), self.SECONDS])
            ok = True
        except RedisError as error:
            log.warning("could not note %d accounts' write positions (they wait for the read models): %r",
                        len(pending), error)  # fmt: skip
        finally:  # whatever happened, no order waits for this note forever
            if noted is not None and not noted.done():
                noted.set_result(ok)

    async def wait(self, account_id: UUID) -> None:
        """Wait (bounded) until the read models have every write the account was answered for."""
        try:
            noted = await self.redis.get(self._key(account_id))
        except RedisError:
            return  # the writes waited for the read models themselves (see `remember`)
        if noted is not None:
            with contextlib.suppress(ReadModelsLagging, ValueError):
                await self.watcher.wait(int(noted), self.timeout)


def queue_follow_up(send: Callable[[], object], what: str) -> None:
    """Queue a follow-up of a write that is already saved: a queue that is down must not turn
    the saved write into an error. Each follow-up queued this way has a second way to happen: a
    periodic sweep (hold expiry, settling a cancelled show) or the person asking again (mail)."""
    try:
        send()
    except Unavailable.CAUSES as error:
        log.warning("could not queue the %s (it will happen another way): %r", what, error)


class Services:
    """What handlers share in one API process. Not a dataclass on purpose: Litestar would try
    to validate it as request data."""

    def __init__(
        self,
        *,
        settings: ApiSettings,
        boxoffice: BoxOffice,
        accounts: Accounts,
        inbox: Inbox,
        tasks: Tasks,
        signer: TicketSigner,
        pool: AsyncConnectionPool[Any],
        redis: Redis,
        watcher: PositionWatcher,
    ) -> None:
        self.settings = settings
        self.boxoffice = boxoffice
        self.accounts = accounts
        self.inbox = inbox
        self.tasks = tasks
        self.signer = signer
        self.pool = pool
        self.redis = redis
        self.watcher = watcher
        self.listings = ResponseCache(redis, settings.listing_cache_seconds)
        self.own_writes = OwnWrites(redis, watcher, settings.projection_wait_seconds)
        self.seat_maps: Any = None  # api/seatmaps.py keeps its cache here (set on first use)

    @classmethod
    async def open(
        cls, settings: ApiSettings, *, boxoffice: BoxOffice, accounts: Accounts, inbox: Inbox, tasks: Tasks,
        signer: TicketSigner,
    ) -> Services:  # fmt: skip
        """Open the read pool, Redis and the position watcher around the applications given."""
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            # Autocommit: the API only reads through this pool, and outside autocommit every
            # checkout cost two extra round trips (BEGIN before the query, COMMIT when returned).
            settings.database_url,
            min_size=2,
            max_size=20,
            kwargs={"row_factory": dict_row, "autocommit": True},
            open=False,
        )
        await pool.open(wait=True, timeout=30)
        watcher = PositionWatcher(settings.database_url, boxoffice.name, READ_MODELS)
        await watcher.start()
        redis = Redis.from_pool(
            BlockingConnectionPool.from_url(
                settings.redis_url,
                # Every limited request takes a connection; in a burst (hundreds of orders at
                # once) callers wait (a few seconds at most) for a free one instead of failing.
                max_connections=100,
                # A frozen or unreachable Redis must cost a request a second, not forever.
                timeout=3,
                socket_timeout=1,
                socket_connect_timeout=1,
            )
        )
        return cls(
            settings=settings, boxoffice=boxoffice, accounts=accounts, inbox=inbox, tasks=tasks, signer=signer,
            pool=pool, redis=redis, watcher=watcher,
        )  # fmt: skip

    async def close(self) -> None:
        if isinstance(self.boxoffice.claims, ClaimClient):
            await self.boxoffice.claims.close()
        await self.watcher.stop()
        await self.pool.close()
        await self.redis.aclose()
        for app in (self.boxoffice, self.accounts, self.inbox):
            app.close()

    async def command(
        self, fn: Callable[[], T], *, actor: UUID | None, app: BoxOffice | Accounts | Inbox | None = None
    ) -> T:
        """Run a (blocking) command in a worker thread and wait for the read models to apply it.

        `actor` is the account acting (None: nobody signed in, e.g. a registration or Stripe):
        every event the command saves records it (`commands.base.acting_as`), for the audit trail."""
        target = app or self.boxoffice

        def run() -> tuple[T, int | None]:
            with acting_as(actor):
                result = fn()
            return result, target.take_position()

        result, position = await sync_to_thread(run)
        if target is self.boxoffice:
            await self.watcher.wait(position, self.settings.projection_wait_seconds)
        return result

    async def call(self, fn: Callable[[], T]) -> T:
        """Run a blocking read of the write side (no projection wait)."""
        return await sync_to_thread(fn)
