"""Account: a person who buys, organizes or administers. Accounts registered before erasure
existed have the uuid5 of their e-mail as id (`domain.ids.account_id`); newer ones a random id,
found by e-mail through a keyed index (`commands/privacy.py`), so the id reveals nothing.

The account holds the durable facts of identity: credentials, the verified e-mail address and
profile. `token_generation` is the durable kill switch for sessions: every refresh token carries
the generation it was minted under, and changing or resetting the password moves it on, so every
session opened before stops being renewable. Short-lived secrets (verification tokens, reset
codes, refresh-token families) are not facts worth keeping forever and live outside, with a TTL.
"""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.audit import Audited
from domain.errors import Conflict, Invalid
from domain.ids import account_id

ROLES = ("attendee", "organizer", "admin")


class EmailTaken(Conflict):
    code = "email_taken"


class AlreadyVerified(Conflict):
    code = "email_already_verified"


class Account(Audited):
    @staticmethod
    def create_id(email: str, **_: Any) -> UUID:
        return account_id(email)

    @classmethod
    def open(
        cls,
        account_id: UUID,
        *,
        email: str,
        username: str,
        password_hash: str,
        role: str,
        first_name: str = "",
        last_name: str = "",
        phone: str = "",
    ) -> Account:
        """A new account with the given id (not derived from the e-mail)."""
        account: Account = cls._create(
            cls.Registered, id=account_id, email=email, username=username, password_hash=password_hash,
            role=role, first_name=first_name, last_name=last_name, phone=phone,
        )  # fmt: skip
        return account

    class Registered(Aggregate.Created):
        personal_data: ClassVar[tuple[str, ...]] = ("email", "username", "first_name", "last_name", "phone")
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
        self.erased = False
        self.disabled = False
        self.payout_account = ""

    class RoleChanged(Aggregate.Event):
        role: str

    @event(RoleChanged)
    def change_role(self, role: str) -> None:
        if role not in ROLES:
            raise Invalid(f"unknown role {role!r}", field="role")
        self.role = role

    class Disabled(Aggregate.Event):
        """An admin shut the account: it cannot sign in, and its sessions stop being renewable."""

    class Enabled(Aggregate.Event):
        """An admin opened a disabled account again."""

    def set_disabled(self, disabled: bool) -> None:
        """Disable or enable (a no-op when already so: no event)."""
        if disabled and not self.disabled:
            self._disable()
        elif not disabled and self.disabled:
            self._enable()

    @event(Disabled)
    def _disable(self) -> None:
        self.disabled = True
        self.token_generation += 1

    @event(Enabled)
    def _enable(self) -> None:
        self.disabled = False

    class PayoutAccountLinked(Aggregate.Event):
        """The organizer's Stripe Connect account, where payouts of their paid orders go."""

        payout_account: str

    def link_payout_account(self, payout_account: str) -> None:
        if self.payout_account == payout_account:
            return
        if self.payout_account:
            raise Conflict("a payout account is already linked", code="payout_account_linked")
        self._link_payout_account(payout_account)

    @event(PayoutAccountLinked)
    def _link_payout_account(self, payout_account: str) -> None:
        self.payout_account = payout_account

    class PasswordChanged(Aggregate.Event):
        password_hash: str

    @event(PasswordChanged)
    def change_password(self, password_hash: str) -> None:
        self.password_hash = password_hash
        # Outstanding tokens minted before the change stop being honoured.
        self.token_generation += 1

    class PasswordReset(Aggregate.Event):
        password_hash: str

    def reset_password(self, password_hash: str) -> None:
        """A new password set with a code mailed to the account's address."""
        self._reset_password(password_hash)

    @event(PasswordReset)
    def _reset_password(self, password_hash: str) -> None:
        self.password_hash = password_hash
        self.token_generation += 1
        # The code reached this address, which proves it as well as a verification link would.
        self.email_verified = True

    class EmailVerified(Aggregate.Event):
        pass

    def verify_email(self) -> None:
        if self.email_verified:
            raise AlreadyVerified("the e-mail address is already verified")
        self._verify_email()

    @event(EmailVerified)
    def _verify_email(self) -> None:
        self.email_verified = True

    class ProfileUpdated(Aggregate.Event):
        personal_data: ClassVar[tuple[str, ...]] = ("first_name", "last_name", "phone", "username")
        first_name: str
        last_name: str
        phone: str
        username: str

    def update_profile(self, first_name: str, last_name: str, phone: str, username: str) -> None:
        if not username.strip():
            raise Invalid("username must not be empty", field="username")
        self._update_profile(first_name, last_name, phone, username.strip())

    @event(ProfileUpdated)
    def _update_profile(self, first_name: str, last_name: str, phone: str, username: str) -> None:
        self.first_name = first_name
        self.last_name = last_name
        self.phone = phone
        self.username = username

    class Erased(Aggregate.Event):
        """The person asked to be forgotten (or an admin did it): their key is destroyed, so the
        personal data of every earlier event reads as empty from now on."""

    def erase(self) -> None:
        if not self.erased:
            self._erase()

    @event(Erased)
    def _erase(self) -> None:
        self.erased = True
        self.email = self.username = self.first_name = self.last_name = self.phone = ""
        self.password_hash = ""
        self.token_generation += 1
