"""Rotating the ticket signing key: new codes carry the new key's signature, codes signed before
still verify while their secret is listed in TICKET_SIGNING_OLD_KEYS, and no longer once it is
dropped; TICKET_SIGNING_KEY is required in production."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import pytest

from commands.tickets_signing import (
    InvalidTicketCode,
    TicketSigner,
    key_id_of,
    verify_with_public_key,
    verify_with_public_keys,
)
from ticketing import Settings, ticket_signer

OLD, NEW = "old-secret-" + "o" * 40, "new-secret-" + "n" * 40
TICKET, EVENT = uuid4(), uuid4()


def test_after_a_rotation_old_codes_verify_and_new_ones_use_the_new_key() -> None:
    before = TicketSigner.from_secret(OLD)
    old_code = before.sign(TICKET, EVENT, 2)
    after = TicketSigner.from_secret(NEW, [OLD])

    new_code = after.sign(TICKET, EVENT, 2)
    assert len(old_code) == len(new_code) == 137  # the same format as before rotations existed
    assert after.verify(new_code).key_id == after.key_id != before.key_id
    verified = after.verify(old_code)
    assert (verified.ticket_id, verified.event_id, verified.generation) == (TICKET, EVENT, 2)
    assert verified.key_id == before.key_id
    # The old key alone never verifies what the new one signed.
    with pytest.raises(InvalidTicketCode):
        before.verify(new_code)


def test_a_dropped_old_key_no_longer_verifies_and_a_stranger_never_did() -> None:
    old_code = TicketSigner.from_secret(OLD).sign(TICKET, EVENT)
    with pytest.raises(InvalidTicketCode):
        TicketSigner.from_secret(NEW).verify(old_code)
    forged = TicketSigner.from_secret("someone-else-" + "x" * 40).sign(TICKET, EVENT)
    with pytest.raises(InvalidTicketCode):
        TicketSigner.from_secret(NEW, [OLD]).verify(forged)


def test_verification_keys_list_the_current_key_first_each_once_with_its_id() -> None:
    signer = TicketSigner.from_secret(NEW, [OLD, NEW, OLD])
    keys = signer.verification_keys
    assert [kid for kid, _ in keys] == [signer.key_id, TicketSigner.from_secret(OLD).key_id]
    assert keys[0][1] == signer.public_key_b64
    for kid, public_key in keys:
        import base64

        raw = base64.urlsafe_b64decode(public_key + "=" * (-len(public_key) % 4))
        assert key_id_of(raw) == kid
    # An offline scanner with the published keys: both codes pass, each with only its key.
    old_code = TicketSigner.from_secret(OLD).sign(TICKET, EVENT)
    published = [public_key for _, public_key in keys]
    assert verify_with_public_keys(published, old_code).key_id == keys[1][0]
    assert verify_with_public_key(keys[1][1], old_code).ticket_id == TICKET
    with pytest.raises(InvalidTicketCode):
        verify_with_public_key(keys[0][1], old_code)
    with pytest.raises(ValueError, match="no public key"):
        verify_with_public_keys([], old_code)


def test_settings_read_old_keys_and_production_requires_the_signing_key(tmp_path: Path) -> None:
    env = {"DATA_DIR": str(tmp_path), "TICKET_SIGNING_KEY": NEW, "TICKET_SIGNING_OLD_KEYS": f" {OLD} , ,second-old"}
    settings = Settings.from_env(env)
    assert settings.ticket_signing_old_keys == (OLD, "second-old")
    signer = ticket_signer(settings)
    assert signer.key_id == TicketSigner.from_secret(NEW).key_id
    assert len(signer.verification_keys) == 3
    assert Settings.from_env({"DATA_DIR": str(tmp_path)}).ticket_signing_old_keys == ()

    production = {"DATA_DIR": str(tmp_path), "ENVIRONMENT": "production", "PERSONAL_DATA_SECRET": "p" * 40}
    with pytest.raises(ValueError, match="TICKET_SIGNING_KEY is not set"):
        Settings.from_env(production)
    assert Settings.from_env({**production, "TICKET_SIGNING_KEY": NEW}).ticket_signing_key == NEW
    with pytest.raises(ValueError, match="must not be empty"):
        TicketSigner.from_secret(NEW, [""])
