"""Mail is delayed, never lost and never doubled: the SMTP server stops while an order is paid;
the read models are rebuilt and the notifier restarts, even from position 0."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import stripe
from psycopg.rows import dict_row

from tests.e2e.conftest import Show, bearer, publish_show
from tests.faults.conftest import FaultStack, admin, eventually, verified_buyer
from tests.mailbox import Mailbox
from ticketing import declare_actors
from workers.projector import rebuild


def _show(stack: FaultStack) -> Show:
    organizer = verified_buyer(stack, "organizer")
    return publish_show(stack.client, admin(stack), ga_quantity=20, seats=2, organizer=organizer)


def _mailbox(stack: FaultStack) -> Mailbox:
    return Mailbox(Path(stack.env["DATA_DIR"]) / "mail")


def _paid_order(stack: FaultStack, show_offer: str) -> tuple[str, str, str]:
    """A new buyer's order, paid at localstripe: (token, e-mail, order id)."""
    token = verified_buyer(stack)
    address = stack.client.get("/auth/me", headers=bearer(token)).json()["email"]
    items = [{"offer_id": show_offer, "quantity": 1}]
    placed = stack.client.post("/orders", headers=bearer(token), json={"items": items})
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    intent = stack.client.post(f"/orders/{order_id}/payment", headers=bearer(token)).json()["payment_intent_id"]
    sdk = stripe.StripeClient(stack.settings.stripe_api_key, base_addresses={"api": stack.settings.stripe_api_base})
    sdk.v1.payment_intents.update(intent, params={"payment_method": "pm_card_visa"})
    sdk.v1.payment_intents.confirm(intent)
    eventually(lambda: stack.client.get(f"/orders/{order_id}", headers=bearer(token)).json()["status"] == "paid")
    return token, address, order_id


def _outbox(stack: FaultStack, order_id: str) -> dict[str, Any] | None:
    with psycopg.connect(stack.settings.database_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM read.mail_outbox WHERE kind = 'order_confirmed' AND data->>'order_id' = %s", (order_id,)
        ).fetchone()


def _confirmations(mailbox: Mailbox, address: str) -> int:
    return sum(str(m["Subject"]).startswith("Your tickets for") for m in mailbox.messages_to(address))


def test_a_mail_server_that_is_down_delays_the_mail_and_loses_none(faults: FaultStack) -> None:
    show = _show(faults)
    mailbox = _mailbox(faults)
    faults.services.stop_mailsink()
    try:
        token, address, order_id = _paid_order(faults, show.ga_offer)
        # The worker keeps trying (and notes why it could not send); nothing arrives meanwhile.
        row = eventually(lambda: (r := _outbox(faults, order_id)) and r["attempts"] >= 2 and r)
        assert row["sent_at"] is None and row["last_error"]
        assert _confirmations(mailbox, address) == 0
    finally:
        faults.services.start_mailsink()
    # Retries back off (1 s, 2 s, 4 s, ... up to 5 min): the next one, within a minute, gets through.
    mail = mailbox.wait_for(address, lambda m: str(m["Subject"]).startswith("Your tickets for"), timeout=90)
    number = faults.client.get(f"/orders/{order_id}", headers=bearer(token)).json()["number"]
    assert number in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    row = _outbox(faults, order_id)
    assert row and row["sent_at"] is not None and row["message_id"] == mail["Message-ID"].strip()
    time.sleep(3)
    assert _confirmations(mailbox, address) == 1


def test_rebuilding_the_read_models_and_replaying_the_notifier_sends_no_mail_twice(faults: FaultStack) -> None:
    show = _show(faults)
    mailbox = _mailbox(faults)
    buyers = [_paid_order(faults, show.ga_offer) for _ in range(2)]
    for _, address, _ in buyers:
        mailbox.wait_for(address, lambda m: str(m["Subject"]).startswith("Your tickets for"))
    with psycopg.connect(faults.settings.database_url, row_factory=dict_row) as conn:
        before = conn.execute("SELECT count(*) AS n FROM read.mail_outbox").fetchone()
        head = conn.execute("SELECT max(notification_id) AS n FROM public.boxoffice_events").fetchone()
    assert before and head

    # Rebuild every read model from the store, restart the notifier...
    rebuild(faults.settings.eventsourcing_env())
    faults.processes.restart("notifier")
    # ...and again after losing its position: it decides every mail of the log a second time.
    with psycopg.connect(faults.settings.database_url) as plain:
        plain.execute("DELETE FROM read.notifier_tracking")
    faults.processes.restart("notifier")

    def caught_up() -> bool:
        with psycopg.connect(faults.settings.database_url, row_factory=dict_row) as conn:
            row = conn.execute("SELECT max(notification_id) AS n FROM read.notifier_tracking").fetchone()
        return bool(row and row["n"] and row["n"] >= head["n"])

    eventually(caught_up, timeout=60)
    # Every row handed to the worker again (a duplicated or replayed message) is sent no second time.
    with psycopg.connect(faults.settings.database_url, row_factory=dict_row) as conn:
        after = conn.execute("SELECT count(*) AS n FROM read.mail_outbox").fetchone()
        keys = [r["key"] for r in conn.execute("SELECT key FROM read.mail_outbox").fetchall()]
    assert after == before
    declare_actors(faults.settings).queue_mails(keys)
    time.sleep(5)
    for _, address, _ in buyers:
        assert _confirmations(mailbox, address) == 1
    ids = Counter(str(m["Message-ID"]).strip() for m in mailbox.all())
    assert not [i for i, count in ids.items() if count > 1]
