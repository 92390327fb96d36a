"""Erasure of a person (API.md "Privacy"): `DELETE /auth/me` for oneself, with the password;
`POST /admin/accounts/{id}/erase` for an admin. What erasure does is `commands/erasure.py`."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, post

from api.security import ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE, REFRESH_COOKIE_PATH, Principal, admin_only
from api.services import Services
from commands.accounts import Sessions
from commands.erasure import erase_person


class ErasureCreate(msgspec.Struct, forbid_unknown_fields=True):
    password: Annotated[str, msgspec.Meta(max_length=1024)]


class Erased(msgspec.Struct):
    status: str
    account_id: UUID


class MyErasureController(Controller):
    path = "/auth/me"
    tags = ["Accounts"]

    @delete("/", operation_id="eraseMe", status_code=202)
    async def erase_me(
        self, data: ErasureCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Response[Erased]:
        """Erase the signed-in account (422 `wrong_password` if the password is wrong): its
        personal data becomes unreadable everywhere; its orders and tickets stay for the
        organizers' books, without a name. The address can register again. Signs out."""
        user = request.user
        await services.command(
            lambda: erase_person(services.accounts, services.boxoffice, user.id, password=data.password), actor=user.id
        )
        await Sessions(services.redis).revoke(user.session)
        response = Response(Erased(status="erased", account_id=user.id), status_code=202)
        response.delete_cookie(ACCESS_COOKIE)
        response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH)
        response.delete_cookie(CSRF_COOKIE)
        return response


class AccountErasureController(Controller):
    path = "/admin/accounts"
    tags = ["Accounts"]

    @post("/{account_id:uuid}/erase", operation_id="eraseAccount", guards=[admin_only], status_code=202)
    async def erase(self, account_id: UUID, request: Request[Principal, Any, Any], services: Services) -> Erased:
        """Erase any account (admin), as `DELETE /auth/me` does; 404 for an unknown id."""
        await services.command(
            lambda: erase_person(services.accounts, services.boxoffice, account_id), actor=request.user.id
        )
        return Erased(status="erased", account_id=account_id)
