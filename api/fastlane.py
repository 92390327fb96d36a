"""The fast lane: `POST /api/v1/orders` answered without Litestar's per-request machinery, from
the route's own definition.

In an on-sale nearly every request places an order. Litestar answers one with about 500 µs of
an API process's CPU, the lane with about 200 µs (`make bench`, hot-ga, API CPU per request):
routing, the middleware wrappers, a copy of the route handler per guard, signature and
dependency resolution and the response machinery cost more than the order itself.

Nothing here restates a rule: the lane takes everything from the Litestar route it stands in
for, found by its operation id (`placeOrder`):

- its path and method, and its guards (`resolve_guards()`, run as Litestar runs them);
- the body's type (the handler's `data` parameter) and the Idempotency-Key's header name and
  length (the handler's parameter definition);
- its rate limit (the app's `RateLimits`, by operation id), its answer (`orders.place_order`
  and the `Order` struct) and its error bodies (`errors.domain_error_parts`).

Request id, metrics, the access log and security headers wrap both lanes (`Observe`,
`SecurityHeaders`), so they exist once. The lane answers only what Litestar would answer the
same way: a Bearer token the JWT middleware has verified before (its cache), JSON, no cookies
(so CSRF cannot apply), no `Origin` (so CORS does not apply), no query string, a body that
decodes, guards that pass. Anything else goes to Litestar, the body already read handed on. If
the route (or any layer above it) has a middleware the lane does not know, the lane switches
itself off at start-up and says so: a middleware added later can never be silently skipped.
`tests/e2e/test_fastlane.py` runs both lanes on the same requests and compares the answers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.middleware.base import DefineMiddleware
from litestar.routes import HTTPRoute

from api.errors import INTERNAL, UNAVAILABLE, ErrorBody, domain_error_parts
from api.inputs import RefuseBadUrls, clean_header
from api.limits import RateLimits, count_hit
from api.orders import place_order
from api.security import CachedJWTMiddleware, CookieCSRF, Principal
from api.services import Unavailable
from domain.errors import DomainError

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.handlers import HTTPRouteHandler
    from litestar.types import HTTPResponseStartEvent, HTTPScope, Receive, ReceiveMessage, Scope, Send

log = logging.getLogger("api")
OPERATION = "placeOrder"
# Middleware whose effect the lane reproduces, or whose conditions exclude its requests.
KNOWN_MIDDLEWARE = (RateLimits, CookieCSRF, RefuseBadUrls, CachedJWTMiddleware)
_encode = msgspec.json.Encoder().encode


class FastLane:
    """ASGI, in front of the Litestar app: see the module."""

    def __init__(self, app: Litestar, *, enabled: bool = True, max_body: int = 1_000_000) -> None:
        self.app = app
        route, handler = _route_of(app, OPERATION)
        self.handler = handler
        self.path = route.path
        self.template = route.path_format
        self.guards = handler.resolve_guards()
        parameters = handler.parsed_fn_signature.parameters
        self.decode = msgspec.json.Decoder(parameters["data"].annotation).decode
        key = parameters["idempotency_key"].kwarg_definition
        self.key_header = str(getattr(key, "header", "")).lower().encode("latin-1")
        self.key_max = getattr(key, "max_length", None) or 0
        self.limit = None
        unknown = []
        for middleware in handler.resolve_middleware():
            kind = middleware.middleware if isinstance(middleware, DefineMiddleware) else type(middleware)
            if isinstance(middleware, RateLimits):
                self.limit = middleware.limits.get(OPERATION)
            if not (isinstance(kind, type) and issubclass(kind, KNOWN_MIDDLEWARE)):
                unknown.append(getattr(kind, "__name__", repr(kind)))
        if unknown and enabled:
            log.warning("fast lane off: %s %s has middleware it does not know: %s", "POST", self.path, unknown)
        self.enabled = enabled and not unknown
        self.max_body = max_body
        self.served = 0  # answered here (for tests and curiosity)
        self.passed = 0  # handed to Litestar

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != ScopeType.HTTP or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST" or (principal_key := self._eligible(scope)) is None:
            self.passed += scope["method"] == "POST"
            await self.app(scope, receive, send)
            return
        principal, key = principal_key
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_body:
                break
        body = b"".join(chunks)
        data: Any = None
        if not more:
            try:
                data = self.decode(body)
            except msgspec.DecodeError:  # ValidationError included: Litestar words the 400/422
                data = None
        if data is None or not await self._guards_pass(scope, principal):
            self.passed += 1
            await self.app(scope, _replay(body, more, receive), send)
            return
        self.served += 1
        await self._place(scope, send, principal, data, key)

    def _eligible(self, scope: HTTPScope) -> tuple[Principal, str | None] | None:
        """The caller and the Idempotency-Key, if this request is one the lane answers."""
        if scope.get("query_string"):
            return None
        token = ""
        content_type = b""
        keys: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                if token:
                    return None
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or not token:
                    return None
            elif name == b"content-type":
                content_type = value
            elif name == self.key_header:
                keys.append(value)
            elif name in (b"cookie", b"origin"):
                return None
        if content_type != b"application/json" or len(keys) > 1:
            return None
        key = clean_header(keys[0]) if keys else None
        if keys and (key is None or len(key) > self.key_max):
            return None
        hit = CachedJWTMiddleware.cached(token)
        if hit is None or not isinstance(hit.user, Principal):
            return None
        return hit.user, key

    async def _guards_pass(self, scope: Scope, principal: Principal) -> bool:
        """The route's own guards, on a connection carrying the caller (any refusal is left to
        Litestar, which runs them again and words the answer)."""
        scope["user"] = principal
        scope["auth"] = None
        scope["litestar_app"] = self.app
        connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope)
        try:
            for guard in self.guards:
                await guard(connection, self.handler)  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - refused or failed: Litestar answers it
            return False
        return True

    async def _place(self, scope: HTTPScope, send: Send, buyer: Principal, data: Any, key: str | None) -> None:
        scope["path_template"] = self.template
        services = self.app.state.services
        headers: dict[str, str] = {}
        answer: Any
        try:
            refusal = None
            if self.limit is not None:
                headers, refusal = await count_hit(services.redis, OPERATION, self.limit, f"user:{buyer.id}")
            if refusal is not None:
                status, answer = 429, ErrorBody(error=refusal, code="rate_limited")
            else:
                status, answer = await place_order(services, buyer.id, data, key)
        except DomainError as error:
            status, answer, extra = domain_error_parts(error)
            headers.update(extra or {})
        except Unavailable.CAUSES:
            status, answer, headers = 503, UNAVAILABLE, {"Retry-After": "2"}
        except Exception:
            log.exception("unhandled error on POST %s", self.path)
            status, answer = 500, INTERNAL
        body = _encode(answer)
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status, "headers": raw}
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _route_of(app: Litestar, operation_id: str) -> tuple[HTTPRoute, HTTPRouteHandler]:
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler, _ in route.route_handler_map.values():
                if handler.operation_id == operation_id:
                    return route, handler
    raise LookupError(f"no route with operation id {operation_id!r}")


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """A `receive` that first gives back the body already read, then carries on with the client's."""
    pending = True

    async def again() -> ReceiveMessage:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return again
