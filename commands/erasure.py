"""Erasure of a person (crypto-shredding), across the two stores that hold what concerns them.

1. `Account.Erased` in the accounts store, and the address out of the e-mail index: the account
   cannot sign in, and the address can register again (as a new account);
2. `Erasure.Recorded` in the sales store: the read models, which follow that store, scrub what
   they hold of the person (attendee names) when they apply it, and every process reading it
   drops the person's cached key;
3. the person's key is destroyed: what was sealed with it (e-mail, names, phone, the attendee
   names they gave) cannot be read again, in the log, in a rebuild, in any backup of the log.

Each step is idempotent and the key goes last, so an erasure interrupted half-way is finished
by asking again. Orders and tickets stay, for the organizer's books, without a name.
"""

from __future__ import annotations

import contextlib
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from commands.accounts import Accounts
from commands.base import BaseApplication
from domain.privacy import Erasure


def erase_person(accounts: Accounts, sales: BaseApplication, person_id: UUID, *, password: str | None = None) -> None:
    """Erase an account (with `password`: the person's own request, checked first)."""
    accounts.erase(person_id, password)
    if not sales.exists(Erasure.create_id(person_id)):
        with contextlib.suppress(IntegrityError):  # recorded by a request racing this one
            sales.save(Erasure(person_id=person_id))
    accounts.shred(person_id)
