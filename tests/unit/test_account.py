"""The Account aggregate: roles, verification, password changes and the token generation."""

from __future__ import annotations

import pytest

from domain.account import Account, AlreadyVerified
from domain.errors import Invalid
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
