"""Security: authentication (JWT in the `auth-token` cookie or as Bearer), roles and guards, CSRF,
security headers and CORS. The /auth routes that issue tokens are in `api/accounts.py`.
One module by design (the house layout): every rule about who may call what is read in one place.

Tokens:
- access JWT, 15 min: `sub` = account id; extras `type=access`, `role`, `email`, `email_verified`,
  `sid` (its session). Not revocable: it lives until it expires.
- refresh JWT, 7 days: `jti` = token id; extras `type=refresh`, `sid`, `gen` (the account's token
  generation). Honoured only while it is its session's current token (see `commands.accounts.Sessions`)
  and the account's generation is still `gen` (a password change or reset moves it on).

CSRF (double submit, Litestar's signed token format and `CSRFConfig`): a request that a browser
authenticates by cookie and that changes state must send `X-CSRF-Token` equal to the `csrf-token`
cookie. Bearer requests carry a credential a foreign page cannot attach, so they are exempt; so is
the Stripe webhook. Routes that take credentials in the body (register, login, refresh with a body
token, verify, resend, forgot, reset) have no ambient credential to abuse, but a foreign page could
still post the attacker's credentials to sign a victim into the attacker's account (login CSRF), so
for them a browser's `Origin`, when sent, must be this service or a configured CORS origin.
"""

from __future__ import annotations

import hmac
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit
from uuid import UUID

import msgspec
from litestar import Request
from litestar.config.cors import CORSConfig
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, Headers
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.middleware._utils import should_bypass_middleware
from litestar.middleware.authentication import AuthenticationResult
from litestar.middleware.csrf import CSRF_SECRET_LENGTH, generate_csrf_hash
from litestar.security.jwt import JWTCookieAuth, JWTCookieAuthenticationMiddleware, Token
from litestar.types import ASGIApp, HTTPResponseStartEvent, Receive, Scope, Send

from api.services import Services
from domain.errors import Forbidden, NotFound

if TYPE_CHECKING:
    from api.services import ApiSettings

ACCESS_TTL = timedelta(minutes=15)
ACCESS_COOKIE = "auth-token"
REFRESH_COOKIE = "refresh-token"
REFRESH_COOKIE_PATH = "/api/v1/auth"  # the refresh token only travels to the routes that use it
CSRF_COOKIE = "csrf-token"
CSRF_HEADER = "x-csrf-token"
PUBLIC_PATHS = ["^/health", "^/ready", "^/metrics", "^/schema"]
# Paths whose callers authenticate by other means (Stripe signs its webhook).
CSRF_EXEMPT_PATHS = ("^/api/v1/webhooks/stripe$",)
# Route option marking routes that take their credentials in the body (see the module doc).
CREDENTIALS_IN_BODY = "exclude_from_csrf"
# Route option of web page forms (api/web): the CSRF token comes as the form field `_csrf`, which
# the handler checks with `require_form_csrf` once the form is parsed.
CSRF_IN_FORM = "csrf_in_form"


class Principal(msgspec.Struct, frozen=True):
    """The authenticated caller, taken from the access token's claims."""

    id: UUID
    role: str
    email: str
    email_verified: bool = False
    session: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _principal(token: Token) -> Principal | None:
    if token.extras.get("type") != "access":
        return None
    try:
        return Principal(
            id=UUID(token.sub),
            role=str(token.extras["role"]),
            email=str(token.extras["email"]),
            email_verified=token.extras.get("email_verified") is True,
            session=str(token.extras.get("sid") or ""),
        )
    except (KeyError, ValueError):
        return None


