"""The express lane: `POST /api/v1/orders` answered without the framework's per-request layers.

In an on-sale nearly every request is one of these, and the profile of a hot sale showed the
framework's layers (routing, middleware copies, guards, dependency and signature resolution,
the response machinery and two exception layers) costing about 0.5 ms of CPU per order: more
than the order itself. This lane sits in front of the Litestar app and answers the plain case
itself, with the very code the Litestar handler uses:

- the same request struct (`OrderCreate`, decoded by msgspec), the same `place_order`, the same
  response struct and error bodies (`domain_error_parts`), the same rate limit counter, security
  headers, request id, metrics and access-log line;
- only for a caller whose Bearer token the JWT middleware has already verified (its cache) and
  whose e-mail address is verified, without cookies (so CSRF cannot apply) and without an
  `Origin` header (so CORS does not apply).

Anything else (a token not seen yet, cookies, a browser's `Origin`, another content type, a
query string, a body that does not decode or validate, more than one `Idempotency-Key`) is passed
to the Litestar app untouched, the body already read included, so every refusal and error comes
from the one place that defines it. `tests/e2e/test_express.py` checks that both lanes answer
alike.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.enums import ScopeType

from api.accesslog import access_log
from api.app import count_hit, create_app, rate_limits, request_id_of, request_metrics
from api.auth import CachedJWTMiddleware, Principal
from api.errors import INTERNAL, UNAVAILABLE, ErrorBody, domain_error_parts
from api.inputs import clean_header
from api.orders import OrderCreate, place_order
from api.services import Unavailable
from commands import heap
from domain.errors import DomainError
from ticketing import Settings

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.types import HTTPResponseStartEvent, HTTPScope, Receive, ReceiveMessage, Scope, Send

log = logging.getLogger("api")
PATH = "/api/v1/orders"
TEMPLATE = PATH  # the route's path template, as Litestar labels its metrics
IDEMPOTENCY_MAX = 200  # as the handler's `Idempotency-Key` parameter allows
_decode_order = msgspec.json.Decoder(OrderCreate).decode
_encode = msgspec.json.Encoder().encode


class ExpressOrders:
    """ASGI: the express lane for placing orders in front of the Litestar app (see the module)."""

    def __init__(self, app: Litestar, settings: Settings) -> None:
        self.app = app
        self.enabled = settings.express_orders
        self.max_body = settings.max_body_bytes
        self.limit = rate_limits(settings)["placeOrder"] if settings.rate_limits_enabled else None
        self.metrics = request_metrics("ticketing")
        self.security_headers = app.state.security_headers
        self.served = 0  # answered here (for tests and curiosity)
        self.passed = 0  # handed to the Litestar app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != ScopeType.HTTP or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        principal, idempotency_key = self._eligible(scope)
        if principal is None:
            self.passed += 1
            await self.app(scope, receive, send)
            return
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
        data: OrderCreate | None = None
        if not more:
            try:
                data = _decode_order(body)
            except msgspec.DecodeError:  # ValidationError included: Litestar words the 400/422
                data = None
        if data is None:
            self.passed += 1
            await self.app(scope, _replay(body, more, receive), send)
            return
        self.served += 1
        await self._place(scope, send, principal, data, idempotency_key)

    def _eligible(self, scope: HTTPScope) -> tuple[Principal | None, str | None]:
        """The caller, if this request is one the lane answers, and its Idempotency-Key."""
        if scope.get("query_string"):
            return None, None
        token = ""
        content_type = b""
        keys: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                if token:
                    return None, None
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or not token:
                    return None, None
            elif name == b"content-type":
                content_type = value
            elif name == b"idempotency-key":
                keys.append(value)
            elif name in (b"cookie", b"origin"):
                return None, None
        if content_type != b"application/json" or len(keys) > 1:
            return None, None
        key = clean_header(keys[0]) if keys else None
        if keys and (key is None or len(key) > IDEMPOTENCY_MAX):
            return None, None
        hit = CachedJWTMiddleware.cached(token)
        if hit is None:
            return None, None
        user = hit.user
        if not isinstance(user, Principal) or not user.email_verified:
            return None, None
        return user, key

    async def _place(self, scope: HTTPScope, send: Send, buyer: Principal, data: OrderCreate, key: str | None) -> None:
        started = time.perf_counter()
        request_id = request_id_of(scope)
        in_progress = self.metrics.in_progress("POST", TEMPLATE)
        in_progress.inc()
        status = 500
        try:
            services = self.app.state.services
            headers: dict[str, str] = {}
            answer: Any
            try:
                refusal = None
                if self.limit is not None:
                    headers, refusal = await count_hit(services.redis, "placeOrder", self.limit, scope)
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
                log.exception("unhandled error on POST %s", PATH)
                status, answer = 500, INTERNAL
            await self._answer(scope, send, status, _encode(answer), headers, request_id)
        finally:
            elapsed = time.perf_counter() - started
            in_progress.dec()
            self.metrics.observe("POST", TEMPLATE, status, elapsed)
            access_log(request_id, "POST", PATH, status, elapsed)

    async def _answer(self, scope: HTTPScope, send: Send, status: int, body: bytes, headers: dict[str, str],
                      request_id: str) -> None:  # fmt: skip
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status, "headers": raw}
        await self.security_headers(start, scope)
        start["headers"] = [*start["headers"], (b"x-request-id", request_id.encode("latin-1"))]
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})


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


def create_service(settings: Settings | None = None) -> ExpressOrders:
    """What uvicorn serves: the Litestar app behind the express lane."""
    settings = settings or Settings.from_env()
    app = create_app(settings)
    app.on_startup.append(heap.settle)  # once the services are open (see commands/heap.py)
    return ExpressOrders(app, settings)
