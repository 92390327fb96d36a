"""Transactional mail through HTTP and the real SMTP sink: each `.eml` is parsed (both parts,
attachments, links, Message-ID); the mails follow the stored events (`projections/notifier.py`)."""

from __future__ import annotations

import contextlib
import io
import re
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import stripe
from pypdf import PdfReader

from commands.tickets_signing import human_code
from tests.e2e.conftest import PASSWORD, Show, bearer, mark_verified, order, publish_show
from tests.e2e.test_payments import get_order, is_status, pay, start, wait_for
from tests.e2e.test_waitlist import free_sold_out_offer, join
from tests.mailbox import Mailbox, body
from ticketing import Settings

FIRST, LAST = "Zoë", "Ωmega-Łukasz"


@pytest.fixture(scope="module")
def mailbox(stack_env: dict[str, str]) -> Mailbox:
    directory = Path(stack_env["DATA_DIR"]) / "mail"
    if not directory.is_dir():
        pytest.skip("mail goes to an external SMTP server, not the development sink")
    return Mailbox(directory)


@pytest.fixture(scope="module")
def stripe_client(settings: Settings) -> stripe.StripeClient:
    return stripe.StripeClient(settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base})


@pytest.fixture(scope="module")
def show(client: httpx.Client, admin_token: str) -> Show:
    return publish_show(client, admin_token, ga_quantity=40, seats=10, max_per_order=6)


def person(client: httpx.Client, first: str = FIRST, last: str = LAST) -> tuple[str, str]:
    """A verified account with a name in several scripts: (access token, e-mail)."""
    address = f"mail-{uuid4().hex[:10]}@example.com"
    r = client.post("/auth/register", json={"email": address, "username": f"u{uuid4().hex[:8]}", "password": PASSWORD,
                                            "first_name": first, "last_name": last})  # fmt: skip
    assert r.status_code == 201, r.text
    mark_verified(UUID(r.json()["user"]["id"]))
    login = client.post("/auth/login", json={"email": address, "password": PASSWORD})
    return login.json()["access_token"], address


def paid_order(
    client: httpx.Client, sdk: stripe.StripeClient, token: str, items: list[dict[str, Any]]
) -> dict[str, Any]:
    placed = order(client, token, items)
    assert placed.status_code == 201, placed.text
    pay(sdk, start(client, token, placed.json()["id"])["payment_intent_id"])
    paid: dict[str, Any] = wait_for(lambda: is_status(client, token, placed.json()["id"], "paid"))
    return paid


def subject_starts(prefix: str) -> Any:
    return lambda m: str(m["Subject"]).startswith(prefix)


def links(message: EmailMessage) -> tuple[list[str], list[str]]:
    """The URLs in the text part and the hrefs of the HTML part."""
    return re.findall(r"https?://\S+", body(message)), re.findall(r'href="([^"]+)"', body(message, "html"))


def api_path(url: str) -> str:
    return "/" + url.split("/api/v1/", 1)[1]


def assert_well_formed(message: EmailMessage, address: str) -> None:
    assert message["To"].addresses[0].addr_spec == address
    assert message["To"].addresses[0].display_name == f"{FIRST} {LAST}"
    assert body(message).startswith(f"Hello {FIRST} {LAST},")
    html = body(message, "html")
    assert f"Hello {FIRST} {LAST}," in html and html.lstrip().startswith("<!doctype html>")


def test_paying_an_order_mails_the_tickets_as_a_pdf_with_links_to_each(
    client: httpx.Client, stripe_client: stripe.StripeClient, show: Show, mailbox: Mailbox
) -> None:
    token, address = person(client)
    placed = order(client, token, [{"offer_id": show.ga_offer, "quantity": 2},
                                   {"offer_id": show.seat_offer, "seat_id": show.seats[0]}]).json()  # fmt: skip
    names = client.put(f"/orders/{placed['id']}/attendees", headers=bearer(token),
                       json={"attendee_names": ["Ирина Петрова", None, "<b>Βασίλης</b>"]})  # fmt: skip
    assert names.status_code == 200, names.text
    pay(stripe_client, start(client, token, placed["id"])["payment_intent_id"])
    paid = wait_for(lambda: is_status(client, token, placed["id"], "paid"))

    mail = mailbox.wait_for(address, subject_starts("Your tickets for Show"), what="order confirmation")
    assert_well_formed(mail, address)
    assert mail["Message-ID"].strip().startswith(f"<order_confirmed.{placed['id']}.")
    text, html = body(mail), body(mail, "html")
    assert placed["number"] in text and placed["number"] in html and "90.00 EUR" in text and "Ирина Петрова" in text
    # What the buyer typed is escaped in the HTML part, shown as typed in the text part.
    assert "&lt;b&gt;Βασίλης&lt;/b&gt;" in html and "<b>Βασίλης</b>" not in html and "<b>Βασίλης</b>" in text
    codes = {human_code(UUID(t["id"])) for t in paid["tickets"]}
    assert all(code in text and code in html for code in codes)
    text_links, html_links = links(mail)
    for ticket in paid["tickets"]:
        link = next(u for u in text_links if ticket["id"] in u)
        assert link in html_links
        pdf = client.get(api_path(link), headers=bearer(token))
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert any(u.endswith("/api/v1/me/tickets") for u in html_links)

    attachments = list(mail.iter_attachments())
    assert [(a.get_content_type(), a.get_filename()) for a in attachments] == [("application/pdf", "tickets.pdf")]
    pages = PdfReader(io.BytesIO(attachments[0].get_content())).pages
    assert len(pages) == 3
    printed = "\n".join(page.extract_text() for page in pages)
    assert all(code in printed for code in codes) and "Ирина Петрова" in printed


