"""Authentication (JWT in the `auth-token` cookie or as Bearer), sessions, roles, CSRF, and /auth routes.

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
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, Headers
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.middleware._utils import should_bypass_middleware
from litestar.middleware.authentication import AuthenticationResult
from litestar.middleware.csrf import CSRF_SECRET_LENGTH, generate_csrf_hash, generate_csrf_token
from litestar.security.jwt import JWTCookieAuth, JWTCookieAuthenticationMiddleware, Token
from litestar.types import ASGIApp, Receive, Scope, Send

from api.services import Services, queue_follow_up
from commands.accounts import REFRESH_TTL, InvalidRefreshToken, MailedSecrets, Sessions
from domain.account import Account
from domain.errors import Forbidden, Invalid, NotFound

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
    if user.email_verified:
        return
    services: Services = connection.app.state.services
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


def _signed_by_us(config: CSRFConfig, token: str) -> bool:
    """Whether `token` has Litestar's CSRF format (random hex + HMAC of it) under our secret."""
    if len(token) <= CSRF_SECRET_LENGTH:
        return False
    expected = generate_csrf_hash(token=token[:CSRF_SECRET_LENGTH], secret=config.secret)
    return hmac.compare_digest(token[CSRF_SECRET_LENGTH:], expected)


def _double_submitted(config: CSRFConfig, header: str | None, cookie: str | None) -> bool:
    return (
        bool(header and cookie) and hmac.compare_digest(str(header), str(cookie)) and _signed_by_us(config, str(cookie))
    )


def require_csrf(request: Request[Any, Any, Any]) -> None:
    """Raise 403 `csrf_failed` unless the request double-submits the CSRF cookie."""
    config: CSRFConfig = request.app.state.csrf_config
    if not _double_submitted(config, request.headers.get(config.header_name), request.cookies.get(config.cookie_name)):
        raise CsrfFailed("missing or wrong X-CSRF-Token (GET /api/v1/auth/csrf issues one)")


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
            credentials_in_body = scope["route_handler"].opt.get(CREDENTIALS_IN_BODY)
            if credentials_in_body or not _bearer_token(scope):
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


# Payloads ------------------------------------------------------------------------------

Email = Annotated[str, msgspec.Meta(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=256)]
Username = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Name = Annotated[str, msgspec.Meta(max_length=100)]
Phone = Annotated[str, msgspec.Meta(max_length=40)]
EncodedToken = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


class RegisterCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    username: Username
    password: Password
    role: str = "attendee"
    first_name: Name = ""
    last_name: Name = ""
    phone: Phone = ""


class LoginCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=254)]
    password: Annotated[str, msgspec.Meta(max_length=256)]


class RefreshCreate(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: EncodedToken


class LogoutCreate(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: EncodedToken | None = None


class VerifyEmailCreate(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class EmailCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=254)]


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    old_password: Annotated[str, msgspec.Meta(max_length=256)]
    new_password: Password


class PasswordReset(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=254)]
    code: Annotated[str, msgspec.Meta(pattern=r"^\s*\d{6}\s*$")]
    new_password: Password


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True):
    username: Username | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    phone: Phone | None = None


class User(msgspec.Struct):
    id: UUID
    email: str
    username: str
    role: str
    first_name: str
    last_name: str
    phone: str
    email_verified: bool
    created_at: datetime

    @classmethod
    def of(cls, account: Account) -> User:
        return cls(
            id=account.id,
            email=account.email,
            username=account.username,
            role=account.role,
            first_name=account.first_name,
            last_name=account.last_name,
            phone=account.phone,
            email_verified=account.email_verified,
            created_at=account.created_on,
        )


class Tokens(msgspec.Struct):
    access_token: str
    refresh_token: str
    token_type: str
    user: User
    expires_in: int


class Accepted(msgspec.Struct):
    status: Literal["accepted"]
    detail: str


class Done(msgspec.Struct):
    status: str


class EmailVerification(msgspec.Struct):
    email_verified: bool


class CsrfToken(msgspec.Struct):
    csrf_token: str


