"""What an admin does to accounts (api/admin.py), and the organizer's payout account: kept apart
from `commands/accounts.py` (registration, credentials, sessions)."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.sql import SQL, Identifier

from commands.accounts import Accounts
from domain.account import Account


@dataclass(frozen=True, slots=True)
class Listed:
    """What the admin's list shows of an account (a few hundred bytes, where the aggregate with
    its password hash and personal data takes several times that)."""

    id: UUID
    email: str
    username: str
    role: str
    disabled: bool
    email_verified: bool
    created_on: datetime

    @classmethod
    def of(cls, account: Account) -> Listed:
        return cls(account.id, account.email, account.username, account.role, account.disabled,
                   account.email_verified, account.created_on)  # fmt: skip


def directory(accounts: Accounts) -> list[Listed]:
    """Every account not erased, oldest first (the admin's list). Personal data is sealed in the
    store, so the list cannot be filtered in SQL: it is kept in memory per application and
    brought up to date from the accounts' log at each look (`Directory`)."""
    with _DIRECTORIES_LOCK:
        found = _DIRECTORIES.get(accounts)
        if found is None:
            found = _DIRECTORIES[accounts] = Directory(accounts)
    return found.current(accounts)


class Directory:
    """The accounts, each as of its last event: at the first look all of them are loaded (one
    query for the ids, one for their events); after that only the accounts with events past the
    position last seen (a new account, a role changed, an erasure). Before, every look loaded
    every account. The event store hands out positions under its table lock, in commit order,
    so nothing committed later can appear behind the position already read."""

    def __init__(self, accounts: Accounts) -> None:
        self.position = 0
        self.loads = 0  # accounts loaded in all (tests)
        self._by_id: dict[UUID, Listed] = {}  # in the order the accounts were created
        self._lock = threading.Lock()
        recorder: Any = accounts.recorder
        self._changed = SQL(
            "SELECT originator_id, min(notification_id) AS first, max(notification_id) AS last FROM {}.{} "
            "WHERE notification_id > %s GROUP BY originator_id ORDER BY first"
        ).format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))

    def current(self, accounts: Accounts) -> list[Listed]:
        """The list as of now (the application is passed in, not kept: the directories are
        weakly keyed by it)."""
        recorder: Any = accounts.recorder
        with self._lock:
            with recorder.datastore.get_connection() as conn:
                rows = conn.execute(self._changed, (self.position,)).fetchall()
            if rows:
                ids = [row["originator_id"] for row in rows]
                found = accounts.load_many(ids)
                self.loads += len(ids)
                for account_id in ids:
                    account = found.get(account_id)
                    if isinstance(account, Account) and not account.erased:
                        self._by_id[account_id] = Listed.of(account)  # a known account keeps its place
                    else:
                        self._by_id.pop(account_id, None)
                self.position = max(row["last"] for row in rows)
            return list(self._by_id.values())


_DIRECTORIES: weakref.WeakKeyDictionary[Accounts, Directory] = weakref.WeakKeyDictionary()
_DIRECTORIES_LOCK = threading.Lock()


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
