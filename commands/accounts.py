"""The Accounts application (registration, credentials, roles, profile) and the short-lived
secrets around it that live in Redis rather than in the event store.

Durable facts are Account events: registered, e-mail verified, password changed or reset,
profile updated. Secrets that only matter for minutes or days (refresh-token families, e-mail
verification tokens, password-reset codes) are kept in Redis with a TTL, so they expire on their
own and nothing accumulates: they are stored only as keyed digests (HMAC-SHA256), never in
the clear, and every redemption is one atomic Redis operation, which makes them single-use even
with many API processes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventsourcing.persistence import IntegrityError
from psycopg.errors import UniqueViolation
from redis import Redis as SyncRedis
from redis.asyncio import Redis as AsyncRedis

from commands.base import BaseApplication
from commands.privacy import EmailIndex, blank_plain_text
from domain.account import Account, EmailTaken
from domain.errors import DomainError, Invalid, NotFound
from domain.ids import account_id

MIN_PASSWORD = 8
REFRESH_TTL = timedelta(days=7)
VERIFICATION_TTL = timedelta(hours=24)
RESET_CODE_TTL = timedelta(minutes=15)
RESET_CODE_ATTEMPTS = 5


class NotAuthenticated(DomainError):
    """The caller could not be authenticated (401)."""

    code = "not_authenticated"


class BadCredentials(NotAuthenticated):
    """Wrong e-mail or password; deliberately the same message for both (401)."""

    code = "invalid_credentials"


class InvalidRefreshToken(NotAuthenticated):
    code = "invalid_refresh_token"


class RefreshTokenReused(NotAuthenticated):
    """A refresh token was presented a second time: its whole family has been revoked."""

    code = "refresh_token_reused"


class AccountDisabled(NotAuthenticated):
    """The password was right but an admin has disabled the account (401)."""

    code = "account_disabled"


class WrongPassword(Invalid):
    code = "wrong_password"


class InvalidToken(Invalid):
    """An e-mail verification token that is unknown, used or expired (one message for all)."""

    code = "invalid_token"


class InvalidCode(Invalid):
    """A reset code that is wrong, used, expired or burnt, or an unknown e-mail (one message for all)."""

    code = "invalid_code"


def _check_password(password: str, field: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"password must have at least {MIN_PASSWORD} characters", field=field)


class Accounts(BaseApplication):
    name = "accounts"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env=env)
        self.hasher = PasswordHasher()
        # Verifying against this when the account does not exist keeps login timing flat.
        self._dummy_hash = self.hasher.hash("not-a-real-password")
        self.emails = EmailIndex(self.recorder.datastore, self.secret)  # type: ignore[attr-defined]

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
        _check_password(password, "password")
        if role not in ("attendee", "organizer"):
            raise Invalid("role must be attendee or organizer", field="role")
        return self._open_account(
            email=email,
            username=username.strip(),
            password_hash=self.hasher.hash(password),
            role=role,
            first_name=first_name,
            last_name=last_name,
            phone=phone,
        )

    def _open_account(self, **fields: Any) -> Account:
        """A new account under a new id, indexed by its e-mail's keyed hash in the same
        transaction as its first event: two registrations of one address cannot both succeed."""
        email: str = fields["email"]
        if self.lookup(email) is not None:  # also an account from before the index existed
            raise EmailTaken("an account with this e-mail already exists", field="email")
        account = Account.open(uuid4(), **fields)
        datastore: Any = self.recorder.datastore  # type: ignore[attr-defined]
        try:
            with datastore.get_connection() as conn, conn.transaction():
                self.emails.add(conn, email, account.id)
                self.save(account, connection=conn)
        except (UniqueViolation, IntegrityError):
            raise EmailTaken("an account with this e-mail already exists", field="email") from None
        return account

    def lookup(self, email: str) -> UUID | None:
        """The id of the (not erased) account registered with this e-mail, if any."""
        found = self.emails.find(email)
        if found is not None:
            return found
        # Accounts registered before the index: their id is the uuid5 of the address.
        try:
            legacy = self.load(account_id(email), "account", Account)
        except NotFound:
            return None
        return None if legacy.erased else legacy.id

    def authenticate(self, email: str, password: str) -> Account:
        user_id = self.lookup(email)
        account = None if user_id is None else self.find_by_id(user_id)
        if account is None:
            self._verify(self._dummy_hash, password)
            raise BadCredentials("invalid e-mail or password")
        if not self._verify(account.password_hash, password):
            raise BadCredentials("invalid e-mail or password")
        if account.disabled:
            raise AccountDisabled("this account has been disabled")
        return account

    def get_account(self, user_id: UUID) -> Account:
        """The account, unless it does not exist or was erased (`NotFound`)."""
        account = self.load(user_id, "account", Account)
        if account.erased:
            raise NotFound("account not found", code="account_not_found")
        return account

    def find_by_id(self, user_id: UUID) -> Account | None:
        try:
            return self.get_account(user_id)
        except NotFound:
            return None

    def find(self, email: str) -> Account | None:
        """The account registered with this e-mail, if any (for the mail worker, never the API)."""
        user_id = self.lookup(email)
        return None if user_id is None else self.find_by_id(user_id)

    def erase(self, user_id: UUID, password: str | None = None) -> None:
        """Record the erasure of an account and take its address out of the index (idempotent).
        With `password` (the person themselves) it must be the account's. The key is destroyed
        by `shred`, once the erasure is recorded everywhere (`commands/erasure.py`)."""
        account = self.load(user_id, "account", Account)
        if password is not None and not account.erased and not self._verify(account.password_hash, password):
            raise WrongPassword("the password is not correct", field="password")

        def erase(account: Account) -> None:
            account.erase()

        if not account.erased:
            self._change(user_id, erase, erased_too=True)
        self.emails.remove(user_id)
        blank_plain_text(self.recorder, user_id)

    def shred(self, user_id: UUID) -> None:
        """Destroy the person's key: their personal data in the store is unreadable from now on."""
        vault = getattr(self.mapper, "vault", None)
        if vault is not None:
            vault.shred(user_id)

    def mark_verified(self, user_id: UUID) -> Account:
        """Record that the account's e-mail address is verified (idempotent)."""

        def verify(account: Account) -> None:
            if not account.email_verified:
                account.verify_email()

        return self._change(user_id, verify)

    def change_password(self, user_id: UUID, old_password: str, new_password: str) -> Account:
        """Replace the password after checking the current one; every refresh token minted
        before stops working (the account's token generation moves on)."""
        _check_password(new_password, "new_password")
        account = self.get_account(user_id)
        if not self._verify(account.password_hash, old_password):
            raise WrongPassword("the current password is not correct", field="old_password")
        new_hash = self.hasher.hash(new_password)
        return self._change(user_id, lambda account: account.change_password(new_hash))

    def reset_password(self, user_id: UUID, new_password: str) -> Account:
        """Set a new password once a mailed reset code has been redeemed (the caller checks it)."""
        _check_password(new_password, "new_password")
        new_hash = self.hasher.hash(new_password)
        return self._change(user_id, lambda account: account.reset_password(new_hash))

    def update_profile(
        self,
        user_id: UUID,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        phone: str | None = None,
        username: str | None = None,
    ) -> Account:
        """Change the given profile fields (None leaves a field as it is)."""

        def update(account: Account) -> None:
            account.update_profile(
                first_name=account.first_name if first_name is None else first_name,
                last_name=account.last_name if last_name is None else last_name,
                phone=account.phone if phone is None else phone,
                username=account.username if username is None else username,
            )

        return self._change(user_id, update)

    def ensure_admin(self, *, email: str, password: str, username: str) -> Account:
        """Create an admin account, or promote an existing one (used by the CLI)."""
        user_id = self.lookup(email)
        if user_id is None:
            account = self._open_account(
                email=email, username=username, password_hash=self.hasher.hash(password), role="admin"
            )
        else:
            account = self.get_account(user_id)
        if account.role != "admin":
            account.change_role("admin")
        account.set_disabled(False)  # the operator's way back in
        account.change_password(self.hasher.hash(password))
        if not account.email_verified:
            account.verify_email()
        self.save(account)
        return account

    def _change(self, user_id: UUID, change: Callable[[Account], None], *, erased_too: bool = False) -> Account:
        def attempt() -> Account:
            account = self.load(user_id, "account", Account) if erased_too else self.get_account(user_id)
            change(account)
            self.save(account)
            return account

        return self.retrying(attempt)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


