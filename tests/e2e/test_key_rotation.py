"""Rotating TICKET_SIGNING_KEY on a running deployment: tickets issued before still check in when
the previous secret is listed in TICKET_SIGNING_OLD_KEYS, new codes carry the new key's
signature, and the scanner kit lists every valid key with its id.

The main deployment plays the service before the rotation; the `rotated` one, on the same
database and JWT secret, the same service restarted with a new key and the old one kept.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from commands.tickets_signing import TicketSigner, verify_with_public_key, verify_with_public_keys
from tests.conftest import start_service
from tests.e2e.conftest import bearer, register, stateless_client
from tests.e2e.door_helpers import day_pass_show, free_tickets
from tests.e2e.test_scanner_kit import kit_pages
from ticketing import Settings

NEW_KEY = "rotated-tickets-" + "k" * 40


@pytest.fixture(scope="module")
def rotated(stack_env: dict[str, str], settings: Settings, service: str) -> Iterator[str]:
    env = {**stack_env, "TICKET_SIGNING_KEY": NEW_KEY, "TICKET_SIGNING_OLD_KEYS": stack_env["TICKET_SIGNING_KEY"]}
    with start_service(env, "e2e-rotated", web_workers=1) as processes:
        yield processes.base_url


def test_old_tickets_check_in_after_a_rotation_and_new_ones_use_the_new_key(
    rotated: str, client: httpx.Client, admin_token: str, settings: Settings
) -> None:
    old_id = TicketSigner.from_secret(settings.ticket_signing_key).key_id
    new_id = TicketSigner.from_secret(NEW_KEY).key_id
    show = day_pass_show(client, admin_token, days=1)
    offer = show.offers[show.days[0]]
    buyer = register(client)
    # Issued before the rotation (by the main deployment, with the old key).
    before = free_tickets(client, buyer, [{"offer_id": offer, "quantity": 2}])
    old_kit, _ = kit_pages(client, show.organizer, show.id, limit=100)
    assert old_kit["key_id"] == old_id
    assert [k["key_id"] for k in old_kit["public_keys"]] == [old_id]
    assert verify_with_public_key(old_kit["public_key"], before[0]["qr_data"]).key_id == old_id

    with stateless_client(rotated) as api:
        kit, listed = kit_pages(api, show.organizer, show.id, limit=100)
        assert kit["key_id"] == new_id
        assert [k["key_id"] for k in kit["public_keys"]] == [new_id, old_id]
        assert kit["public_keys"][0]["public_key"] == kit["public_key"]
        assert kit["public_keys"][1]["public_key"] == old_kit["public_key"]
        # An offline scanner with the kit's keys accepts the printed ticket, by the old key.
        published = [k["public_key"] for k in kit["public_keys"]]
        assert verify_with_public_keys(published, before[0]["qr_data"]).key_id == old_id
        assert {t["ticket_id"] for t in listed} >= {t["ticket_id"] for t in before}

        url = f"/events/{show.id}/check-ins"
        scanned = api.post(url, headers=bearer(show.organizer), json={"qr_data": before[0]["qr_data"]})
        assert scanned.status_code == 200 and scanned.json()["status"] == "checked_in", scanned.text

        # New tickets (and codes shown again) are signed with the new key only.
        after = free_tickets(api, buyer, [{"offer_id": offer, "quantity": 1}])
        new_code = after[0]["qr_data"]
        assert verify_with_public_key(kit["public_key"], new_code).key_id == new_id
        shown_again = next(t for t in api.get("/me/tickets", headers=bearer(buyer)).json()["data"]
                           if t["ticket_id"] == before[1]["ticket_id"])  # fmt: skip
        assert shown_again["qr_data"] != before[1]["qr_data"]
        assert verify_with_public_key(kit["public_key"], shown_again["qr_data"]).key_id == new_id
        assert api.post(url, headers=bearer(show.organizer), json={"qr_data": new_code}).status_code == 200

    # The deployment that knows only the old key refuses the new key's codes: they are not its.
    refused = client.post(url, headers=bearer(show.organizer), json={"qr_data": shown_again["qr_data"]})
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_ticket_code", refused.text
