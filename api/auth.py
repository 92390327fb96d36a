"""Authentication (JWT in the `auth-token` cookie or as Bearer), roles, and /auth routes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.security.jwt import JWTCookieAuth, Token

from api.services import Services
from domain.account import Account
from domain.errors import Invalid

ACCESS_TTL = timedelta(minutes=15)
ACCESS_COOKIE = "auth-token"
PUBLIC_PATHS = ["^/health", "^/ready", "^/metrics", "^/schema"]


class Principal(msgspec.Struct, frozen=True):
    """The authenticated caller, taken from the access token's claims."""

    id: UUID
    role: str
    email: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


async def principal_from_token(token: Token, _: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    if token.extras.get("type") != "access":
        return None
    try:
        return Principal(id=UUID(token.sub), role=str(token.extras["role"]), email=str(token.extras["email"]))
    except (KeyError, ValueError):
        return None


def build_jwt_auth(secret: str, secure: bool) -> JWTCookieAuth[Principal, Token]:
    return JWTCookieAuth[Principal, Token](
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
    if token.extras.get("type") != "access":
        return None
    return Principal(id=UUID(token.sub), role=str(token.extras.get("role")), email=str(token.extras.get("email")))


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


# Payloads ------------------------------------------------------------------------------

Email = Annotated[str, msgspec.Meta(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]


class RegisterCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=256)]
    role: str = "attendee"
    first_name: Annotated[str, msgspec.Meta(max_length=100)] = ""
    last_name: Annotated[str, msgspec.Meta(max_length=100)] = ""
    phone: Annotated[str, msgspec.Meta(max_length=40)] = ""


class LoginCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=254)]
    password: Annotated[str, msgspec.Meta(max_length=256)]


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


class AuthController(Controller):
    path = "/auth"
    tags = ["Accounts"]

    @post("/register", operation_id="register", exclude_from_auth=True, status_code=201)
    async def register(
        self, data: RegisterCreate, services: Services, request: Request[Any, Any, Any]
    ) -> Response[Tokens]:
        """Create an attendee or organizer account and sign it in."""
        if data.role not in ("attendee", "organizer"):
            raise Invalid("role must be attendee or organizer", field="role")
        account = await services.command(
            lambda: services.accounts.register(
                email=data.email,
                username=data.username,
                password=data.password,
                role=data.role,
                first_name=data.first_name,
                last_name=data.last_name,
                phone=data.phone,
            ),
            app=services.accounts,
        )
        return _signed_in(request, account, 201)

    @post("/login", operation_id="login", exclude_from_auth=True, status_code=200)
    async def login(self, data: LoginCreate, services: Services, request: Request[Any, Any, Any]) -> Response[Tokens]:
        """Exchange e-mail and password for tokens (also set as HttpOnly cookies)."""
        account = await services.call(lambda: services.accounts.authenticate(data.email, data.password))
        return _signed_in(request, account, 200)

    @post("/logout", operation_id="logout", status_code=200)
    async def logout(self) -> Response[dict[str, str]]:
        """Clear the auth cookies."""
        response = Response({"status": "logged_out"})
        response.delete_cookie(ACCESS_COOKIE)
        response.delete_cookie("refresh-token")
        return response

    @get("/me", operation_id="me")
    async def me(self, request: Request[Principal, Any, Any], services: Services) -> User:
        """The signed-in account (never its password hash)."""
        account = await services.call(lambda: services.accounts.get_account(request.user.id))
        return User.of(account)


def _signed_in(request: Request[Any, Any, Any], account: Account, status: int) -> Response[Tokens]:
    jwt_auth: JWTCookieAuth[Principal, Token] = request.app.state.jwt_auth
    extras = {"role": account.role, "email": account.email, "type": "access"}
    access = jwt_auth.create_token(str(account.id), token_extras=extras)
    refresh = jwt_auth.create_token(
        str(account.id),
        token_expiration=timedelta(days=7),
        token_extras={"type": "refresh", "gen": account.token_generation},
    )
    secure = bool(jwt_auth.secure)
    cookies = [
        Cookie(key=ACCESS_COOKIE, value=access, max_age=int(ACCESS_TTL.total_seconds()), httponly=True, secure=secure),
        Cookie(
            key="refresh-token", value=refresh, max_age=7 * 24 * 3600, path="/api/v1/auth", httponly=True, secure=secure
        ),
    ]
    bearer = "bearer"  # the OAuth token type, not a secret
    body = Tokens(access_token=access, refresh_token=refresh, token_type=bearer, user=User.of(account))
    return Response(body, status_code=status, cookies=cookies)
