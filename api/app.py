"""The Litestar app factory: settings in, a wired application out. Nothing happens at import."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from litestar import Litestar, Request, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import MutableScopeHeaders, State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, SerializationException, TooManyRequestsException
from litestar.middleware import ASGIMiddleware
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusController
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, BeforeMessageSendHookHandler, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import BlockingConnectionPool, Redis

from api.accesslog import access_log
from api.auth import CSRF_HEADER, CookieCSRF, build_csrf_config, build_jwt_auth
from api.errors import EXCEPTION_HANDLERS
from api.inputs import MAX_DEPTH, RAW_BODY, TooDeeplyNested, check_json, check_url, clean_header
from api.routes import API_ROUTES
from api.services import PositionWatcher, Services
from api.system import SystemController
from commands.claims_remote import ClaimClient
from commands.setup import open_accounts, open_boxoffice, open_inbox
from commands.tickets_signing import TicketSigner
from ticketing import Settings
from workers.tasks import build_broker, declare_actors, make_runtime

ASSETS = Path(__file__).resolve().parent / "docs-assets" / "node_modules"
BODY_METHODS = {"POST", "PUT", "PATCH"}


REQUEST_PREFIX = secrets.token_hex(4)
REQUEST_COUNTER = itertools.count(1)


class Observe:
    """Request id, one access-log line and the Prometheus request metrics, in one pure-ASGI layer.

    Replaces three wrappers (an access-log middleware, Litestar's Prometheus middleware, which
    builds a Request and label dicts and looks up every metric child per request, and their send
    wrappers). The metrics keep the names and labels Litestar's plugin used; label children are
    looked up once per (method, route, status). The request id is the caller's `X-Request-ID`
    (first 64 characters) or a process prefix and a counter, and is echoed as `X-Request-ID`.
    """

    def __init__(self, app: ASGIApp, app_name: str, exclude_metrics: frozenset[str] = frozenset({"/metrics"})) -> None:
        self.app = app
        self.metrics = request_metrics(app_name)
        self.exclude_metrics = exclude_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        echo = (b"x-request-id", request_id.encode("latin-1"))
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echo]
            await send(message)

        path: str = scope["path"]
        method: str = scope["method"]
        metered = path not in self.exclude_metrics
        if metered:
            in_progress = self.metrics.in_progress(method, scope.get("path_template", path))
            in_progress.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            if metered:
                in_progress.dec()
                self.metrics.observe(method, scope.get("path_template", path), status, elapsed)
            access_log(request_id, method, path, status, elapsed)


def request_id_of(scope: Scope) -> str:
    """The caller's `X-Request-ID` (first 64 characters, printable and without spaces: it is
    echoed and logged), or a process prefix and a counter: unique, and far cheaper than uuid4 on
    every request."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            request_id = clean_header(value[:64])
            if request_id and " " not in request_id:
                return request_id
            break
    return f"{REQUEST_PREFIX}-{next(REQUEST_COUNTER):x}"