def test_a_declined_card_mails_that_the_payment_failed(
    client: httpx.Client, stripe_client: stripe.StripeClient, show: Show, mailbox: Mailbox
) -> None:
    token, address = person(client)
    placed = order(client, token, [{"offer_id": show.seat_offer, "seat_id": show.seats[1]}]).json()
    with contextlib.suppress(stripe.CardError):
        pay(stripe_client, start(client, token, placed["id"])["payment_intent_id"], "pm_card_chargeCustomerFail")
    mail = mailbox.wait_for(address, subject_starts("Payment failed"), what="payment failed")
    assert_well_formed(mail, address)
    text = body(mail)
    assert placed["number"] in text and "held for you until" in text
    assert get_order(client, token, placed["id"])["last_payment_error"].split()[0] in text


def test_a_refund_mails_which_tickets_and_how_much(
    client: httpx.Client, stripe_client: stripe.StripeClient, show: Show, mailbox: Mailbox
) -> None:
    token, address = person(client)
    paid = paid_order(client, stripe_client, token, [{"offer_id": show.ga_offer, "quantity": 3}])
    first = paid["tickets"][0]["id"]
    r = client.post(f"/orders/{paid['id']}/refund", headers=bearer(token), json={"ticket_ids": [first]})
    assert r.status_code == 200, r.text
    mail = mailbox.wait(address, f"Refund of 25.00 EUR for {client.get(f'/events/{show.id}').json()['title']}")
    assert_well_formed(mail, address)
    text = body(mail)
    assert human_code(UUID(first)) in text
    others = [human_code(UUID(t["id"])) for t in paid["tickets"][1:]]
    assert not any(code in text for code in others)
    assert mail.get_body(("html",)) is not None and not list(mail.iter_attachments())


def test_a_cancelled_show_mails_each_buyer_with_their_refund(
    client: httpx.Client, admin_token: str, stripe_client: stripe.StripeClient, mailbox: Mailbox
) -> None:
    show = publish_show(client, admin_token, ga_quantity=10, seats=4)
    buyers = [person(client) for _ in range(2)]
    for (token, _), quantity in zip(buyers, (1, 2), strict=True):
        paid_order(client, stripe_client, token, [{"offer_id": show.ga_offer, "quantity": quantity}])
    r = client.post(f"/events/{show.id}/cancel", headers=bearer(show.organizer), json={"reason": "storm"})
    assert r.status_code == 200, r.text
    for (_, address), amount in zip(buyers, ("25.00 EUR", "50.00 EUR"), strict=True):
        mail = mailbox.wait_for(address, subject_starts("Cancelled: Show"), what="cancellation")
        assert_well_formed(mail, address)
        assert f"refunded in full: {amount}" in body(mail)
        assert not any(str(m["Subject"]).startswith("Refund of") for m in mailbox.messages_to(address))


def test_a_transfer_mails_both_people_and_the_receiver_gets_the_ticket(
    client: httpx.Client, stripe_client: stripe.StripeClient, show: Show, mailbox: Mailbox
) -> None:
    token, address = person(client)
    _, friend = person(client, "Ana", "Núñez")
    paid = paid_order(client, stripe_client, token, [{"offer_id": show.ga_offer, "quantity": 1}])
    ticket = paid["tickets"][0]["id"]
    r = client.post(f"/tickets/{ticket}/transfer", headers=bearer(token), json={"email": friend})
    assert r.status_code == 200, r.text
    sent = mailbox.wait_for(address, subject_starts("You passed on a ticket"), what="transfer (sender)")
    assert_well_formed(sent, address)
    assert human_code(UUID(ticket)) in body(sent) and friend in body(sent)
    received = mailbox.wait_for(friend, subject_starts("A ticket for Show"), what="transfer (receiver)")
    assert received["To"].addresses[0].display_name == "Ana Núñez"
    assert f"{FIRST} {LAST}" in body(received) and human_code(UUID(ticket)) in body(received)
    (pdf,) = received.iter_attachments()
    assert pdf.get_content().startswith(b"%PDF")


