"""Constructing the applications from settings, creating the schema, and admin accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from commands.accounts import Accounts
from commands.boxoffice import BoxOffice
from commands.inbox import Inbox
from commands.payments import PaymentPolicy
from commands.payments_gateway import StripeGateway
from commands.sales import SalesPolicy

if TYPE_CHECKING:
    from ticketing import Settings


def sales_policy(settings: Settings) -> SalesPolicy:
    return SalesPolicy(
        hold_seconds=settings.hold_seconds,
        fee_basis_points=round(float(settings.service_fee_percent) * 100),
        fee_fixed=settings.service_fee_fixed,
    )


def open_boxoffice(settings: Settings, *, create_tables: bool = False) -> BoxOffice:
    app = BoxOffice(env=settings.eventsourcing_env(create_tables=create_tables))
    app.policy = sales_policy(settings)
    app.payment_policy = PaymentPolicy(
        payment_hold_seconds=settings.payment_hold_seconds,
        max_hold_seconds=settings.max_hold_seconds,
        refund_cutoff_hours=settings.refund_cutoff_hours,
    )
    if settings.stripe_api_key:
        app.gateway = StripeGateway(settings.stripe_api_key, settings.stripe_api_base)
    return app


def open_inbox(settings: Settings, *, create_tables: bool = False) -> Inbox:
    return Inbox(env=settings.eventsourcing_env(create_tables=create_tables))


def open_accounts(settings: Settings, *, create_tables: bool = False) -> Accounts:
    return Accounts(env=settings.eventsourcing_env(create_tables=create_tables))


def migrate(settings: Settings) -> None:
    """Create the event stores and every read model's tables (idempotent)."""
    from projections.runner import READ_MODELS, open_view

    apps = (
        open_boxoffice(settings, create_tables=True),
        open_accounts(settings, create_tables=True),
        open_inbox(settings, create_tables=True),
    )
    for app in apps:
        app.close()
    for projection_class in READ_MODELS.values():
        open_view(settings, projection_class, create_tables=True).datastore.close()


def create_admin(settings: Settings, *, email: str, password: str, username: str) -> None:
    accounts = open_accounts(settings)
    try:
        accounts.ensure_admin(email=email, password=password, username=username)
    finally:
        accounts.close()
