"""Delivering the mails the notifier decided (`projections/notifier.py`): one outbox row, one
message, one recipient.

`deliver` locks the row (another worker holding it is skipped), waits until the read models have
applied the row's event (else it raises `NotReady`, and dramatiq retries later), renders the
mail from the read models, sends it with a Message-ID derived from the row's key, and marks the
row sent in the same transaction. A row already sent is never sent again; if the process dies
between the SMTP server's "250" and the commit, the retry sends the same message with the same
Message-ID, which mail clients show once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import Connection
from psycopg.rows import DictRow, dict_row

from commands.boxoffice import BoxOffice
from commands.tickets_signing import TicketSigner, human_code
from domain.errors import NotFound
from domain.order import Order
from projections import notifier as n
from projections.documents import TicketDocument, tickets_pdf
from projections.queries import TICKET_SQL
from workers.mail import MailRuntime, display_name
from workers.mail_render import Mail, local_time, money, render

log = logging.getLogger("workers.mail")


class NotReady(Exception):
    """The read models have not applied the row's event yet; try again shortly."""


@dataclass
class Recipient:
    account_id: UUID
    email: str
    name: str


def message_id(key: str, domain: str) -> str:
    """The Message-ID of a row's mail: the key, made a valid msg-id."""
    return f"<{re.sub(r'[^A-Za-z0-9_.-]', '.', key)}@{domain}>"


def deliver(rt: MailRuntime, boxoffice: BoxOffice, dsn: str, key: str) -> tuple[str, list[str]]:
    """Send the row's mail (or expand a fan-out row); returns (outcome, keys of new rows to queue)."""
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        row = n.outbox_row(conn, key)
        if row is None:
            return "missing or being sent by another worker", []
        if row["sent_at"] is not None:
            return "already sent", []
        if row["notification_id"] and n.read_position(conn, boxoffice.name) < row["notification_id"]:
            raise NotReady(f"read models behind position {row['notification_id']}")
        if row["kind"] == n.FANOUT:
            added = n.add_rows(conn, _expand(conn, row))
            n.mark_sent(conn, key, None)
            return f"expanded into {len(added)} mails", added
        composed = Composer(rt, boxoffice, conn).compose(row["kind"], row["data"])
        if composed is None:
            n.mark_sent(conn, key, None)
            return "nobody to mail", []
        recipient, mail = composed
        message = rt.mailer.message(recipient.email, recipient.name, mail, message_id=message_id(key, rt.mailer.domain))
        rt.mailer.send(message)
        n.mark_sent(conn, key, str(message["Message-ID"]))
        return f"sent to account {recipient.account_id}", []


def record_failure(dsn: str, key: str, error: BaseException) -> None:
    """Note a failed attempt on the row (for operators), in a transaction of its own."""
    try:
        with psycopg.connect(dsn, row_factory=dict_row) as conn:
            n.note_failure(conn, key, f"{type(error).__name__}: {error}")
    except psycopg.Error:
        log.warning("could not record the failure of mail %s", key, exc_info=True)


def queue_reminders(dsn: str, now: datetime | None = None) -> list[str]:
    """Outbox rows for the reminders due (shows within a day), once per show date and holder."""
    now = now or datetime.now(UTC)
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        rows = [
            (f"{n.REMINDER}:{r['event_id']}:{r['start_time']:%Y%m%dT%H%M%SZ}:{r['owner_id']}", n.REMINDER, 0,
             {"event_id": str(r["event_id"]), "account_id": str(r["owner_id"])})
            for r in n.shows_to_remind(conn, now)
        ]  # fmt: skip
        return n.add_rows(conn, rows)


def _expand(conn: Connection[DictRow], row: DictRow) -> list[tuple[str, str, int, dict[str, Any]]]:
    data = row["data"]
    kind = data["kind"]
    event_id = UUID(data["event_id"])
    parent = row["key"].removeprefix(f"{n.FANOUT}:").removesuffix(f":{kind}")
    return [
        (f"{kind}:{parent}:{holder}", kind, row["notification_id"],
         {"event_id": str(event_id), "account_id": str(holder)})
        for holder in n.holders_of_event(conn, event_id)
    ]  # fmt: skip