def test_a_waitlist_offer_is_mailed_with_the_time_it_is_kept_until(
    client: httpx.Client, admin_token: str, mailbox: Mailbox
) -> None:
    offer, holders = free_sold_out_offer(client, admin_token, 1)
    token, address = person(client)
    entry = join(client, token, offer).json()
    holder, order_id = holders[0]
    assert client.post(f"/orders/{order_id}/cancel", headers=bearer(holder)).status_code == 200
    mail = mailbox.wait_for(address, subject_starts("Tickets for Show"), what="waitlist offer")
    assert_well_formed(mail, address)
    mine = next(e for e in client.get("/me/waitlist", headers=bearer(token)).json()["data"] if e["id"] == entry["id"])
    until = datetime.fromisoformat(mine["offer_expires_at"]).astimezone(UTC)
    assert mine["order_id"] in body(mail) and f"{until:%H:%M} (UTC)" in body(mail)
    assert "before" in body(mail, "html")


def test_a_rescheduled_show_and_the_day_before_mail_every_ticket_holder(
    client: httpx.Client, admin_token: str, stripe_client: stripe.StripeClient, mailbox: Mailbox
) -> None:
    show = publish_show(client, admin_token, ga_quantity=10, seats=2)
    token, address = person(client)
    paid_order(client, stripe_client, token, [{"offer_id": show.ga_offer, "quantity": 2}])
    start_time = (datetime.now(UTC) + timedelta(hours=20)).replace(microsecond=0)
    end_time = start_time + timedelta(hours=3)
    r = client.patch(f"/events/{show.id}", headers=bearer(show.organizer),
                     json={"start_time": start_time.isoformat(), "end_time": end_time.isoformat()})  # fmt: skip
    assert r.status_code in (200, 202), r.text
    moved = mailbox.wait_for(address, subject_starts("New date for Show"), what="reschedule")
    assert_well_formed(moved, address)
    assert f"{start_time:%H:%M} (UTC)" in body(moved)
    # The show is now within a day: the mail sweep (every 2 s in tests) sends the reminder, once.
    reminder = mailbox.wait_for(address, subject_starts("Tomorrow: Show"), what="reminder", timeout=30)
    assert_well_formed(reminder, address)
    (pdf,) = reminder.iter_attachments()
    assert len(PdfReader(io.BytesIO(pdf.get_content())).pages) == 2
    time.sleep(5)  # a few more sweeps
    assert sum(str(m["Subject"]).startswith("Tomorrow:") for m in mailbox.messages_to(address)) == 1


def test_the_verification_mail_links_to_a_page_that_confirms_with_a_post(
    client: httpx.Client, service: str, mailbox: Mailbox
) -> None:
    address = f"verify-{uuid4().hex[:10]}@example.com"
    r = client.post("/auth/register", json={"email": address, "username": "verifier", "password": PASSWORD,
                                            "first_name": "Ünal"})  # fmt: skip
    assert r.status_code == 201
    token = r.json()["access_token"]
    mail = mailbox.wait(address, "Confirm your e-mail address")
    assert body(mail).startswith("Hello Ünal,")
    text_links, html_links = links(mail)
    link = next(u for u in text_links if "/verify?token=" in u)
    assert link in [h.replace("&amp;", "&") for h in html_links]
    secret = re.search(r"is:\s+(\S+)", body(mail))
    assert secret and link.endswith(secret.group(1))

    with httpx.Client(base_url=service, timeout=30) as web:
        page = web.get("/" + link.split("//", 1)[1].split("/", 1)[1])
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "form-action 'self'" in page.headers["content-security-policy"]
        assert 'method="post"' in page.text and secret.group(1) in page.text
        # Opening the link changes nothing: only the page's POST does.
        assert client.get("/auth/me", headers=bearer(token)).json()["email_verified"] is False
        done = web.post("/verify", data={"token": secret.group(1)})
        assert done.status_code == 200 and "confirmed" in done.text
        assert client.get("/auth/me", headers=bearer(token)).json()["email_verified"] is True
        again = web.post("/verify", data={"token": secret.group(1)})
        assert again.status_code == 422 and "does not work" in again.text
        assert web.post("/verify", json={"token": "x"}).status_code == 415
        assert web.post("/verify", data={"token": "a\x00b"}).status_code == 422
