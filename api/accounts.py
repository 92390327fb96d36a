"""Accounts: the /auth routes (register, verify, sign in and out, refresh, profile, passwords,
CSRF token). How tokens and CSRF work is described in `api/security.py`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, cast
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.csrf import generate_csrf_token
from litestar.security.jwt import JWTCookieAuth, Token

from api.errors import domain_error_parts
from api.limits import FailedLogins
from api.security import (
    ACCESS_COOKIE,
    ACCESS_TTL,
    CSRF_COOKIE,
    REFRESH_COOKIE,
    REFRESH_COOKIE_PATH,
    Principal,
    csrf_cookie,
    require_csrf,
    signed_by_us,
)
from api.services import Services, queue_follow_up
from commands.accounts import REFRESH_TTL, BadCredentials, InvalidRefreshToken, MailedSecrets, Sessions
from domain.account import Account
from domain.errors import Invalid, NotFound

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


async def register_account(services: Services, data: RegisterCreate) -> Account:
    """Create the account (JSON route and sign-up page alike) and queue its verification mail."""

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
        queue_follow_up(lambda: services.tasks.queue_email("verify_email", account.email), "mail")
        return account

    account: Account = await services.command(register, app=services.accounts, actor=None)
    return account


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

        account = await register_account(services, data)
        return await signed_in(request, services, account, 201)

    @post("/verify-email", operation_id="verifyEmail", exclude_from_auth=True, exclude_from_csrf=True, status_code=200)
    async def verify_email(self, data: VerifyEmailCreate, services: Services) -> EmailVerification:
        """Redeem the token from the verification mail (once, within 24 hours); 422 `invalid_token`
        otherwise. Access tokens minted before say `email_verified: false` until refreshed."""
        user_id = await MailedSecrets(services.settings.jwt_secret).redeem_verification(services.redis, data.token)
        account = await services.command(
            lambda: services.accounts.mark_verified(user_id), app=services.accounts, actor=user_id
        )
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
        await services.call(lambda: services.tasks.queue_email("verify_email", email))
        return Accepted(
            status="accepted", detail="if this address belongs to an unverified account, a mail is on its way"
        )

    @post("/login", operation_id="login", exclude_from_auth=True, exclude_from_csrf=True, status_code=200)
    async def login(self, data: LoginCreate, services: Services, request: Request[Any, Any, Any]) -> Response[Tokens]:
        """Exchange e-mail and password for tokens (also set as HttpOnly cookies). Only failed
        attempts spend the login rate limit (per address and per e-mail, see api/limits.py)."""
        failures: FailedLogins | None = request.app.state.get("failed_logins")
        headers = await failures.check(services.redis, request.scope, data.email) if failures else {}
        try:
            account = await services.call(lambda: services.accounts.authenticate(data.email, data.password))
        except BadCredentials as error:
            if failures is None:
                raise
            headers = await failures.failed(services.redis, request.scope, data.email)
            status, body, _ = domain_error_parts(error)
            return cast("Response[Tokens]", Response(body, status_code=status, headers=headers))
        answer = await signed_in(request, services, account, 200)
        answer.headers.update(headers)
        return answer

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
        if account is None or account.disabled or token.extras.get("gen") != account.token_generation:
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
            actor=request.user.id,
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
            actor=user.id,
        )
        # The session this request came from is dead with the old generation; it continues as a new one.
        await Sessions(services.redis).revoke(user.session)
        return await signed_in(request, services, account, 200)

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
        await services.call(lambda: services.tasks.queue_email("password_reset", email))
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
        found = await services.call(lambda: services.accounts.lookup(data.email))
        user_id = await secrets.redeem_reset_code(services.redis, found, data.code)
        await services.command(
            lambda: services.accounts.reset_password(user_id, data.new_password), app=services.accounts, actor=user_id
        )
        return Done(status="password_reset")

    @get("/csrf", operation_id="getCsrfToken", exclude_from_auth=True)
    async def csrf(self, request: Request[Any, Any, Any]) -> Response[CsrfToken]:
        """Issue the CSRF token (also set as the script-readable `csrf-token` cookie); send it back
        as `X-CSRF-Token` on cookie-authenticated POST/PUT/PATCH/DELETE. An existing valid token
        is returned again, so several tabs share one."""
        config: CSRFConfig = request.app.state.csrf_config
        current = request.cookies.get(config.cookie_name, "")
        token = current if signed_by_us(config, current) else generate_csrf_token(config.secret)
        return Response(CsrfToken(csrf_token=token), cookies=[csrf_cookie(config, token)])


def _refresh_token(request: Request[Any, Any, Any], encoded: str) -> Token:
    jwt_auth: JWTCookieAuth[Principal, Token] = request.app.state.jwt_auth
    try:
        token = Token.decode(encoded, secret=jwt_auth.token_secret, algorithm=jwt_auth.algorithm)
    except NotAuthorizedException:
        raise InvalidRefreshToken("the refresh token is invalid or has expired") from None
    if token.extras.get("type") != "refresh" or not token.jti or not token.extras.get("sid"):
        raise InvalidRefreshToken("not a refresh token")
    return token


async def signed_in(
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
