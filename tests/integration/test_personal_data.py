"""Personal data in the real store: sealed per person, opened on the fast decoding path, empty
once the key is destroyed; accounts stored before sealing (plain text, uuid5 ids) still load,
sign in, and are blanked by their erasure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import Mapper

from commands.accounts import Accounts
from commands.boxoffice import BoxOffice
from commands.erasure import erase_person
from domain.account import Account, EmailTaken
from domain.ids import account_id
from domain.order import Order
from domain.placement import ItemRequest
from tests.integration.conftest import put_on_sale
from ticketing import Settings, open_accounts, open_boxoffice

PASSWORD = "a-long-password"


@pytest.fixture
def accounts(settings: Settings) -> Iterator[Accounts]:
    app = open_accounts(settings)
    yield app
    app.close()


def stored_states(settings: Settings, table: str, originator_id: UUID) -> list[bytes]:
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            f"SELECT state FROM {table} WHERE originator_id = %s ORDER BY originator_version",
            (originator_id,),
        ).fetchall()
    return [bytes(r[0]) for r in rows]


def decoded(app: Accounts, user_id: UUID) -> list[Any]:
    """The account's events as a fresh process decodes them (nothing cached)."""
    return list(app.events.get(user_id))


def test_new_accounts_are_sealed_decoded_fast_and_empty_after_erasure(accounts: Accounts, settings: Settings) -> None:
    email = f"sealed-{uuid4().hex[:8]}@example.org"
    account = accounts.register(email=email, username="sealy", password=PASSWORD, first_name="Serafina", phone="+1 2")
    assert account.id != account_id(email)  # a random id: it does not derive from the address
    (state,) = stored_states(settings, "accounts_events", account.id)
    assert b"sealed:v1:" in state
    assert email.encode() not in state and b"Serafina" not in state and b"sealy" not in state

    fresh = open_accounts(settings)
    try:
        before = fresh.mapper.decoder.fallbacks  # type: ignore[attr-defined]
        (registered,) = decoded(fresh, account.id)
        assert (registered.email, registered.first_name, registered.phone) == (email, "Serafina", "+1 2")
        assert fresh.mapper.decoder.fallbacks == before  # type: ignore[attr-defined]
        assert fresh.authenticate(email, PASSWORD).id == account.id
        with pytest.raises(EmailTaken):
            fresh.register(email=email.upper(), username="again", password=PASSWORD)
    finally:
        fresh.close()

    boxoffice = open_boxoffice(settings)
    try:
        erase_person(accounts, boxoffice, account.id)
    finally:
        boxoffice.close()
    fresh = open_accounts(settings)
    try:
        registered, erased = decoded(fresh, account.id)
        assert (registered.email, registered.username, registered.first_name, registered.phone) == ("", "", "", "")
        assert isinstance(erased, Account.Erased)
        assert fresh.lookup(email) is None and fresh.find(email) is None
        again = fresh.register(email=email, username="back", password=PASSWORD)
        assert again.id != account.id and fresh.authenticate(email, PASSWORD).id == again.id
    finally:
        fresh.close()


def test_an_account_stored_before_sealing_still_signs_in_and_its_erasure_blanks_it(
    accounts: Accounts, settings: Settings
) -> None:
    email = f"legacy-{uuid4().hex[:8]}@example.org"
    legacy = Account(email=email, username="oldtimer", password_hash=accounts.hasher.hash(PASSWORD), role="attendee",
                     first_name="Ottilie", last_name="Plain")  # fmt: skip
    plain: Mapper[UUID] = Mapper(transcoder=accounts.mapper.transcoder)
    accounts.recorder.insert_events([plain.to_stored_event(e) for e in legacy.collect_events()])
    assert legacy.id == account_id(email)
    assert b"Ottilie" in stored_states(settings, "accounts_events", legacy.id)[0]

    assert accounts.lookup(email) == legacy.id
    assert accounts.authenticate(email, PASSWORD).first_name == "Ottilie"
    with pytest.raises(EmailTaken):
        accounts.register(email=email, username="dup", password=PASSWORD)

    boxoffice = open_boxoffice(settings)
    try:
        erase_person(accounts, boxoffice, legacy.id, password=PASSWORD)
    finally:
        boxoffice.close()
    for state in stored_states(settings, "accounts_events", legacy.id):
        assert email.encode() not in state and b"Ottilie" not in state and b"oldtimer" not in state
    assert accounts.lookup(email) is None
    again = accounts.register(email=email, username="new", password=PASSWORD)
    assert again.id != legacy.id and accounts.authenticate(email, PASSWORD).id == again.id


def test_a_process_meeting_many_people_loads_their_keys_at_once(
    accounts: Accounts, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [accounts.register(email=f"many-{uuid4().hex[:8]}@example.org", username=f"m{n}", password=PASSWORD)
              for n in range(3)]  # fmt: skip
    boxoffice = open_boxoffice(settings)
    try:
        erase_person(accounts, boxoffice, people[0].id)
    finally:
        boxoffice.close()
    monkeypatch.setattr("commands.privacy.BULK_AFTER_MISSES", 0)
    fresh = open_accounts(settings)
    try:
        first = [decoded(fresh, p.id)[0].username for p in people]
        assert first == ["", "m1", "m2"]
        assert fresh.mapper.vault._loaded_all  # type: ignore[attr-defined]
    finally:
        fresh.close()


def test_erasure_blanks_the_plain_text_attendee_names_the_person_gave(
    accounts: Accounts, boxoffice: BoxOffice, settings: Settings
) -> None:
    buyer = accounts.register(email=f"names-{uuid4().hex[:8]}@example.org", username="namer", password=PASSWORD)
    sale = put_on_sale(boxoffice)
    order, _ = boxoffice.place_order(buyer.id, [ItemRequest(sale.ga_offer, 2)])
    first, second = order.ticket_ids()
    # An attendee name as stored before sealing: plain text, no person_id.
    fields: dict[str, Any] = {"originator_id": order.id, "originator_version": order.version + 1, "ticket_id": first,
                              "timestamp": Order.AttendeeNamed.create_timestamp(), "attendee_name": "Legacy Lou",
                              "person_id": buyer.id}  # fmt: skip
    legacy = Order.AttendeeNamed(**fields)
    del legacy.__dict__["person_id"]
    plain: Mapper[UUID] = Mapper(transcoder=boxoffice.mapper.transcoder)
    boxoffice.recorder.insert_events([plain.to_stored_event(legacy)])
    boxoffice.name_attendees(order.id, {second: "Sealed Sam"}, by=buyer.id)
    states = stored_states(settings, "boxoffice_events", order.id)
    assert any(b"Legacy Lou" in s for s in states) and not any(b"Sealed Sam" in s for s in states)

    erase_person(accounts, boxoffice, buyer.id)
    assert not any(b"Legacy Lou" in s for s in stored_states(settings, "boxoffice_events", order.id))
    fresh = open_boxoffice(settings)
    try:
        names = {e.attendee_name for e in fresh.events.get(order.id) if isinstance(e, Order.AttendeeNamed)}
        assert names == {None}
        assert fresh.repository.get(order.id).attendee_name(first) is None
    finally:
        fresh.close()
