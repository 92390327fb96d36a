"""The app factory: settings and a way to open the services in, the service's ASGI app out.

    Observe (request id, metrics, access log; the security headers on every response)
      FastLane (POST /api/v1/orders, see api/fastlane.py)
        Litestar: RefuseBadUrls, RateLimits, CookieCSRF, JWT auth; guards; check_request;
                  controllers (api/routes.py); exception handlers (api/errors.py)

Nothing happens at import; the composition root (`ticketing.py`) calls `create_service`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp

from api.errors import EXCEPTION_HANDLERS
from api.fastlane import FastLane
from api.inputs import RefuseBadUrls, check_request
from api.limits import RateLimits, failed_logins, rate_limits
from api.media import MediaController
from api.observability import Observe, log_access_as_json_lines, request_metrics
from api.orders import see_own_writes
from api.pages import PagesController
from api.routes import API_ROUTES, document_errors
from api.seatmap_cache import SeatMaps
from api.security import CookieCSRF, SecurityHeaders, build_csrf_config, build_jwt_auth, cors_config
from api.services import ApiSettings, Services
from api.system import Metrics, SystemController
from api.web import template_config, web_routes

ASSETS = Path(__file__).resolve().parent / "docs-assets" / "node_modules"


def create_service(settings: ApiSettings, open_services: Callable[[], Awaitable[Services]]) -> ASGIApp:
    """What uvicorn serves: the Litestar app behind the fast lane, inside the layers every
    request passes (see the module)."""
    app = create_app(settings, open_services)
    lane = FastLane(app, enabled=settings.express_orders, max_body=settings.max_body_bytes)
    log_access_as_json_lines()
    return Observe(lane, request_metrics(), on_start=[SecurityHeaders(hsts=not settings.is_development)])


def create_app(settings: ApiSettings, open_services: Callable[[], Awaitable[Services]]) -> Litestar:
    jwt_auth = build_jwt_auth(settings.jwt_secret, secure=not settings.is_development)
    csrf_config = build_csrf_config(settings.jwt_secret, secure=not settings.is_development)
    cors = cors_config(settings)
    limited = rate_limits(settings) if settings.rate_limits_enabled else {}
    limits = [RateLimits(limited)] if limited else []
    # The services of this app once started; handlers get them without a per-request State copy.
    live: list[Services] = []

    async def startup(app: Litestar) -> None:
        services = await open_services()
        services.seat_maps = SeatMaps(size=8)
        app.state.services = services
        live[:] = [services]

    async def shutdown(app: Litestar) -> None:
        services: Services | None = getattr(app.state, "services", None)
        if services is not None:
            await services.close()

    api = Router(path="/api/v1", route_handlers=API_ROUTES)
    assets = [
        create_static_files_router(path="/schema/assets/swagger", directories=[ASSETS / "swagger-ui-dist"],
                                   include_in_schema=False, opt={"exclude_from_auth": True}),
        create_static_files_router(path="/schema/assets/redoc", directories=[ASSETS / "redoc" / "bundles"],
                                   include_in_schema=False, opt={"exclude_from_auth": True}),
    ]  # fmt: skip
    return Litestar(
        route_handlers=[
            api,
            SystemController,
            PagesController,
            *document_errors([MediaController]),
            Metrics,
            *assets,
            *web_routes(),
        ],
        template_config=template_config(),
        dependencies={"services": Provide(lambda: live[0], sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        on_startup=[startup],
        on_shutdown=[shutdown],
        on_app_init=[jwt_auth.on_app_init],
        middleware=[
            RefuseBadUrls(),
            *limits,
            CookieCSRF(csrf_config, trusted_origins=tuple(cors.allow_origins) if cors else ()),
        ],
        before_request=_before_request,
        cors_config=cors,
        openapi_config=_openapi(),
        request_max_body_size=settings.max_body_bytes,
        state=State(
            {
                "jwt_auth": jwt_auth,
                "csrf_config": csrf_config,
                "failed_logins": failed_logins(settings),
                "rate_limits": limited,  # the web pages' forms spend the same budgets (api/web)
                "metrics_token": settings.metrics_token,
            }
        ),
        debug=False,
    )


async def _before_request(request: Request[Any, Any, Any]) -> None:
    await check_request(request)
    await see_own_writes(request)


def _openapi() -> OpenAPIConfig:
    """The OpenAPI document, with Swagger UI and ReDoc served from local assets (no CDN)."""
    return OpenAPIConfig(
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
