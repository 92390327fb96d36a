"""What an admin does to accounts (api/admin.py), and the organizer's payout account: kept apart
from `commands/accounts.py` (registration, credentials, sessions)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.sql import SQL, Identifier

from commands.accounts import Accounts
from domain.account import Account


def directory(accounts: Accounts) -> list[Account]:
    """Every account not erased, oldest first (for the admin's list: one query for the ids, one
    for their events; personal data is sealed in the store, so it is filtered here, not in SQL)."""
    recorder: Any = accounts.recorder
    query = SQL("SELECT originator_id FROM {}.{} WHERE originator_version = 1 ORDER BY notification_id").format(
        Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
    )
    with recorder.datastore.get_connection() as conn:
        ids = [row["originator_id"] for row in conn.execute(query).fetchall()]
    found = accounts.load_many(ids)
    return [a for i in ids if isinstance(a := found.get(i), Account) and not a.erased]


def administer(accounts: Accounts, user_id: UUID, *, role: str | None = None, disabled: bool | None = None) -> Account:
    """An admin's change of role and/or disabled flag (None leaves it as it is)."""

    def change(account: Account) -> None:
        if role is not None and role != account.role:
            account.change_role(role)
        if disabled is not None:
            account.set_disabled(disabled)

    return _change(accounts, user_id, change)


def link_payout_account(accounts: Accounts, user_id: UUID, payout_account: str) -> Account:
    """Record the organizer's Stripe Connect account (the same one again changes nothing)."""
    return _change(accounts, user_id, lambda account: account.link_payout_account(payout_account))


def _change(accounts: Accounts, user_id: UUID, change: Any) -> Account:
    def attempt() -> Account:
        account = accounts.get_account(user_id)
        change(account)
        accounts.save(account)
        return account

    return accounts.retrying(attempt)
