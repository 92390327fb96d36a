"""Rate limits: per client for chosen routes (by operation id), counted in Redis so every API
process shares them; 429 with `Retry-After` and `X-RateLimit-*` headers.

The client is the signed-in account on authenticated routes (buyers behind one carrier NAT or
office proxy do not share a budget), else the address the request came from: uvicorn's
proxy-headers handling has already replaced the peer by the `X-Forwarded-For` client when the
peer is one of TRUSTED_PROXIES (workers/supervisor.py), and never otherwise. Logins count only
failures (`FailedLogins`), per address and per account e-mail."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.exceptions import TooManyRequestsException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.asyncio import Redis

if TYPE_CHECKING:
    from api.services import ApiSettings


@dataclass(frozen=True)
class Limit:
    """At most `count` requests per `window` seconds."""

    count: int
    window: int

    UNITS: ClassVar[dict[str, int]] = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

    @classmethod
    def parse(cls, text: str) -> Limit:
        """`"10/minute"` → Limit(10, 60); units: second, minute, hour, day."""
        count, _, unit = text.strip().partition("/")
        unit = unit.strip().lower().removesuffix("s")
        if not count.strip().isdigit() or int(count) < 1 or unit not in cls.UNITS:
            raise ValueError(f"rate limit {text!r} is not <count>/<second|minute|hour|day>")
        return cls(int(count), cls.UNITS[unit])


# Fixed window: the first hit starts the window (its TTL), the counter dies with it. Returns the
# count so far and the seconds left in the window.
_HIT = """
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"""


class RateLimits(ASGIMiddleware):
    """Per-client (account, else address) limits for chosen routes, counted in Redis so every API process shares them.

    Litestar's RateLimitMiddleware counts in one window for all routes, keeps the full request
    history per client in the store (read-modify-write guarded by a per-process lock, so several
    API processes lose updates under load) and sends no Retry-After; one atomic INCR+EXPIRE per
    request avoids all three. Routes are named by operation id. Over the limit: 429 with
    `Retry-After`; every limited response carries `X-RateLimit-Limit/Remaining/Reset` (Reset:
    seconds until the window restarts).
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, limits: Mapping[str, Limit]) -> None:
        self.limits = dict(limits)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        operation = getattr(scope["route_handler"], "operation_id", None)
        limit = self.limits.get(operation) if isinstance(operation, str) else None
        if limit is None or not isinstance(operation, str):
            await next_app(scope, receive, send)
            return
        redis = scope["litestar_app"].state.services.redis
        headers, refusal = await count_hit(redis, operation, limit, client_of(scope))
        if refusal is not None:
            raise TooManyRequestsException(detail=refusal, headers=headers)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableScopeHeaders.from_message(message)
                for name, value in headers.items():
                    response_headers[name] = value
            await send(message)

        await next_app(scope, receive, send_with_headers)


def address_of(scope: Scope) -> str:
    """The client's address (the forwarded one only from a trusted proxy, see the module)."""
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "ip:unknown"


def client_of(scope: Scope) -> str:
    """Whose budget a request spends: the signed-in account's, else its address's."""
    user_id = getattr(scope.get("user"), "id", None)
    return f"user:{user_id}" if user_id is not None else address_of(scope)


def _key(operation: str, limit: Limit, client: str) -> str:
    # The limit is part of the key: deployments with different limits never share counters.
    return f"ratelimit:{operation}:{limit.count}/{limit.window}:{client}"


def _answer(limit: Limit, count: int, ttl: int) -> tuple[dict[str, str], str | None]:
    headers = {
        "X-RateLimit-Limit": str(limit.count),
        "X-RateLimit-Remaining": str(max(limit.count - count, 0)),
        "X-RateLimit-Reset": str(ttl),
    }
    if count <= limit.count:
        return headers, None
    return {**headers, "Retry-After": str(ttl)}, f"too many requests; retry in {ttl} s"


async def count_hit(redis: Redis, operation: str, limit: Limit, client: str) -> tuple[dict[str, str], str | None]:
    """Count one request of a client (`client_of`) against an operation's limit: the
    `X-RateLimit-*` headers to answer with, and the refusal message when over the limit (the
    headers then include `Retry-After`)."""
    count, ttl = (int(v) for v in await redis.eval(_HIT, 1, _key(operation, limit, client), limit.window))
    return _answer(limit, count, ttl)


@dataclass(frozen=True)
class FailedLogins:
    """The login limit, spent only by failed attempts: per address (password guessing from one
    place) and per account e-mail (guessing one account's password from many places). A
    successful login costs nothing, so a box office signing in its staff from one address is
    not refused; once either budget is spent, every attempt (right password or not) waits for
    its window to end."""

    limit: Limit
    operation: str = "login"

    def _keys(self, scope: Scope, email: str) -> list[str]:
        # The address only as a digest: Redis holds no personal data in the clear.
        email = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return [_key(self.operation, self.limit, address_of(scope)), _key(self.operation, self.limit, f"email:{email}")]

    async def check(self, redis: Redis, scope: Scope, email: str) -> dict[str, str]:
        """The headers for an attempt that may go ahead; over the limit, TooManyRequestsException."""
        keys = self._keys(scope, email)
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
                pipe.ttl(key)
            values = await pipe.execute()
        count, ttl = max((int(values[i] or 0), max(int(values[i + 1]), 0)) for i in range(0, len(values), 2))
        if count >= self.limit.count:
            headers, refusal = _answer(self.limit, count + 1, ttl or self.limit.window)
            raise TooManyRequestsException(detail=refusal or "", headers=headers)
        return _answer(self.limit, count, ttl or self.limit.window)[0]

    async def failed(self, redis: Redis, scope: Scope, email: str) -> dict[str, str]:
        """Count a failed attempt against both budgets; the headers to answer it with."""
        counted = [await redis.eval(_HIT, 1, key, self.limit.window) for key in self._keys(scope, email)]
        count, ttl = max((int(count), int(ttl)) for count, ttl in counted)
        return _answer(self.limit, count, ttl)[0]


def failed_logins(settings: ApiSettings) -> FailedLogins | None:
    """The login limit (failures only), or None when rate limits are off."""
    return FailedLogins(Limit.parse(settings.rate_limit_login)) if settings.rate_limits_enabled else None


def rate_limits(settings: ApiSettings) -> dict[str, Limit]:
    """The limited routes (by operation id) and their limits from the settings (logins:
    `failed_logins`)."""
    return {
        "register": Limit.parse(settings.rate_limit_register),
        "forgotPassword": Limit.parse(settings.rate_limit_forgot_password),
        "resendVerification": Limit.parse(settings.rate_limit_resend_verification),
        "placeOrder": Limit.parse(settings.rate_limit_orders),
    }
