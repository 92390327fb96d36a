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

Events stored before sealing existed hold personal data in plain text, which no key protects:
those of the account, and the attendee names the person gave on their tickets, are blanked in
place (`commands.privacy.blank_plain_text`).
"""

from __future__ import annotations

import contextlib
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier

from commands.accounts import Accounts
from commands.base import BaseApplication
from commands.privacy import blank_plain_text
from domain.order import Order
from domain.privacy import Erasure


def erase_person(accounts: Accounts, sales: BaseApplication, person_id: UUID, *, password: str | None = None) -> None:
    """Erase an account (with `password`: the person's own request, checked first)."""
    accounts.erase(person_id, password)
    _blank_plain_names(sales, person_id)
    if not sales.exists(Erasure.create_id(person_id)):
        with contextlib.suppress(IntegrityError):  # recorded by a request racing this one
            sales.save(Erasure(person_id=person_id))
    accounts.shred(person_id)


def _blank_plain_names(sales: BaseApplication, person_id: UUID) -> None:
    """Blank the plain-text attendee names (stored before sealing) the person gave while holding
    the ticket: on the orders they bought or were given a ticket of. One scan of the store's
    order events (an erasure is rare)."""
    recorder: Any = sales.recorder
    needles = [
        f'"{name}":{{"_type_":"uuid_hex","_data_":"{person_id.hex}"}}'.encode() for name in ("buyer_id", "to_id")
    ]
    query = SQL(
        "SELECT DISTINCT originator_id FROM {schema}.{table} WHERE topic = ANY(%s) "
        "AND (position(%s IN state) > 0 OR position(%s IN state) > 0)"
    ).format(schema=Identifier(recorder.datastore.schema), table=Identifier(recorder.events_table_name))
    topics = [get_topic(Order.Placed), get_topic(Order.TicketTransferred)]
    with recorder.datastore.get_connection() as conn:
        orders = [row["originator_id"] for row in conn.execute(query, (topics, *needles)).fetchall()]
    for order_id in orders:
        buyer: UUID | None = None
        holders: dict[UUID, UUID] = {}
        versions: set[int] = set()
        for event in sales.events.get(order_id):
            if isinstance(event, Order.Placed):
                buyer = event.buyer_id
            elif isinstance(event, Order.TicketTransferred):
                holders[event.ticket_id] = event.to_id
            elif (
                isinstance(event, Order.AttendeeNamed)
                and "person_id" not in event.__dict__  # sealed ones name their person
                and holders.get(event.ticket_id, buyer) == person_id
            ):
                versions.add(event.originator_version)
        if versions:
            blank_plain_text(recorder, order_id, versions.__contains__)
