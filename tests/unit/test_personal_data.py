"""The mapper seals exactly the personal fields an event class names, with its owner's key, and
reads them back plain, or empty once the owner's key is gone (the vault is a stand-in here;
tests/integration/test_personal_data.py uses the real one)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application

from commands.mapper import FastMapper, UnstorableText
from domain.account import Account
from domain.order import Order
from domain.privacy import Erasure


class Vault:
    """Seals by tagging with the owner; forgets owners it is told are erased."""

    def __init__(self) -> None:
        self.erased: set[UUID] = set()

    def seal(self, person: UUID, text: str) -> str:
        return f"sealed:v1:{person.hex}:{text[::-1]}" if text else text

    def open(self, value: str) -> str | None:
        if not value.startswith("sealed:v1:"):
            return value
        owner, _, body = value[len("sealed:v1:") :].partition(":")
        return None if UUID(hex=owner) in self.erased else body[::-1]

    def forget(self, person: UUID) -> None:
        self.erased.add(person)


@pytest.fixture
def mapper() -> Any:
    app: Application[UUID] = Application(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo", "MAPPER_TOPIC": "commands.mapper:FastMapper"}
    )
    assert isinstance(app.mapper, FastMapper)
    app.mapper.vault = Vault()  # type: ignore[assignment]
    return app.mapper


def test_account_fields_are_sealed_with_the_account_and_read_back(mapper: Any) -> None:
    account = Account(email="ada@example.com", username="ada", password_hash="h", role="attendee", first_name="Ada")
    (registered,) = account.collect_events()
    stored = mapper.to_stored_event(registered)
    assert b"ada@example.com" not in stored.state and b"Ada" not in stored.state and b'"h"' in stored.state
    before = mapper.decoder.fallbacks
    back = mapper.to_domain_event(stored)
    assert (back.email, back.username, back.first_name, back.role) == ("ada@example.com", "ada", "Ada", "attendee")
    assert mapper.decoder.fallbacks == before  # sealed values keep the fast path
    mapper.vault.erased.add(account.id)
    gone = mapper.to_domain_event(stored)
    assert (gone.email, gone.username, gone.first_name, gone.role) == ("", "", "", "attendee")


def test_an_attendee_name_is_sealed_with_the_namer_and_reads_as_none_once_erased(mapper: Any) -> None:
    namer = uuid4()
    fields: dict[str, Any] = {"originator_id": uuid4(), "originator_version": 3, "ticket_id": uuid4(),
                              "timestamp": Order.AttendeeNamed.create_timestamp(), "attendee_name": "Grace Hopper",
                              "person_id": namer}  # fmt: skip
    event = Order.AttendeeNamed(**fields)
    stored = mapper.to_stored_event(event)
    assert b"Grace" not in stored.state and namer.hex.encode() in stored.state
    assert mapper.to_domain_event(stored).attendee_name == "Grace Hopper"
    # Reading the erasure, as every process does, drops the person's key.
    erasure = Erasure(person_id=namer)
    mapper.to_domain_event(mapper.to_stored_event(erasure.collect_events()[0]))
    assert mapper.to_domain_event(stored).attendee_name is None


def test_plain_text_stored_before_sealing_reads_as_it_was(mapper: Any) -> None:
    account = Account(email="old@example.com", username="old", password_hash="h", role="attendee")
    vault, mapper.vault = mapper.vault, None
    stored = mapper.to_stored_event(account.collect_events()[0])
    mapper.vault = vault
    assert b"old@example.com" in stored.state
    assert mapper.to_domain_event(stored).email == "old@example.com"


def test_a_nul_in_personal_data_is_refused_before_it_is_sealed(mapper: Any) -> None:
    account = Account(email="nul@example.com", username="a\x00b", password_hash="h", role="attendee")
    with pytest.raises(UnstorableText):
        mapper.to_stored_event(account.collect_events()[0])