# Short-lived secrets in Redis ------------------------------------------------------------------

# Compare-and-swap of a family's current refresh token. 1: rotated; 0: no such family (logged
# out, expired, revoked); -1: the presented token was already used, so the family is revoked.
_ROTATE = """
local current = redis.call('HGET', KEYS[1], 'jti')
if not current then return 0 end
if current ~= ARGV[1] or redis.call('HGET', KEYS[1], 'user') ~= ARGV[3] then
  redis.call('DEL', KEYS[1])
  return -1
end
redis.call('HSET', KEYS[1], 'jti', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# Redeem a reset code. 1: right code, now used up; 0: wrong, missing or burnt. The digests are
# keyed HMACs, so comparing them in Lua (not in constant time) reveals nothing about the code.
_REDEEM_CODE = """
local stored = redis.call('HGET', KEYS[1], 'digest')
if not stored then return 0 end
if stored == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
if redis.call('HINCRBY', KEYS[1], 'failures', 1) >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
end
return 0
"""


class Sessions:
    """Refresh-token families, one per sign-in, in Redis (`session:<family>`, TTL 7 days).

    A family remembers its user and the id (`jti`) of the one refresh token that may be used
    next. Refreshing swaps that id for a new one atomically; presenting any other token of the
    family means a token was copied and used twice (by the owner or a thief, we cannot tell),
    so the whole family is deleted and both parties must sign in again. Logout deletes the
    family. Each rotation restarts the TTL, so a session lives while it is used at least weekly.
    """

    def __init__(self, redis: AsyncRedis, ttl: timedelta = REFRESH_TTL) -> None:
        self.redis = redis
        self.ttl = int(ttl.total_seconds())

    async def open(self, user_id: UUID) -> tuple[str, str]:
        """Start a family; returns (family id, id of its first refresh token)."""
        family, jti = uuid4().hex, uuid4().hex
        key = self._key(family)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"user": str(user_id), "jti": jti})
            pipe.expire(key, self.ttl)
            await pipe.execute()
        return family, jti

    async def rotate(self, user_id: UUID, family: str, jti: str) -> str:
        """Exchange the family's current token id for a new one (raises when it is not current)."""
        new_jti = uuid4().hex
        outcome = int(await self.redis.eval(_ROTATE, 1, self._key(family), jti, new_jti, str(user_id), self.ttl))
        if outcome == -1:
            raise RefreshTokenReused("this refresh token was already used; the session has been revoked")
        if outcome != 1:
            raise InvalidRefreshToken("the refresh token is invalid, expired or revoked")
        return new_jti

    async def revoke(self, *families: str) -> None:
        keys = [self._key(f) for f in families if f]
        if keys:
            await self.redis.delete(*keys)

    @staticmethod
    def _key(family: str) -> str:
        return f"session:{family}"


