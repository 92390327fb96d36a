"""Small conventions shared by the controllers: money, pagination, timestamps."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from litestar.params import Parameter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from domain.errors import Invalid

T = TypeVar("T")

ZERO_DECIMAL = {"JPY", "KRW", "VND", "CLP", "ISK", "HUF"}

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
PageParam = Annotated[int, Parameter(ge=1, le=100_000, default=1)]
PageSizeParam = Annotated[int, Parameter(ge=1, le=100, default=20)]


def exponent(currency: str) -> int:
    return 0 if currency.upper() in ZERO_DECIMAL else 2


def money(minor: int | None, currency: str | None) -> str | None:
    """Minor units to the contract's decimal string ("75.50")."""
    if minor is None or currency is None:
        return None
    if exponent(currency) == 0:
        return str(minor)
    units, cents = divmod(abs(minor), 100)
    return f"{'-' if minor < 0 else ''}{units}.{cents:02d}"


def to_minor(amount: str | int | float, currency: str, field: str = "price") -> int:
    """A decimal string or number to integer minor units, refusing sub-unit precision."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise Invalid("not a decimal amount", field=field) from None
    if not value.is_finite():
        raise Invalid("not a decimal amount", field=field)
    minor = value.scaleb(exponent(currency))
    if minor != minor.to_integral_value():
        raise Invalid(f"too many decimal places for {currency}", field=field)
    if minor > 10**12:
        raise Invalid("amount too large", field=field)
    return int(minor)


def patch_changes(data: msgspec.Struct, convert: dict[str, Callable[[Any], Any]] | None = None) -> dict[str, Any]:
    """Fields the client actually sent (PATCH semantics; null means 'leave as is'), converted."""
    convert = convert or {}
    out: dict[str, Any] = {}
    for name in data.__struct_fields__:
        value = getattr(data, name)
        if value is not None:
            out[name] = convert[name](value) if name in convert else value
    return out


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise Invalid("timestamps need a timezone (e.g. 2026-05-01T20:00:00Z)")
    return value.astimezone(UTC)


class Pagination(msgspec.Struct):
    total_items: int
    total_pages: int
    current_page: int
    page_size: int


class Page(msgspec.Struct, Generic[T]):
    data: list[T]
    pagination: Pagination


def page_of(items: list[T], total: int, page: int, page_size: int) -> Page[T]:
    return Page(
        data=items,
        pagination=Pagination(
            total_items=total,
            total_pages=(total + page_size - 1) // page_size,
            current_page=page,
            page_size=page_size,
        ),
    )


class ResponseCache:
    """Encoded responses under keys that name the state they were read at (so an entry never
    goes stale, it only expires): a small LRU in this process in front of Redis, which the other
    API processes share. `seconds` bounds how long an entry lives; 0 turns the cache off.

    A cache is never a reason to fail a read: when Redis errs, this process stops asking it for
    `pause` seconds and serves from its own LRU and the database meanwhile."""

    def __init__(self, redis: Redis, seconds: int, size: int = 512, pause: float = 5.0) -> None:
        self.redis = redis
        self.seconds = seconds
        self.size = size
        self.pause = pause
        self.local: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._redis_back_at = 0.0

    async def get(self, key: str) -> bytes | None:
        if not self.seconds:
            return None
        entry = self.local.get(key)
        if entry is not None and entry[0] > time.monotonic():
            self.local.move_to_end(key)
            return entry[1]
        if time.monotonic() < self._redis_back_at:
            return None
        try:
            body = await self.redis.get(key)
        except RedisError:
            self._redis_back_at = time.monotonic() + self.pause
            return None
        if isinstance(body, bytes):
            self._keep(key, body)
            return body
        return None

    async def put(self, key: str, body: bytes) -> None:
        if not self.seconds:
            return
        self._keep(key, body)
        if time.monotonic() < self._redis_back_at:
            return
        try:
            await self.redis.set(key, body, ex=self.seconds)
        except RedisError:
            self._redis_back_at = time.monotonic() + self.pause

    def _keep(self, key: str, body: bytes) -> None:
        self.local[key] = (time.monotonic() + self.seconds, body)
        self.local.move_to_end(key)
        while len(self.local) > self.size:
            self.local.popitem(last=False)