class Composer:
    """The recipient and content of each kind of mail, from the read models."""

    def __init__(self, rt: MailRuntime, boxoffice: BoxOffice, conn: Connection[DictRow]) -> None:
        self.rt = rt
        self.boxoffice = boxoffice
        self.conn = conn
        self.base = rt.base_url

    def compose(self, kind: str, data: dict[str, Any]) -> tuple[Recipient, Mail] | None:
        handler = getattr(self, f"_{kind}")
        result: tuple[Recipient, Mail] | None = handler(data)
        return result

    # Look-ups ---------------------------------------------------------------------------------

    def recipient(self, account_id: UUID) -> Recipient | None:
        try:
            a = self.rt.accounts.get_account(account_id)
        except NotFound:
            return None
        return Recipient(a.id, a.email, display_name(a.first_name, a.last_name, a.username))

    def order(self, order_id: UUID) -> DictRow | None:
        return self.conn.execute("SELECT * FROM read.orders WHERE id = %s", (order_id,)).fetchone()

    def event(self, event_id: UUID) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT title, start_time, timezone, venue_name, city FROM read.events WHERE id = %s", (event_id,)
        ).fetchone()
        if row is None:
            raise NotReady(f"event {event_id} not in the read model yet")
        return {"title": row["title"], "when": local_time(row["start_time"], row["timezone"]),
                "venue": row["venue_name"], "city": row["city"], "timezone": row["timezone"]}  # fmt: skip

    def tickets(self, where: str, params: tuple[Any, ...]) -> list[DictRow]:
        return self.conn.execute(f"{TICKET_SQL} WHERE {where} ORDER BY t.id", params).fetchall()

    def ticket_lines(self, rows: list[DictRow], *, prices: bool = True) -> list[dict[str, Any]]:
        return [
            {"code": human_code(r["id"]), "tier": r["tier_name"] or "", "seat": _seat(r),
             "attendee": r["attendee_name"], "price": money(r["price"], r["currency"]) if prices else "",
             "link": f"{self.base}/api/v1/tickets/{r['id']}/pdf"}
            for r in rows
        ]  # fmt: skip

    def pdf(self, rows: list[DictRow]) -> list[tuple[str, str, bytes]]:
        signer: TicketSigner | None = self.rt.signer
        valid = [r for r in rows if r["status"] == "valid"]
        if signer is None or not valid:
            return []
        documents = [
            TicketDocument(
                ticket_id=r["id"], code=human_code(r["id"]),
                qr_data=signer.sign(r["id"], r["event_id"], r["generation"]),
                event_title=r["event_title"], venue_name=r["venue_name"], event_start_time=r["event_start_time"],
                timezone=r["timezone"], tier_name=r["tier_name"] or "", section=r["section"], row=r["row_label"],
                seat=r["seat"], price=money(r["price"], r["currency"]).split(" ")[0], currency=r["currency"],
                holder_name=r["attendee_name"], order_number=r.get("order_number"),
            )
            for r in valid
        ]  # fmt: skip
        return [("tickets.pdf", "application/pdf", tickets_pdf(documents))]

    def common(self, who: Recipient) -> dict[str, Any]:
        return {"name": who.name, "base_url": self.base, "tickets_link": f"{self.base}/api/v1/me/tickets"}

    # Kinds ------------------------------------------------------------------------------------

    def _order_confirmed(self, data: dict[str, Any]) -> tuple[Recipient, Mail] | None:
        order = self.order(UUID(data["order_id"]))
        who = self.recipient(order["buyer_id"]) if order else None
        if order is None or who is None:
            return None
        rows = self.tickets("t.order_id = %s", (order["id"],))
        if not rows:
            raise NotReady(f"tickets of order {order['id']} not in the read model yet")
        mail = render(
            n.ORDER_CONFIRMED, **self.common(who), order_id=order_ref(order), event=self.event(order["event_id"]),
            tickets=self.ticket_lines(rows), total=money(order["amount_paid"] or order["total"], order["currency"]),
            attachments=self.pdf(rows),
        )  # fmt: skip
        return who, mail

    def _payment_failed(self, data: dict[str, Any]) -> tuple[Recipient, Mail] | None:
        order = self.order(UUID(data["order_id"]))
        who = self.recipient(order["buyer_id"]) if order else None
        if order is None or who is None or order["status"] != "held":
            return None  # paid since, or closed: the failure no longer matters
        event = self.event(order["event_id"])
        mail = render(
            n.PAYMENT_FAILED, **self.common(who), order_id=order_ref(order), event=event, reason=data["reason"],
            hold_until=local_time(order["hold_expires_at"], event["timezone"]),
            order_link=f"{self.base}/api/v1/orders/{order['id']}",
        )  # fmt: skip
        return who, mail

    def _refund(self, kind: str, data: dict[str, Any]) -> tuple[Recipient, Mail] | None:
        order = self.order(UUID(data["order_id"]))
        who = self.recipient(order["buyer_id"]) if order else None
        if order is None or who is None:
            return None
        rows = self.tickets("t.id = ANY(%s)", ([UUID(t) for t in data["ticket_ids"]],))
        mail = render(
            kind, **self.common(who), order_id=order_ref(order), event=self.event(order["event_id"]),
            tickets=self.ticket_lines(rows), amount=money(data["amount"], order["currency"]),
            reason="" if kind == n.EVENT_CANCELLED else data["reason"], cancel_reason="",
        )  # fmt: skip
        return who, mail

    def _refund_done(self, data: dict[str, Any]) -> tuple[Recipient, Mail] | None:
        return self._refund(n.REFUND_DONE, data)

    def _event_cancelled(self, data: dict[str, Any]) -> tuple[Recipient, Mail] | None:
        return self._refund(n.EVENT_CANCELLED, data)

    def _holder_mail(self, kind: str, data: dict[str, Any], *, pdf: bool) -> tuple[Recipient, Mail] | None:
        who = self.recipient(UUID(data["account_id"]))
        event_id = UUID(data["event_id"])
        rows = (
            self.tickets("t.event_id = %s AND t.owner_id = %s AND t.status = 'valid'", (event_id, who.account_id))
            if who
            else []
        )
        if who is None or not rows:
            return None
        mail = render(
            kind, **self.common(who), event=self.event(event_id), tickets=self.ticket_lines(rows, prices=False),
            attachments=self.pdf(rows) if pdf else [],
        )  # fmt: skip
        return who, mail

    def _event_rescheduled(self, data: dict[str, Any]) -> tuple[Recipient, Mail] | None:
        return self._holder_mail(n.EVENT_RESCHEDULED, data, pdf=False)

    def _reminder(self, data: dict[str, Any]) -> tuple[Recipient, Mail] | None:
        return self._holder_mail(n.REMINDER, data, pdf=True)

    def _transfer(self, kind: str, data: dict[str, Any]) -> tuple[Recipient, Mail] | None:
        order_id, ticket_id, to_id = UUID(data["order_id"]), UUID(data["ticket_id"]), UUID(data["to_id"])
        # Who held the ticket before: the order as it was just before the transfer.
        before: Order = self.boxoffice.repository.get(order_id, version=data["version"] - 1)
        from_id = before.ticket_holder(ticket_id)
        sender, receiver = self.recipient(from_id), self.recipient(to_id)
        if sender is None or receiver is None:
            return None
        rows = self.tickets("t.id = %s", (ticket_id,))
        if not rows:
            raise NotReady(f"ticket {ticket_id} not in the read model yet")
        who, other = (sender, receiver) if kind == n.TICKET_SENT else (receiver, sender)
        mail = render(
            kind, **self.common(who), event=self.event(rows[0]["event_id"]), other=f"{other.name} <{other.email}>",
            ticket=self.ticket_lines(rows, prices=False)[0], tickets=self.ticket_lines(rows, prices=False),
            attachments=self.pdf(rows) if kind == n.TICKET_RECEIVED else [],
        )  # fmt: skip
        return who, mail

    def _ticket_transferred_from(self, data: dict[str, Any]) -> tuple[Recipient, Mail] | None:
        return self._transfer(n.TICKET_SENT, data)

    def _ticket_transferred_to(self, data: dict[str, Any]) -> tuple[Recipient, Mail] | None:
        return self._transfer(n.TICKET_RECEIVED, data)

    def _waitlist_offer(self, data: dict[str, Any]) -> tuple[Recipient, Mail] | None:
        who = self.recipient(UUID(data["account_id"]))
        order = self.order(UUID(data["order_id"]))
        if who is None:
            return None
        if order is None:
            raise NotReady(f"order {data['order_id']} not in the read model yet")
        event = self.event(order["event_id"])
        until = datetime.fromisoformat(data["until"])
        mail = render(
            n.WAITLIST_OFFER, **self.common(who), event=event, order_id=order_ref(order), quantity=data["quantity"],
            total=money(order["total"], order["currency"]), until=local_time(until, event["timezone"]),
            order_link=f"{self.base}/api/v1/orders/{order['id']}",
        )  # fmt: skip
        return who, mail


def _seat(row: DictRow) -> str:
    parts = [row["section"], f"row {row['row_label']}" if row["row_label"] else None,
             f"seat {row['seat']}" if row["seat"] else None]  # fmt: skip
    return ", ".join(p for p in parts if p)


def order_ref(order: DictRow) -> Any:
    """How a mail names an order: its short number (orders placed before numbering: its id)."""
    return order["number"] or order["id"]
