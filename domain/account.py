"""Account: a person who buys, organizes or administers. Id is uuid5 of the e-mail."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import Conflict, Invalid
from domain.ids import account_id

ROLES = ("attendee", "organizer", "admin")


class EmailTaken(Conflict):
    code = "email_taken"


class Account(Aggregate):
    @staticmethod
    def create_id(email: str, **_: Any) -> UUID:
        return account_id(email)

    class Registered(Aggregate.Created):
        email: str
        username: str
        password_hash: str
        role: str
        first_name: str
        last_name: str
        phone: str

    @event(Registered)
    def __init__(
        self,
        email: str,
        username: str,
        password_hash: str,
        role: str,
        first_name: str = "",
        last_name: str = "",
        phone: str = "",
    ) -> None:
        if role not in ROLES:
            raise Invalid(f"unknown role {role!r}", field="role")
        self.email = email.strip().lower()
        self.username = username
        self.password_hash = password_hash
        self.role = role
        self.first_name = first_name
        self.last_name = last_name
        self.phone = phone
        self.email_verified = False
        self.token_generation = 0

    class RoleChanged(Aggregate.Event):
        role: str

    @event(RoleChanged)
    def change_role(self, role: str) -> None:
        if role not in ROLES:
            raise Invalid(f"unknown role {role!r}", field="role")
        self.role = role

    class PasswordChanged(Aggregate.Event):
        password_hash: str

    @event(PasswordChanged)
    def change_password(self, password_hash: str) -> None:
        self.password_hash = password_hash
        # Outstanding tokens minted before the change stop being honoured.
        self.token_generation += 1

    class EmailVerified(Aggregate.Event):
        pass

    @event(EmailVerified)
    def verify_email(self) -> None:
        self.email_verified = True

    class ProfileUpdated(Aggregate.Event):
        first_name: str
        last_name: str
        phone: str

    @event(ProfileUpdated)
    def update_profile(self, first_name: str, last_name: str, phone: str) -> None:
        self.first_name = first_name
        self.last_name = last_name
        self.phone = phone
