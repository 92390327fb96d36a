"""Sending mail: `Mailer`, a thin SMTP adapter (plain, STARTTLS or TLS, with login), and the
account mails (`send_account_email`: e-mail verification, password-reset codes).

Account mails are not decided by the notifier: their secrets must never reach the event log.
The worker, not the API, decides whether there is anything to send and creates the secret:
the API only enqueues `(kind, e-mail)`, so its answer to register, resend-verification and
forgot-password takes the same time whether or not the account exists, and the plain secret
only ever exists in this process and in the message it mails (Redis keeps a digest).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from commands.accounts import RESET_CODE_TTL, VERIFICATION_TTL, Accounts, MailedSecrets
from workers.mail_render import Mail, render

if TYPE_CHECKING:
    from redis import Redis

    from commands.tickets_signing import TicketSigner

log = logging.getLogger("workers.mail")

VERIFY_EMAIL = "verify_email"
PASSWORD_RESET = "password_reset"  # noqa: S105 - a kind of mail, not a password
KINDS = (VERIFY_EMAIL, PASSWORD_RESET)
SECURITY = ("none", "starttls", "tls")


@dataclass
class MailRuntime:
    """What the mail actors need in a worker process (built by the composition root)."""

    accounts: Accounts
    redis: Redis
    mailer: Mailer
    secrets: MailedSecrets
    # Where links in mails point: the public address (a front end, or a proxy in front of
    # the API), or else where the API listens.
    base_url: str
    signer: TicketSigner | None = None


class Mailer:
    """Sends mail through an SMTP relay (the development sink, mailpit, or a real server).

    `security`: "none" (plain, for a local relay or the sink), "starttls" (upgrade after EHLO,
    usually port 587) or "tls" (TLS from the first byte, usually port 465); certificates are
    verified against the system's roots. With a `username` the mailer logs in (after TLS).
    """

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        security: str = "none",
        username: str = "",
        password: str = "",
        timeout: float = 10.0,
    ) -> None:
        if security not in SECURITY:
            raise ValueError(f"SMTP_SECURITY must be one of {', '.join(SECURITY)}, not {security!r}")
        self.host = host
        self.port = port
        self.sender = sender
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout

    @property
    def domain(self) -> str:
        return self.sender.rpartition("@")[2].strip(">") or "localhost"

    def message(self, to: str, name: str, mail: Mail, *, message_id: str | None = None) -> EmailMessage:
        """The MIME message: text and HTML alternatives, then the attachments."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = Address(display_name=name, addr_spec=to) if name else to
        message["Subject"] = mail.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = message_id or make_msgid(domain=self.domain)
        message.set_content(mail.text)
        message.add_alternative(mail.html, subtype="html")
        for filename, content_type, data in mail.attachments:
            maintype, _, subtype = content_type.partition("/")
            message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        return message

    def send(self, message: EmailMessage) -> str:
        """Deliver one message; returns its Message-ID. SMTP errors propagate so the worker retries."""
        # local_hostname skips smtplib's socket.getfqdn(), a DNS lookup that can stall for seconds.
        smtp: smtplib.SMTP
        if self.security == "tls":
            context = ssl.create_default_context()
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, local_hostname="localhost", timeout=self.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, local_hostname="localhost", timeout=self.timeout)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(message)
        return str(message["Message-ID"])


def display_name(first_name: str, last_name: str, username: str) -> str:
    """How a person is greeted and addressed: their name, else their username."""
    return " ".join(p for p in (first_name.strip(), last_name.strip()) if p) or username


def send_account_email(rt: MailRuntime, kind: str, email: str) -> str:
    """Issue the secret for `kind` and mail it, if the account exists (and, for a verification,
    is still unverified). A repeated message mails a fresh secret, which is harmless."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of account mail {kind!r}")
    account = rt.accounts.find(email)
    if account is None:
        log.info("%s: no account for this address, nothing sent", kind)
        return "no_account"
    name = display_name(account.first_name, account.last_name, account.username)
    if kind == VERIFY_EMAIL:
        if account.email_verified:
            return "already_verified"
        token = rt.secrets.issue_verification(rt.redis, account.id)
        context: dict[str, Any] = {"token": token, "link": f"{rt.base_url}/verify?token={quote(token)}",
                   "hours": int(VERIFICATION_TTL.total_seconds() // 3600)}  # fmt: skip
    else:
        code = rt.secrets.issue_reset_code(rt.redis, account.id)
        context = {"code": code, "minutes": int(RESET_CODE_TTL.total_seconds() // 60)}
    mail = render(kind, name=name, base_url=rt.base_url, **context)
    rt.mailer.send(rt.mailer.message(account.email, name, mail))
    log.info("%s mailed to account %s", kind, account.id)
    return "sent"
