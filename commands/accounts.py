"""The Accounts application: registration, credentials and roles."""

from __future__ import annotations

from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventsourcing.persistence import IntegrityError

from commands.base import BaseApplication
from domain.account import Account, EmailTaken
from domain.errors import DomainError, Invalid, NotFound
from domain.ids import account_id


class BadCredentials(DomainError):
    """Wrong e-mail or password; deliberately the same message for both (401)."""

    code = "invalid_credentials"


MIN_PASSWORD = 8


class Accounts(BaseApplication):
    name = "accounts"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env=env)
        self.hasher = PasswordHasher()
        # Verifying against this when the account does not exist keeps login timing flat.
        self._dummy_hash = self.hasher.hash("not-a-real-password")

    def register(
        self,
        *,
        email: str,
        username: str,
        password: str,
        role: str = "attendee",
        first_name: str = "",
        last_name: str = "",
        phone: str = "",
    ) -> Account:
        if len(password) < MIN_PASSWORD:
            raise Invalid(f"password must have at least {MIN_PASSWORD} characters", field="password")
        if role not in ("attendee", "organizer"):
            raise Invalid("role must be attendee or organizer", field="role")
        account = Account(
            email=email,
            username=username.strip(),
            password_hash=self.hasher.hash(password),
            role=role,
            first_name=first_name,
            last_name=last_name,
            phone=phone,
        )
        try:
            self.save(account)
        except IntegrityError:
            raise EmailTaken("an account with this e-mail already exists", field="email") from None
        return account

    def authenticate(self, email: str, password: str) -> Account:
        try:
            account = self.load(account_id(email), "account", Account)
        except NotFound:
            self._verify(self._dummy_hash, password)
            raise BadCredentials("invalid e-mail or password") from None
        if not self._verify(account.password_hash, password):
            raise BadCredentials("invalid e-mail or password")
        return account

    def get_account(self, user_id: UUID) -> Account:
        return self.load(user_id, "account", Account)

    def ensure_admin(self, *, email: str, password: str, username: str) -> Account:
        """Create an admin account, or promote an existing one (used by the CLI)."""
        try:
            account = self.load(account_id(email), "account", Account)
        except NotFound:
            account = Account(
                email=email,
                username=username,
                password_hash=self.hasher.hash(password),
                role="admin",
            )
            account.verify_email()
        else:
            if account.role != "admin":
                account.change_role("admin")
            account.change_password(self.hasher.hash(password))
        self.save(account)
        return account

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