class RequestMetrics:
    """The request metrics of Litestar's Prometheus plugin (same names and labels), with the
    labelled children cached."""

    def __init__(self, app_name: str, prefix: str = "ticketing") -> None:
        self.app_name = app_name
        labels = ["method", "path", "status_code", "app_name"]
        self.requests = Counter(f"{prefix}_requests_total", "Total requests", labels)
        self.errors = Counter(f"{prefix}_requests_error_total", "Total errors in requests", labels)
        self.duration = Histogram(f"{prefix}_request_duration_seconds", "Request duration, in seconds", labels)
        self.progress = Gauge(
            f"{prefix}_requests_in_progress",
            "Total requests currently in progress",
            labels,
            multiprocess_mode="livesum",
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self._progress: dict[tuple[str, str], Any] = {}

    def in_progress(self, method: str, path: str) -> Any:
        child = self._progress.get((method, path))
        if child is None:
            # Litestar's plugin labels requests in progress with status 200.
            child = self._progress[(method, path)] = self.progress.labels(method, path, 200, self.app_name)
        return child

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        key = (method, path, status)
        children = self._children.get(key)
        if children is None:
            values = (method, path, status, self.app_name)
            errors = self.errors.labels(*values) if status >= 500 else None
            children = self._children[key] = (self.requests.labels(*values), self.duration.labels(*values), errors)
        children[0].inc()
        children[1].observe(seconds)
        if children[2] is not None:
            children[2].inc()


_METRICS: dict[str, RequestMetrics] = {}


def request_metrics(app_name: str) -> RequestMetrics:
    """One set per process: the default Prometheus registry refuses a metric registered twice."""
    if app_name not in _METRICS:
        _METRICS[app_name] = RequestMetrics(app_name)
    return _METRICS[app_name]


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


def rate_limits(settings: Settings) -> dict[str, Limit]:
    """The limited routes (by operation id) and their limits from the settings."""
    return {
        "login": Limit.parse(settings.rate_limit_login),
        "register": Limit.parse(settings.rate_limit_register),
        "forgotPassword": Limit.parse(settings.rate_limit_forgot_password),
        "resendVerification": Limit.parse(settings.rate_limit_resend_verification),
        "placeOrder": Limit.parse(settings.rate_limit_orders),
    }


# An API answers JSON, images and PDFs: nothing in them may load, run or be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI and ReDoc (local assets under /schema/assets) boot from inline scripts and styles,
# ReDoc runs its search index in a blob: worker and its bundled JSON-schema validator compiles code.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def security_headers(*, hsts: bool) -> BeforeMessageSendHookHandler:
    """A before-send hook, so every response gets the headers (errors and unknown paths too).

    The headers are set (replacing any value a handler gave), as raw ASGI header pairs: one pass
    over the response's few headers instead of a lookup per header.
    """
    fixed = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if hsts:
        fixed["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    common = [(name.lower().encode(), value.encode()) for name, value in fixed.items()]
    csp = b"content-security-policy"

    def header_set(*pairs: tuple[bytes, bytes]) -> tuple[list[tuple[bytes, bytes]], frozenset[bytes]]:
        headers = [*common, *pairs]
        return headers, frozenset(name for name, _ in headers)

    api_set = header_set((csp, API_CSP.encode()))
    docs_set = header_set((csp, DOCS_CSP.encode()))
    auth_set = header_set((csp, API_CSP.encode()), (b"cache-control", b"no-store"))

    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        path: str = scope.get("path", "")
        if path.startswith("/schema"):
            ours = docs_set
        elif path.startswith("/api/v1/auth/"):
            # Tokens and account data must not linger in shared or browser caches.
            ours = auth_set
        else:
            ours = api_set
        headers = [(n, v) for n, v in message.get("headers", ()) if n.lower() not in ours[1]]
        headers.extend(ours[0])
        message["headers"] = headers

    return add_headers


def cors_config(settings: Settings) -> CORSConfig | None:
    """CORS for the configured front-end origins (with credentials: cookies); none if unset."""
    origins = [o.strip().rstrip("/") for o in settings.cors_origins if o.strip()]
    if not origins:
        return None
    rate_headers = ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"]
    return CORSConfig(
        allow_origins=origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            CSRF_HEADER,
            "Idempotency-Key",
            "If-None-Match",
            "X-Request-ID",
        ],
        expose_headers=["ETag", "X-Request-ID", "Content-Disposition", *rate_headers],
    )


async def check_request(request: Request[Any, Any, Any]) -> None:
    """Bodies of state-changing API calls must be JSON (415 otherwise), nested at most
    `MAX_DEPTH` levels (400) and free of control characters (422); see `api/inputs.py`.

    The body is decoded here the way Litestar decodes it for the handler's `data` (and cached
    for it), so checking costs no second decode. Reads the raw ASGI headers: this runs on every
    request, and parsing them all into `Headers` cost more than the check itself.
    """
    if request.method not in BODY_METHODS:
        return
    length = content_type = None
    for name, value in request.scope["headers"]:
        if name == b"content-length" and length is None:
            length = value
        elif name == b"content-type" and content_type is None:
            content_type = value
    if length is None or length == b"0":
        return
    media_type = (content_type or b"").decode("latin-1").split(";")[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(status_code=415, detail="send application/json")
    if request.route_handler.opt.get(RAW_BODY):
        return
    try:
        data = await request.json()
    except RecursionError:
        raise TooDeeplyNested(f"the JSON body is nested deeper than {MAX_DEPTH} levels") from None
    except (SerializationException, ValueError):
        return  # malformed: the handler's own decoding answers 400 as usual
    check_json(data)


class RefuseBadUrls(ASGIMiddleware):
    """400 for a path or query string with control characters or non-UTF-8 percent-encoding,
    before any route sees it (they reach SQL parameters and file names)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        check_url(scope["path"], scope.get("query_string", b""))
        await next_app(scope, receive, send)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    jwt_auth = build_jwt_auth(settings.jwt_secret, secure=not settings.is_development)
    csrf_config = build_csrf_config(settings.jwt_secret, secure=not settings.is_development)
    cors = cors_config(settings)
    limits = [RateLimits(rate_limits(settings))] if settings.rate_limits_enabled else []
    secure = security_headers(hsts=not settings.is_development)
    broker = build_broker(settings)
    actors = declare_actors(broker, make_runtime(settings))

    # The services of this app once started; handlers get them without a per-request State copy.
    live_services: list[Services] = []

    async def startup(app: Litestar) -> None:
        boxoffice = open_boxoffice(settings)
        if settings.claims_address:
            boxoffice.remote_claims = ClaimClient(settings.claims_address)
        accounts = open_accounts(settings)
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
        watcher = PositionWatcher(settings.database_url, boxoffice.name)
        await watcher.start()
        app.state.services = Services(
            settings=settings,
            boxoffice=boxoffice,
            accounts=accounts,
            pool=pool,
            # Every limited request takes a connection; in a burst (hundreds of orders at once) callers
            # wait (a few seconds at most) for a free one instead of failing with "Too many connections".
            redis=Redis.from_pool(
                BlockingConnectionPool.from_url(
                    settings.redis_url,
                    max_connections=100,
                    # A frozen or unreachable Redis must cost a request a second, not forever.
                    timeout=3,
                    socket_timeout=1,
                    socket_connect_timeout=1,
                )
            ),
            watcher=watcher,
            actors=actors,
            inbox=open_inbox(settings),
            signer=TicketSigner.from_secret(settings.ticket_signing_key or settings.jwt_secret),
        )
        live_services[:] = [app.state.services]

    async def shutdown(app: Litestar) -> None:
        services: Services | None = getattr(app.state, "services", None)
        if services is None:
            return
        if services.boxoffice.remote_claims is not None:
            await services.boxoffice.remote_claims.close()
        await services.watcher.stop()
        await services.pool.close()
        await services.redis.aclose()
        services.boxoffice.close()
        services.accounts.close()
        services.inbox.close()
        broker.close()

    def provide_services() -> Services:
        return live_services[0]

    api = Router(path="/api/v1", route_handlers=API_ROUTES)
    assets = [
        create_static_files_router(path="/schema/assets/swagger", directories=[ASSETS / "swagger-ui-dist"],
                                   include_in_schema=False, opt={"exclude_from_auth": True}),
        create_static_files_router(path="/schema/assets/redoc", directories=[ASSETS / "redoc" / "bundles"],
                                   include_in_schema=False, opt={"exclude_from_auth": True}),
    ]  # fmt: skip
    openapi = OpenAPIConfig(
        title="Ticketing API",
        version="1.0.0",
        description="Event-sourced ticketing backend: venues, seat maps, offers, holds and orders.",
        path="/schema",
        components=Components(
            security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
        ),
        render_plugins=[
            SwaggerRenderPlugin(
                path="/swagger",
                js_url="/schema/assets/swagger/swagger-ui-bundle.js",
                css_url="/schema/assets/swagger/swagger-ui.css",
                standalone_preset_js_url="/schema/assets/swagger/swagger-ui-standalone-preset.js",
                favicon="",
            ),
            RedocRenderPlugin(
                path="/redoc", js_url="/schema/assets/redoc/redoc.standalone.js", google_fonts=False, favicon=""
            ),
        ],
    )
    app = Litestar(
        route_handlers=[api, SystemController, PrometheusController, *assets],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        on_startup=[startup],
        on_shutdown=[shutdown],
        on_app_init=[jwt_auth.on_app_init],
        middleware=[
            DefineMiddleware(Observe, app_name="ticketing"),
            RefuseBadUrls(),
            *limits,
            CookieCSRF(csrf_config, trusted_origins=tuple(cors.allow_origins) if cors else ()),
        ],
        before_request=check_request,
        before_send=[secure],
        cors_config=cors,
        openapi_config=openapi,
        request_max_body_size=settings.max_body_bytes,
        state=State({"jwt_auth": jwt_auth, "csrf_config": csrf_config, "security_headers": secure}),
        debug=False,
    )
    return app