class AuthController(Controller):
    path = "/auth"
    tags = ["Accounts"]

    @post("/register", operation_id="register", exclude_from_auth=True, exclude_from_csrf=True, status_code=201)
    async def register(
        self, data: RegisterCreate, services: Services, request: Request[Any, Any, Any]
    ) -> Response[Tokens]:
        """Create an attendee or organizer account, sign it in, and mail a verification token.

        Until the address is verified (POST /auth/verify-email) the account cannot buy or publish.
        """
        if data.role not in ("attendee", "organizer"):
            raise Invalid("role must be attendee or organizer", field="role")

        def register() -> Account:
            account = services.accounts.register(
                email=data.email,
                username=data.username,
                password=data.password,
                role=data.role,
                first_name=data.first_name,
                last_name=data.last_name,
                phone=data.phone,
            )
            # A queue that is down must not undo the registration: the mail can be asked for again.
            queue_follow_up(lambda: services.actors.send_email.send("verify_email", account.email), "mail")
            return account

        account = await services.command(register, app=services.accounts)
        return await _signed_in(request, services, account, 201)

    @post("/verify-email", operation_id="verifyEmail", exclude_from_auth=True, exclude_from_csrf=True, status_code=200)
    async def verify_email(self, data: VerifyEmailCreate, services: Services) -> EmailVerification:
        """Redeem the token from the verification mail (once, within 24 hours); 422 `invalid_token`
        otherwise. Access tokens minted before say `email_verified: false` until refreshed."""
        user_id = await MailedSecrets(services.settings.jwt_secret).redeem_verification(services.redis, data.token)
        account = await services.command(lambda: services.accounts.mark_verified(user_id), app=services.accounts)
        return EmailVerification(email_verified=account.email_verified)

    @post(
        "/resend-verification",
        operation_id="resendVerification",
        exclude_from_auth=True,
        exclude_from_csrf=True,
        status_code=202,
    )
    async def resend_verification(self, data: EmailCreate, services: Services) -> Accepted:
        """Mail a new verification token if the address belongs to an unverified account.

        Always 202 with the same body: whether an account exists is decided by the mail worker,
        so neither the answer nor its timing tells."""
        email = data.email.strip().lower()
        await services.call(lambda: services.actors.send_email.send("verify_email", email))
        return Accepted(
            status="accepted", detail="if this address belongs to an unverified account, a mail is on its way"
        )

    @post("/login", operation_id="login", exclude_from_auth=True, exclude_from_csrf=True, status_code=200)
    async def login(self, data: LoginCreate, services: Services, request: Request[Any, Any, Any]) -> Response[Tokens]:
        """Exchange e-mail and password for tokens (also set as HttpOnly cookies)."""
        account = await services.call(lambda: services.accounts.authenticate(data.email, data.password))
        return await _signed_in(request, services, account, 200)

    @post("/refresh", operation_id="refreshTokens", exclude_from_auth=True, exclude_from_csrf=True, status_code=200)
    async def refresh(
        self, request: Request[Any, Any, Any], services: Services, data: RefreshCreate | None = None
    ) -> Response[Tokens]:
        """Exchange a refresh token (body, or the `refresh-token` cookie) for a new pair.

        Each refresh token works once: using one again revokes its whole session (401
        `refresh_token_reused`), as does a password change or reset. From the cookie, the
        request must also carry `X-CSRF-Token`.
        """
        if data is not None:
            encoded = data.refresh_token
        else:
            encoded = request.cookies.get(REFRESH_COOKIE, "")
            if not encoded:
                raise InvalidRefreshToken("send the refresh token in the body or the refresh-token cookie")
            require_csrf(request)
        token = _refresh_token(request, encoded)
        sessions = Sessions(services.redis)
        family = str(token.extras.get("sid"))
        try:
            account = await services.call(lambda: services.accounts.get_account(UUID(token.sub)))
        except NotFound:
            account = None
        if account is None or token.extras.get("gen") != account.token_generation:
            await sessions.revoke(family)
            raise InvalidRefreshToken("the session has ended; sign in again")
        jti = await sessions.rotate(account.id, family, str(token.jti))
        return _tokens(request, account, family, jti, 200)

    @post("/logout", operation_id="logout", status_code=200)
    async def logout(
        self, request: Request[Principal, Any, Any], services: Services, data: LogoutCreate | None = None
    ) -> Response[Done]:
        """End the session: its refresh tokens stop working and the auth cookies are cleared.
        The access token itself stays valid until it expires (at most 15 minutes)."""
        families = {request.user.session}
        for encoded in (data.refresh_token if data else None, request.cookies.get(REFRESH_COOKIE)):
            try:
                token = _refresh_token(request, encoded or "")
            except InvalidRefreshToken:
                continue
            if token.sub == str(request.user.id):
                families.add(str(token.extras.get("sid")))
        await Sessions(services.redis).revoke(*families)
        response = Response(Done(status="logged_out"))
        response.delete_cookie(ACCESS_COOKIE)
        response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH)
        response.delete_cookie(CSRF_COOKIE)
        return response

    @get("/me", operation_id="me")
    async def me(self, request: Request[Principal, Any, Any], services: Services) -> User:
        """The signed-in account (never its password hash)."""
        account = await services.call(lambda: services.accounts.get_account(request.user.id))
        return User.of(account)

    @patch("/me", operation_id="updateMe")
    async def update_me(self, data: UserUpdate, request: Request[Principal, Any, Any], services: Services) -> User:
        """Change username, first_name, last_name or phone (fields left out stay as they are)."""
        account = await services.command(
            lambda: services.accounts.update_profile(
                request.user.id,
                username=data.username,
                first_name=data.first_name,
                last_name=data.last_name,
                phone=data.phone,
            ),
            app=services.accounts,
        )
        return User.of(account)

    @post("/change-password", operation_id="changePassword", status_code=200)
    async def change_password(
        self, data: PasswordChange, request: Request[Principal, Any, Any], services: Services
    ) -> Response[Tokens]:
        """Replace the password (422 `wrong_password` if old_password is wrong). Every other
        session's refresh tokens stop working; this session continues with the new pair returned."""
        user = request.user
        account = await services.command(
            lambda: services.accounts.change_password(user.id, data.old_password, data.new_password),
            app=services.accounts,
        )
        # The session this request came from is dead with the old generation; it continues as a new one.
        await Sessions(services.redis).revoke(user.session)
        return await _signed_in(request, services, account, 200)

    @post(
        "/forgot-password",
        operation_id="forgotPassword",
        exclude_from_auth=True,
        exclude_from_csrf=True,
        status_code=202,
    )
    async def forgot_password(self, data: EmailCreate, services: Services) -> Accepted:
        """Mail a 6-digit reset code (15 minutes, single use) if the address has an account.

        Always 202 with the same body, in the same time: the mail worker decides."""
        email = data.email.strip().lower()
        await services.call(lambda: services.actors.send_email.send("password_reset", email))
        return Accepted(status="accepted", detail="if this address has an account, a code is on its way")

    @post(
        "/reset-password",
        operation_id="resetPassword",
        exclude_from_auth=True,
        exclude_from_csrf=True,
        status_code=200,
    )
    async def reset_password(self, data: PasswordReset, services: Services) -> Done:
        """Set a new password with the mailed code; every session ends. 422 `invalid_code` for a
        wrong, used or expired code or an unknown address alike; 5 wrong tries burn the code."""
        secrets = MailedSecrets(services.settings.jwt_secret)
        user_id = await secrets.redeem_reset_code(services.redis, data.email, data.code)
        await services.command(
            lambda: services.accounts.reset_password(user_id, data.new_password), app=services.accounts
        )
        return Done(status="password_reset")

    @get("/csrf", operation_id="getCsrfToken", exclude_from_auth=True)
    async def csrf(self, request: Request[Any, Any, Any]) -> Response[CsrfToken]:
        """Issue the CSRF token (also set as the script-readable `csrf-token` cookie); send it back
        as `X-CSRF-Token` on cookie-authenticated POST/PUT/PATCH/DELETE. An existing valid token
        is returned again, so several tabs share one."""
        config: CSRFConfig = request.app.state.csrf_config
        current = request.cookies.get(config.cookie_name, "")
        token = current if _signed_by_us(config, current) else generate_csrf_token(config.secret)
        cookie = Cookie(
            key=config.cookie_name,
            value=token,
            path=config.cookie_path,
            secure=config.cookie_secure,
            httponly=config.cookie_httponly,
            samesite=config.cookie_samesite,
        )
        return Response(CsrfToken(csrf_token=token), cookies=[cookie])


