"""The admin's account list follows the accounts' log: after the first look, only the accounts
with new events are loaded again, and what changed (a new account, a role, an erasure) shows at
the next look, in the order the accounts were created."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest

from commands.account_admin import Directory, administer, directory
from commands.accounts import Accounts
from ticketing import Settings, open_accounts

PASSWORD = "directory-pass-123"


@pytest.fixture
def accounts(settings: Settings) -> Iterator[Accounts]:
    app = open_accounts(settings)
    try:
        yield app
    finally:
        app.close()


def new_account(accounts: Accounts) -> str:
    email = f"dir-{uuid4().hex[:10]}@example.com"
    accounts.register(email=email, username=email[:20], password=PASSWORD)
    return email


def test_each_look_loads_only_what_changed_since_the_last(accounts: Accounts) -> None:
    first = [new_account(accounts) for _ in range(3)]
    listed = Directory(accounts)
    everyone = listed.current(accounts)
    emails = [a.email for a in everyone]
    assert emails[-3:] == first
    loaded = listed.loads
    assert loaded >= 3

    assert [a.email for a in listed.current(accounts)] == emails  # nothing new: nothing loaded
    assert listed.loads == loaded

    later = new_account(accounts)
    promoted = everyone[-2]
    administer(accounts, promoted.id, role="organizer")
    erased = everyone[-1]
    accounts.erase(erased.id)
    now = listed.current(accounts)
    assert listed.loads == loaded + 3  # the new account, the promoted one and the erased one
    assert [a.email for a in now] == [*emails[:-1], later]  # order of creation; the erased one gone
    assert {a.id: a.role for a in now}[promoted.id] == "organizer"


def test_the_list_equals_a_fresh_look_at_the_whole_store(accounts: Accounts, settings: Settings) -> None:
    new_account(accounts)
    kept = directory(accounts)
    administer(accounts, kept[-1].id, disabled=True)
    new_account(accounts)
    again = directory(accounts)
    fresh = open_accounts(settings)
    try:
        whole = Directory(fresh).current(fresh)
    finally:
        fresh.close()
    assert [(a.id, a.role, a.disabled) for a in again] == [(a.id, a.role, a.disabled) for a in whole]
    assert again[-2].disabled