class MailedSecrets:
    """E-mail verification tokens and password-reset codes, stored as HMAC digests in Redis.

    They are issued by the mail worker (which alone decides whether the account exists, so an
    API response never depends on it) and redeemed by the API.

    - Verification token: 32 random bytes, `verify:<digest>` → account id, 24 h, deleted on use.
    - Reset code: 6 digits, `reset:<account id>` → {digest, failures}, 15 min; a new request
      replaces the previous code; deleted on use or after 5 wrong guesses.
    """

    def __init__(self, key: str) -> None:
        self._key = hashlib.sha256(f"account-secrets:{key}".encode()).digest()

    # Issued by the worker (blocking client) ---------------------------------------------------

    def issue_verification(self, redis: SyncRedis, user_id: UUID) -> str:
        token = secrets.token_urlsafe(32)
        redis.set(f"verify:{self._digest('verify', token)}", str(user_id), ex=VERIFICATION_TTL)
        return token

    def issue_reset_code(self, redis: SyncRedis, user_id: UUID) -> str:
        code = f"{secrets.randbelow(1_000_000):06d}"
        key = f"reset:{user_id}"
        with redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"digest": self._digest(f"reset:{user_id}", code), "failures": 0})
            pipe.expire(key, RESET_CODE_TTL)
            pipe.execute()
        return code

    # Redeemed by the API (asyncio client) -----------------------------------------------------

    async def redeem_verification(self, redis: AsyncRedis, token: str) -> UUID:
        """The account the token was issued for; the token is used up."""
        value = await redis.getdel(f"verify:{self._digest('verify', token)}")
        if value is None:
            raise InvalidToken("the verification token is invalid or has expired", field="token")
        return UUID(value.decode() if isinstance(value, bytes) else value)

    async def redeem_reset_code(self, redis: AsyncRedis, user_id: UUID | None, code: str) -> UUID:
        """The account whose reset code this is (`Accounts.lookup` of the address given, None
        for an unknown one); the code is used up (or burnt after 5 misses)."""
        if user_id is None:
            user_id = uuid4()  # no code was issued for it: the same work, the same answer
        digest = self._digest(f"reset:{user_id}", code.strip())
        ok = int(await redis.eval(_REDEEM_CODE, 1, f"reset:{user_id}", digest, RESET_CODE_ATTEMPTS))
        if ok != 1:
            raise InvalidCode("the code is wrong or has expired; request a new one", field="code")
        return user_id

    def _digest(self, purpose: str, value: str) -> str:
        return hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()