def _refresh_token(request: Request[Any, Any, Any], encoded: str) -> Token:
    jwt_auth: JWTCookieAuth[Principal, Token] = request.app.state.jwt_auth
    try:
        token = Token.decode(encoded, secret=jwt_auth.token_secret, algorithm=jwt_auth.algorithm)
    except NotAuthorizedException:
        raise InvalidRefreshToken("the refresh token is invalid or has expired") from None
    if token.extras.get("type") != "refresh" or not token.jti or not token.extras.get("sid"):
        raise InvalidRefreshToken("not a refresh token")
    return token


async def _signed_in(
    request: Request[Any, Any, Any], services: Services, account: Account, status: int
) -> Response[Tokens]:
    """Open a new session (refresh-token family) and answer with its first pair of tokens."""
    family, jti = await Sessions(services.redis).open(account.id)
    return _tokens(request, account, family, jti, status)


def _tokens(request: Request[Any, Any, Any], account: Account, family: str, jti: str, status: int) -> Response[Tokens]:
    jwt_auth: JWTCookieAuth[Principal, Token] = request.app.state.jwt_auth
    extras = {
        "type": "access",
        "role": account.role,
        "email": account.email,
        "email_verified": account.email_verified,
        "sid": family,
    }
    access = jwt_auth.create_token(str(account.id), token_extras=extras)
    refresh = jwt_auth.create_token(
        str(account.id),
        token_expiration=REFRESH_TTL,
        token_unique_jwt_id=jti,
        token_extras={"type": "refresh", "sid": family, "gen": account.token_generation},
    )
    secure = bool(jwt_auth.secure)
    access_seconds = int(ACCESS_TTL.total_seconds())
    cookies = [
        Cookie(key=ACCESS_COOKIE, value=access, max_age=access_seconds, httponly=True, secure=secure),
        Cookie(
            key=REFRESH_COOKIE,
            value=refresh,
            max_age=int(REFRESH_TTL.total_seconds()),
            path=REFRESH_COOKIE_PATH,
            httponly=True,
            secure=secure,
        ),
    ]
    bearer = "bearer"  # the OAuth token type, not a secret
    body = Tokens(
        access_token=access, refresh_token=refresh, token_type=bearer, user=User.of(account), expires_in=access_seconds
    )
    return Response(body, status_code=status, cookies=cookies)
