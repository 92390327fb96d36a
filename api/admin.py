"""Admin routes (API.md "Admin and organizer extras"): the accounts, featured events, and the
organizer's Stripe Connect onboarding link. The category edits are in `api/categories.py`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, get, patch, post, put
from litestar.params import Parameter

from api.common import Page, PageParam, PageSizeParam, page_of
from api.security import Principal, admin_only, organizers
from api.services import Services
from commands import account_admin
from domain.account import Account
from domain.errors import Invalid

Role = Literal["attendee", "organizer", "admin"]


class AdminAccount(msgspec.Struct):
    id: UUID
    email: str
    username: str
    role: str
    disabled: bool
    email_verified: bool
    created_at: datetime

    @classmethod
    def of(cls, account: Account | account_admin.Listed) -> AdminAccount:
        return cls(
            id=account.id,
            email=account.email,
            username=account.username,
            role=account.role,
            disabled=account.disabled,
            email_verified=account.email_verified,
            created_at=account.created_on,
        )


class AccountChange(msgspec.Struct, forbid_unknown_fields=True):
    role: Role | None = None
    disabled: bool | None = None


def matching(accounts: list[account_admin.Listed], q: str, role: str | None) -> list[account_admin.Listed]:
    """The accounts whose e-mail or username contains `q` (any case), of `role` if given."""
    needle = q.strip().casefold()
    return [
        a
        for a in accounts
        if (role is None or a.role == role)
        and (not needle or needle in a.email.casefold() or needle in a.username.casefold())
    ]


async def list_accounts(services: Services, q: str, role: str | None, page: int, page_size: int) -> Page[AdminAccount]:
    found = matching(await services.call(lambda: account_admin.directory(services.accounts)), q, role)
    start = (page - 1) * page_size
    return page_of([AdminAccount.of(a) for a in found[start : start + page_size]], len(found), page, page_size)


async def administer(
    services: Services, actor: Principal, account_id: UUID, role: str | None, disabled: bool | None
) -> AdminAccount:
    """Change an account's role or disabled flag; an admin cannot lock themselves out."""
    if account_id == actor.id and (disabled or (role is not None and role != "admin")):
        raise Invalid("you cannot disable or demote your own account", field="disabled" if disabled else "role")
    account = await services.command(
        lambda: account_admin.administer(services.accounts, account_id, role=role, disabled=disabled),
        actor=actor.id,
        app=services.accounts,
    )
    return AdminAccount.of(account)


class AdminAccountsController(Controller):
    path = "/admin/accounts"
    tags = ["Admin"]

    @get("/", operation_id="listAccounts", guards=[admin_only])
    async def list(
        self,
        services: Services,
        q: Annotated[str, Parameter(max_length=200)] = "",
        role: Role | None = None,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
    ) -> Page[AdminAccount]:
        """Accounts, oldest first; `q` matches part of the e-mail or username, `role` filters."""
        return await list_accounts(services, q, role, page, page_size)

    @get("/{account_id:uuid}", operation_id="getAccount", guards=[admin_only])
    async def show(self, account_id: UUID, services: Services) -> AdminAccount:
        """One account (404 for an unknown or erased id)."""
        return AdminAccount.of(await services.call(lambda: services.accounts.get_account(account_id)))

    @patch("/{account_id:uuid}", operation_id="administerAccount", guards=[admin_only])
    async def change(
        self, account_id: UUID, data: AccountChange, request: Request[Principal, Any, Any], services: Services
    ) -> AdminAccount:
        """Change `role` and/or `disabled`. A disabled account cannot sign in or refresh its
        session; its refresh tokens stop working at once."""
        return await administer(services, request.user, account_id, data.role, data.disabled)


class Featuring(msgspec.Struct, forbid_unknown_fields=True):
    featured: bool


class Featured(msgspec.Struct):
    event_id: UUID
    featured: bool


async def feature_event(services: Services, user: Principal, event_id: UUID, featured: bool) -> Featured:
    """Feature a show on the home page (first, and in `GET /events?featured=true`), or stop."""
    show = await services.command(lambda: services.boxoffice.feature_event(event_id, featured), actor=user.id)
    return Featured(show.id, show.featured)


class AdminEventsController(Controller):
    path = "/admin/events"
    tags = ["Admin"]

    @put("/{event_id:uuid}/featured", operation_id="featureEvent", guards=[admin_only], status_code=200)
    async def feature(
        self, event_id: UUID, data: Featuring, request: Request[Principal, Any, Any], services: Services
    ) -> Featured:
        """Feature a published or draft show on the home page, or stop (`{"featured": false}`);
        409 for a cancelled one, 404 for an unknown id."""
        return await feature_event(services, request.user, event_id, data.featured)


class OnboardingLink(msgspec.Struct):
    url: str
    account: str


class PayoutController(Controller):
    path = "/organizer/stripe"
    tags = ["Organizer"]

    @post("/onboarding-link", operation_id="stripeOnboardingLink", guards=[organizers], status_code=200)
    async def onboarding_link(self, request: Request[Principal, Any, Any], services: Services) -> OnboardingLink:
        """Create the organizer's Stripe Connect (express) account if there is none, and
        return a link to Stripe's onboarding for it (single use, short-lived: ask again)."""
        user = request.user
        account = await services.call(lambda: services.accounts.get_account(user.id))
        back = f"{str(request.base_url).rstrip('/')}/organizer"
        payout, url = await services.call(
            lambda: services.boxoffice.payout_onboarding(user.id, account.email, account.payout_account, back)
        )
        if payout != account.payout_account:
            # Stripe answers the same account for the same idempotency key, so a race links one.
            await services.command(
                lambda: account_admin.link_payout_account(services.accounts, user.id, payout),
                actor=user.id,
                app=services.accounts,
            )
        return OnboardingLink(url=url, account=payout)
