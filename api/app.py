"""The Litestar app factory: settings in, a wired application out. Nothing happens at import."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Receive, Scope, Send
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from api.auth import build_jwt_auth
from api.errors import EXCEPTION_HANDLERS
from api.routes import API_ROUTES
from api.services import PositionWatcher, Services
from api.system import SystemController
from commands.setup import open_accounts, open_boxoffice, open_inbox
from commands.tickets_signing import TicketSigner
from ticketing import Settings
from workers.tasks import build_broker, declare_actors, make_runtime

ASSETS = Path(__file__).resolve().parent / "docs-assets" / "node_modules"
log = logging.getLogger("api.access")
BODY_METHODS = {"POST", "PUT", "PATCH"}


class AccessLog(ASGIMiddleware):
    """One structured line per request, with a request id echoed as X-Request-ID."""

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        headers = dict(scope.get("headers", []))
        request_id = headers.get(b"x-request-id", b"").decode()[:64] or uuid.uuid4().hex
        status = 500

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await next_app(scope, receive, send_wrapper)
        finally:
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )


async def require_json(request: Request[Any, Any, Any]) -> None:
    """Bodies of state-changing API calls must be JSON (415 otherwise)."""
    if request.method in BODY_METHODS and request.headers.get("content-length", "0") != "0":
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type and media_type != "application/json" and not media_type.endswith("+json"):
            raise HTTPException(status_code=415, detail="send application/json")


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    jwt_auth = build_jwt_auth(settings.jwt_secret, secure=not settings.is_development)
    broker = build_broker(settings)
    actors = declare_actors(broker, make_runtime(settings))

    async def startup(app: Litestar) -> None:
        boxoffice = open_boxoffice(settings)
        accounts = open_accounts(settings)
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            settings.database_url, min_size=2, max_size=20, kwargs={"row_factory": dict_row}, open=False
        )
        await pool.open(wait=True, timeout=30)
        watcher = PositionWatcher(settings.database_url, boxoffice.name)
        await watcher.start()
        app.state.services = Services(
            settings=settings,
            boxoffice=boxoffice,
            accounts=accounts,
            pool=pool,
            redis=Redis.from_url(settings.redis_url),
            watcher=watcher,
            actors=actors,
            inbox=open_inbox(settings),
            signer=TicketSigner.from_secret(settings.ticket_signing_key or settings.jwt_secret),
        )

    async def shutdown(app: Litestar) -> None:
        services: Services | None = getattr(app.state, "services", None)
        if services is None:
            return
        await services.watcher.stop()
        await services.pool.close()
        await services.redis.aclose()
        services.boxoffice.close()
        services.accounts.close()
        services.inbox.close()
        broker.close()

    def provide_services(state: State) -> Services:
        services: Services = state.services
        return services

    api = Router(path="/api/v1", route_handlers=API_ROUTES)
    assets = [
        create_static_files_router(path="/schema/assets/swagger", directories=[ASSETS / "swagger-ui-dist"],
                                   include_in_schema=False, opt={"exclude_from_auth": True}),
        create_static_files_router(path="/schema/assets/redoc", directories=[ASSETS / "redoc" / "bundles"],
                                   include_in_schema=False, opt={"exclude_from_auth": True}),
    ]  # fmt: skip
    prometheus = PrometheusConfig(app_name="ticketing", prefix="ticketing", group_path=True, exclude=["/metrics"])
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
        middleware=[AccessLog(), prometheus.middleware],
        before_request=require_json,
        openapi_config=openapi,
        request_max_body_size=settings.max_body_bytes,
        state=State({"jwt_auth": jwt_auth}),
        debug=False,
    )
    return app
