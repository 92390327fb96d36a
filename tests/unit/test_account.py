"""The Account aggregate: roles, verification, password changes and the token generation."""

from __future__ import annotations

import pytest

from domain.account import Account, AlreadyVerified
from domain.errors import Conflict, Invalid
from domain.ids import account_id


def an_account(**changes: str) -> Account:
    values = {"email": " Ada@Example.com ", "username": "ada", "password_hash": "h0", "role": "attendee"}
    values.update(changes)
    return Account(**values)


def test_the_id_is_derived_from_the_normalised_email() -> None:
    account = an_account()
    assert account.id == account_id("ada@example.com")
    assert account.email == "ada@example.com"


def test_a_new_account_is_unverified_at_generation_zero() -> None:
    account = an_account()
    assert account.email_verified is False and account.token_generation == 0


def test_unknown_roles_are_refused() -> None:
    with pytest.raises(Invalid):
        an_account(role="superuser")
    account = an_account()
    with pytest.raises(Invalid):
        account.change_role("root")


def test_verifying_twice_is_refused_by_the_aggregate() -> None:
    account = an_account()
    account.verify_email()
    assert account.email_verified
    with pytest.raises(AlreadyVerified):
        account.verify_email()


def test_a_password_change_moves_the_token_generation_on() -> None:
    account = an_account()
    account.change_password("h1")
    assert (account.password_hash, account.token_generation) == ("h1", 1)
    assert account.email_verified is False


def test_a_reset_by_mailed_code_also_proves_the_address() -> None:
    account = an_account()
    account.reset_password("h2")
    assert (account.password_hash, account.token_generation, account.email_verified) == ("h2", 1, True)


def test_profile_updates_keep_a_username() -> None:
    account = an_account()
    account.update_profile(first_name="Ada", last_name="Lovelace", phone="+44", username="  countess ")
    assert (account.first_name, account.last_name, account.phone, account.username) == (
        "Ada",
        "Lovelace",
        "+44",
        "countess",
    )
    with pytest.raises(Invalid):
        account.update_profile(first_name="", last_name="", phone="", username="  ")


def test_the_history_replays_to_the_same_state() -> None:
    account = an_account()
    account.verify_email()
    account.change_password("h1")
    account.reset_password("h2")
    account.update_profile(first_name="A", last_name="L", phone="1", username="al")
    replayed: Account | None = None
    for domain_event in account.collect_events():
        replayed = domain_event.mutate(replayed)
    assert replayed is not None
    assert replayed.__dict__ == account.__dict__


def test_disabling_ends_sessions_and_enabling_reopens_the_account() -> None:
    account = an_account()
    account.set_disabled(True)
    assert account.disabled and account.token_generation == 1
    account.set_disabled(True)  # already disabled: no event, no new generation
    assert account.token_generation == 1
    account.set_disabled(False)
    assert not account.disabled and account.token_generation == 1
    kinds = [type(e).__name__ for e in account.collect_events()]
    assert kinds == ["Registered", "Disabled", "Enabled"]


def test_an_old_account_replays_as_enabled_and_without_payout_account() -> None:
    account = an_account()
    copy = None
    for e in account.collect_events():
        copy = e.mutate(copy)
    assert copy is not None and copy.disabled is False and copy.payout_account == ""


def test_one_payout_account_per_organizer() -> None:
    account = an_account(role="organizer")
    account.link_payout_account("acct_1")
    account.link_payout_account("acct_1")  # the same again: nothing new
    with pytest.raises(Conflict):
        account.link_payout_account("acct_2")
    assert [type(e).__name__ for e in account.collect_events()][1:] == ["PayoutAccountLinked"]
