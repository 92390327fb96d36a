"""Signing in and out of the web pages: the session is the API's own pair of cookies (the
access token as `auth-token`, the refresh token for /api/v1/auth), set by the same code as
POST /api/v1/auth/login and /register."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post

from api.accounts import PasswordReset, RegisterCreate, register_account, signed_in
from api.limits import FailedLogins, address_of
from api.security import ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE, REFRESH_COOKIE_PATH
from api.services import Services
from api.web.common import FORM, error_status, first, form_of, over_limit, render, safe_next, see_other, user_of
from commands.accounts import BadCredentials, InvalidCode, MailedSecrets, Sessions
from domain.account import Account
from domain.errors import DomainError


class SessionController(Controller):
    path = "/"
    include_in_schema = False

    @get("/login", exclude_from_auth=True)
    async def login_page(self, request: Request[Any, Any, Any], next: str = "/") -> Response[Any]:
        return render(request, "login.html", next=safe_next(next), error="", email="")

    @post("/login", exclude_from_auth=True, opt=FORM, status_code=303)
    async def login(self, request: Request[Any, Any, Any], services: Services) -> Response[Any]:
        fields = await form_of(request)
        email, password, target = first(fields, "email", 320), first(fields, "password", 200), first(fields, "next")
        failures: FailedLogins | None = request.app.state.get("failed_logins")
        try:
            if failures is not None:
                await failures.check(services.redis, request.scope, email)
            account = await services.call(lambda: services.accounts.authenticate(email, password))
        except BadCredentials:
            if failures is not None:
                await failures.failed(services.redis, request.scope, email)
            return render(request, "login.html", status=401, next=safe_next(target), email=email,
                          error="Wrong e-mail address or password.")  # fmt: skip
        except DomainError as error:
            return render(request, "login.html", status=error_status(error), next=safe_next(target), email=email,
                          error=str(error))  # fmt: skip
        return await _session(request, services, account, safe_next(target))

    @get("/register", exclude_from_auth=True)
    async def register_page(self, request: Request[Any, Any, Any], next: str = "/") -> Response[Any]:
        return render(request, "register.html", next=safe_next(next), error="", values={})

    @post("/register", exclude_from_auth=True, opt=FORM, status_code=303)
    async def register(self, request: Request[Any, Any, Any], services: Services) -> Response[Any]:
        fields = await form_of(request)
        values = {name: first(fields, name, 320) for name in ("email", "username", "first_name", "last_name", "role")}
        password, target = first(fields, "password", 200), safe_next(first(fields, "next"))
        role = values["role"] if values["role"] in ("attendee", "organizer") else "attendee"
        refusal = await over_limit(request, services, "register", address_of(request.scope))
        if refusal is not None:
            return render(request, "register.html", status=429, next=target, values=values, error=refusal)

        try:
            data = msgspec.convert({**values, "role": role, "password": password}, RegisterCreate)
        except msgspec.ValidationError as invalid:
            return render(request, "register.html", status=422, next=target, values=values,
                          error=f"Please check the form: {invalid}")  # fmt: skip

        try:
            account = await register_account(services, data)
        except DomainError as error:
            return render(request, "register.html", status=error_status(error), next=target, values=values,
                          error=str(error))  # fmt: skip
        return await _session(request, services, account, target)

    @get("/reset", exclude_from_auth=True)
    async def reset_page(self, request: Request[Any, Any, Any], email: str = "") -> Response[Any]:
        return render(request, "reset.html", email=email[:254], sent=False, error="")

    @post("/reset/code", exclude_from_auth=True, opt=FORM, status_code=200)
    async def send_code(self, request: Request[Any, Any, Any], services: Services) -> Response[Any]:
        """Mail a reset code, as POST /api/v1/auth/forgot-password (the same answer whether or not
        the address has an account; the same rate limit)."""
        fields = await form_of(request)
        email = first(fields, "email", 254).lower()
        refusal = await over_limit(request, services, "forgotPassword", address_of(request.scope))
        if refusal is not None:
            return render(request, "reset.html", status=429, email=email, sent=False, error=refusal)
        if email:
            await services.call(lambda: services.tasks.queue_email("password_reset", email))
        return render(request, "reset.html", email=email, sent=True, error="")

    @post("/reset", exclude_from_auth=True, opt=FORM, status_code=303)
    async def reset(self, request: Request[Any, Any, Any], services: Services) -> Response[Any]:
        """Set a new password with the mailed code (as POST /api/v1/auth/reset-password), then sign in."""
        fields = await form_of(request)
        email = first(fields, "email", 254)
        try:
            data = msgspec.convert(
                {"email": email, "code": first(fields, "code", 20), "new_password": first(fields, "new_password", 256)},
                PasswordReset,
            )
            found = await services.call(lambda: services.accounts.lookup(data.email))
            user_id = await MailedSecrets(services.settings.jwt_secret).redeem_reset_code(
                services.redis, found, data.code
            )
            account = await services.command(
                lambda: services.accounts.reset_password(user_id, data.new_password),
                app=services.accounts,
                actor=user_id,
            )
        except msgspec.ValidationError as invalid:
            return render(request, "reset.html", status=422, email=email, sent=True, error=f"Please check: {invalid}")
        except InvalidCode:
            return render(request, "reset.html", status=422, email=email, sent=True,
                          error="The code is wrong, used or expired.")  # fmt: skip
        except DomainError as error:
            return render(request, "reset.html", status=error_status(error), email=email, sent=True, error=str(error))
        return await _session(request, services, account, "/")

    @post("/logout", exclude_from_auth=True, opt=FORM, status_code=303)
    async def logout(self, request: Request[Any, Any, Any], services: Services) -> Response[Any]:
        await form_of(request)
        user = user_of(request)
        if user is not None and user.session:
            await Sessions(services.redis).revoke(user.session)
        response = see_other("/")
        response.delete_cookie(ACCESS_COOKIE)
        response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH)
        response.delete_cookie(CSRF_COOKIE)
        return response


async def _session(request: Request[Any, Any, Any], services: Services, account: Account, target: str) -> Response[Any]:
    """303 to `target` with the new session's cookies."""
    tokens = await signed_in(request, services, account, 200)
    return see_other(target, cookies=list(tokens.cookies))
