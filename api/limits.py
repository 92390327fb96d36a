"""Rate limits: per client for chosen routes (by operation id), counted in Redis so every API
process shares them; 429 with `Retry-After` and `X-RateLimit-*` headers."""

from __future__ import annotations

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
    """Per-client (IP) limits for chosen routes, counted in Redis so every API process shares them.

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
        headers, refusal = await count_hit(scope["litestar_app"].state.services.redis, operation, limit, scope)
        if refusal is not None:
            raise TooManyRequestsException(detail=refusal, headers=headers)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableScopeHeaders.from_message(message)
                for name, value in headers.items():
                    response_headers[name] = value
            await send(message)

        await next_app(scope, receive, send_with_headers)


async def count_hit(redis: Redis, operation: str, limit: Limit, scope: Scope) -> tuple[dict[str, str], str | None]:
    """Count one request of a client (by IP) against an operation's limit: the
    `X-RateLimit-*` headers to answer with, and the refusal message when over the limit (the
    headers then include `Retry-After`)."""
    client = scope.get("client")
    address = client[0] if client else "unknown"
    # The limit is part of the key: deployments with different limits never share counters.
    key = f"ratelimit:{operation}:{limit.count}/{limit.window}:{address}"
    count, ttl = (int(v) for v in await redis.eval(_HIT, 1, key, limit.window))
    headers = {
        "X-RateLimit-Limit": str(limit.count),
        "X-RateLimit-Remaining": str(max(limit.count - count, 0)),
        "X-RateLimit-Reset": str(ttl),
    }
    if count <= limit.count:
        return headers, None
    return {**headers, "Retry-After": str(ttl)}, f"too many requests; retry in {ttl} s"


def rate_limits(settings: ApiSettings) -> dict[str, Limit]:
    """The limited routes (by operation id) and their limits from the settings."""
    return {
        "login": Limit.parse(settings.rate_limit_login),
        "register": Limit.parse(settings.rate_limit_register),
        "forgotPassword": Limit.parse(settings.rate_limit_forgot_password),
        "resendVerification": Limit.parse(settings.rate_limit_resend_verification),
        "placeOrder": Limit.parse(settings.rate_limit_orders),
    }