async def principal_from_token(token: Token, _: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    return _principal(token)


class CachedJWTMiddleware(JWTCookieAuthenticationMiddleware):
    """Litestar's cookie-or-Bearer JWT middleware, remembering tokens it has verified.

    Verifying a token (HMAC, base64, claims) is pure: the same string with the same secret
    always gives the same result, so a token seen before is looked up instead, until it
    expires. A buyer sends the same token with every request of a checkout.
    """

    cache: ClassVar[dict[str, tuple[float, AuthenticationResult]]] = {}
    max_entries: ClassVar[int] = 50_000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A Bearer token verified before is found from the raw header, without building a
        connection and its parsed headers; anything else takes Litestar's path unchanged."""
        hit = self.cached(_bearer_token(scope))
        if hit is not None and not should_bypass_middleware(
            exclude_http_methods=self.exclude_http_methods,
            exclude_opt_key=self.exclude_opt_key,
            exclude_path_pattern=self.exclude,
            scope=scope,
            scopes=self.scopes,
        ):
            scope["user"] = hit.user
            scope["auth"] = hit.auth
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    @classmethod
    def cached(cls, token: str) -> AuthenticationResult | None:
        """The result of verifying `token`, if it was verified before and has not expired."""
        hit = cls.cache.get(token) if token else None
        return hit[1] if hit is not None and hit[0] > time.time() else None

    async def authenticate_token(
        self, encoded_token: str, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        hit = self.cached(encoded_token)
        if hit is not None:
            return hit
        now = time.time()
        result = await super().authenticate_token(encoded_token, connection)
        if len(self.cache) >= self.max_entries:
            self.cache.clear()
        token = result.auth
        expires = token.exp.timestamp() if isinstance(token, Token) else now
        self.cache[encoded_token] = (expires, result)
        return result


def build_jwt_auth(secret: str, secure: bool) -> JWTCookieAuth[Principal, Token]:
    return JWTCookieAuth[Principal, Token](
        authentication_middleware_class=CachedJWTMiddleware,
        retrieve_user_handler=principal_from_token,
        token_secret=secret,
        key=ACCESS_COOKIE,
        default_token_expiration=ACCESS_TTL,
        exclude=PUBLIC_PATHS,
        secure=secure,
        samesite="lax",
        description="Access JWT from POST /api/v1/auth/login, as a Bearer token or the auth-token cookie.",
    )


def optional_principal(request: Request[Any, Any, Any]) -> Principal | None:
    """The caller on a public route, if they sent a valid token (else anonymous)."""
    jwt_auth: JWTCookieAuth[Principal, Token] = request.app.state.jwt_auth
    encoded = request.headers.get("authorization", "").partition(" ")[-1] or request.cookies.get(ACCESS_COOKIE, "")
    if not encoded:
        return None
    try:
        token = Token.decode(encoded, secret=jwt_auth.token_secret, algorithm=jwt_auth.algorithm)
    except NotAuthorizedException:
        return None
    return _principal(token)


def requires(*roles: str) -> Any:
    """A guard letting only the given roles (admins always) through: 403 otherwise."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        user = connection.user
        if not isinstance(user, Principal):
            raise NotAuthorizedException("authentication required")
        if user.role != "admin" and user.role not in roles:
            raise PermissionDeniedException(f"this needs the {' or '.join(roles) or 'admin'} role")

    return guard


admin_only = requires()
organizers = requires("organizer")


async def verified_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A guard for buying and publishing: the caller's e-mail address must be verified (403
    `email_not_verified` otherwise).

    The access token says so when it was minted; a token minted before the address was verified
    is checked against the account, so nobody has to sign in again after verifying.
    """
    user = connection.user
    if not isinstance(user, Principal):
        raise NotAuthorizedException("authentication required")
    await ensure_verified(connection.app.state.services, user)


async def ensure_verified(services: Services, user: Principal) -> None:
    """403 `email_not_verified` unless `user`'s address is verified (the token's word, else the account's)."""
    if user.email_verified:
        return
    try:
        account = await services.call(lambda: services.accounts.get_account(user.id))
    except NotFound:
        account = None
    if account is None or not account.email_verified:
        raise Forbidden("verify your e-mail address first", code="email_not_verified")


# CSRF ----------------------------------------------------------------------------------------


class CsrfFailed(Forbidden):
    """No or a wrong double-submitted CSRF token, or a foreign Origin on a credentials route (403)."""

    code = "csrf_failed"


def build_csrf_config(secret: str, secure: bool) -> CSRFConfig:
    """Litestar's CSRF settings; the cookie is readable by scripts on purpose (double submit)."""
    key = hmac.new(secret.encode(), b"csrf", "sha256").hexdigest()
    return CSRFConfig(
        secret=key,
        cookie_name=CSRF_COOKIE,
        header_name=CSRF_HEADER,
        cookie_secure=secure,
        cookie_httponly=False,
        cookie_samesite="lax",
    )


def signed_by_us(config: CSRFConfig, token: str) -> bool:
    """Whether `token` has Litestar's CSRF format (random hex + HMAC of it) under our secret."""
    if len(token) <= CSRF_SECRET_LENGTH:
        return False
    expected = generate_csrf_hash(token=token[:CSRF_SECRET_LENGTH], secret=config.secret)
    return hmac.compare_digest(token[CSRF_SECRET_LENGTH:], expected)


def _double_submitted(config: CSRFConfig, header: str | None, cookie: str | None) -> bool:
    return (
        bool(header and cookie) and hmac.compare_digest(str(header), str(cookie)) and signed_by_us(config, str(cookie))
    )


def require_csrf(request: Request[Any, Any, Any]) -> None:
    """Raise 403 `csrf_failed` unless the request double-submits the CSRF cookie."""
    config: CSRFConfig = request.app.state.csrf_config
    if not _double_submitted(config, request.headers.get(config.header_name), request.cookies.get(config.cookie_name)):
        raise CsrfFailed("missing or wrong X-CSRF-Token (GET /api/v1/auth/csrf issues one)")


def csrf_cookie(config: CSRFConfig, token: str) -> Cookie:
    """The CSRF cookie carrying `token`, as the CSRF config says (the JSON route and the pages)."""
    return Cookie(
        key=config.cookie_name,
        value=token,
        path=config.cookie_path,
        secure=config.cookie_secure,
        httponly=config.cookie_httponly,
        samesite=config.cookie_samesite,
    )


def require_form_csrf(request: Request[Any, Any, Any], submitted: str | None) -> None:
    """The same double-submit rule for a web form: its `_csrf` field must equal the cookie. Every
    web form has one, also sign-in and registration (no login CSRF)."""
    config: CSRFConfig = request.app.state.csrf_config
    if not _double_submitted(config, submitted, request.cookies.get(config.cookie_name)):
        raise CsrfFailed("the form is out of date: reload the page and try again")


def _bearer_token(scope: Scope) -> str:
    """The token of the first `Authorization` header (after its scheme), or "": the value the JWT
    middleware takes, read from the raw ASGI headers."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return value.decode("latin-1").partition(" ")[-1]
    return ""


class CookieCSRF(ASGIMiddleware):
    """Enforces the double-submit rule on state-changing requests authenticated by cookie.

    Litestar's own CSRFMiddleware checks every unsafe request however it is authenticated (so
    Bearer clients would need a cookie) and sets a cookie on every GET; here the check applies
    only where a browser's ambient cookie is the credential, with the same config and tokens.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, config: CSRFConfig, trusted_origins: tuple[str, ...]) -> None:
        self.config = config
        self.trusted_origins = frozenset(o.rstrip("/") for o in trusted_origins)
        self.exclude_path_pattern = CSRF_EXEMPT_PATHS

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        # Cheap exits first: safe methods, then Bearer requests (the API's usual client), both
        # decided without building a Request.
        if scope.get("method", "GET") not in self.config.safe_methods:
            opt = scope["route_handler"].opt
            credentials_in_body = opt.get(CREDENTIALS_IN_BODY)
            if opt.get(CSRF_IN_FORM):
                pass  # checked by the handler, from the form (require_form_csrf)
            elif credentials_in_body or not _bearer_token(scope):
                request: Request[Any, Any, Any] = scope["litestar_app"].request_class(scope)
                if credentials_in_body:
                    if not self._origin_trusted(request.headers):
                        raise CsrfFailed("requests from this origin are not accepted")
                elif ACCESS_COOKIE in request.cookies:
                    require_csrf(request)
        await next_app(scope, receive, send)

    def _origin_trusted(self, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is None:
            return True  # not a browser, or a same-origin request from an old one
        origin = origin.rstrip("/")
        return origin in self.trusted_origins or urlsplit(origin).netloc == headers.get("host")


# An API answers JSON, images and PDFs: nothing in them may load, run or be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
PAGE_PATHS = frozenset({"/verify"})
# The web pages of api/web: scripts, styles and images from this origin only (no inline script or
# style), scripts talk to this origin only, forms post to it.
WEB_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# The one exception to "no page loads anything from another host": Stripe.js, which Stripe requires
# be loaded from js.stripe.com (PCI), framing its card form from there and 3-D Secure from
# hooks.stripe.com, and calling api.stripe.com; exactly what Stripe documents for its CSP. Only a
# response under STRIPE_JS_PREFIX that asks for it (CSP_EXTENSION: "stripe-js") gets it.
STRIPE_JS_CSP = (
    "default-src 'none'; script-src 'self' https://js.stripe.com; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' https://api.stripe.com; frame-src https://js.stripe.com https://hooks.stripe.com; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
STRIPE_JS_PREFIX = "/checkout/"
# The response header a page handler sets to ask for an extended policy (never sent out).
CSP_EXTENSION = "x-csp-extension"
_MARKER = CSP_EXTENSION.encode()
WEB_PATHS = frozenset({"/", "/login", "/register", "/logout", "/reset", "/reset/code", "/me", "/organizer"})
WEB_PREFIXES = ("/e/", "/checkout/", "/scan/", "/static/web/", "/organizer/", "/me/")
# Web pages (api/pages.py, at PAGE_PATHS): their own styles, forms posted to this origin, nothing else.
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
# Swagger UI and ReDoc (local assets under /schema/assets) boot from inline scripts and styles,
# ReDoc runs its search index in a blob: worker and its bundled JSON-schema validator compiles code.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


class SecurityHeaders:
    """Every response gets the security headers (errors, unknown paths and the fast lane's
    answers too): called with each response's start message by the outermost layer
    (`api.observability.Observe`), so there is one place that sets them and one send wrapper.

    The headers are set (replacing any value a handler gave), as raw ASGI header pairs: one pass
    over the response's few headers instead of a lookup per header.
    """

    def __init__(self, *, hsts: bool) -> None:
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

        self.api = header_set((csp, API_CSP.encode()))
        self.docs = header_set((csp, DOCS_CSP.encode()))
        self.page = header_set((csp, PAGE_CSP.encode()), (b"cache-control", b"no-store"))
        self.web = header_set((csp, WEB_CSP.encode()))
        self.stripe_js = header_set((csp, STRIPE_JS_CSP.encode()))
        # Tokens and account data must not linger in shared or browser caches.
        self.auth = header_set((csp, API_CSP.encode()), (b"cache-control", b"no-store"))

    def __call__(self, start: HTTPResponseStartEvent, path: str) -> None:
        if path.startswith("/schema"):
            ours = self.docs
        elif path.startswith("/api/v1/auth/"):
            ours = self.auth
        elif path in PAGE_PATHS:
            ours = self.page
        elif path in WEB_PATHS or path.startswith(WEB_PREFIXES):
            ours = self.web
            if path.startswith(STRIPE_JS_PREFIX) and any(
                n.lower() == _MARKER and v == b"stripe-js" for n, v in start.get("headers", ())
            ):
                ours = self.stripe_js
        else:
            ours = self.api
        headers = [(n, v) for n, v in start.get("headers", ()) if n.lower() not in ours[1] and n.lower() != _MARKER]
        headers.extend(ours[0])
        start["headers"] = headers


def cors_config(settings: ApiSettings) -> CORSConfig | None:
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


def is_operator(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the caller may read operational detail (/metrics, the positions of /ready): it
    sends METRICS_TOKEN as its Bearer token (a scraper), or an admin's access token (header or
    cookie). These routes are outside the JWT middleware, so the token is checked here."""
    presented = _bearer_token(connection.scope)
    expected: str = connection.app.state.get("metrics_token", "")
    if expected and presented and hmac.compare_digest(presented.encode(), expected.encode()):
        return True
    encoded = presented or connection.cookies.get(ACCESS_COOKIE, "")
    if not encoded:
        return False
    jwt_auth: JWTCookieAuth[Principal, Token] = connection.app.state.jwt_auth
    try:
        token = Token.decode(encoded, secret=jwt_auth.token_secret, algorithm=jwt_auth.algorithm)
    except NotAuthorizedException:
        return False
    principal = _principal(token)
    return principal is not None and principal.is_admin


async def operators_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: METRICS_TOKEN or an admin (`is_operator`), else 401."""
    if not is_operator(connection):
        raise NotAuthorizedException(
            "send METRICS_TOKEN or an admin's token as Bearer", headers={"WWW-Authenticate": "Bearer"}
        )
