"""Account mail, sent by the `send_email` actor: e-mail verification and password-reset codes,
through `Mailer`, a thin SMTP adapter.

The worker, not the API, decides whether there is anything to send and creates the secret:
the API only enqueues `(kind, e-mail)`, so its answer to register, resend-verification and
forgot-password takes the same time whether or not the account exists, and the plain secret
only ever exists in this process and in the message it mails (Redis keeps a digest).
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

from commands.accounts import RESET_CODE_TTL, VERIFICATION_TTL, Accounts, MailedSecrets

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger("workers.mail")

VERIFY_EMAIL = "verify_email"
PASSWORD_RESET = "password_reset"  # noqa: S105 - a kind of mail, not a password
KINDS = (VERIFY_EMAIL, PASSWORD_RESET)


@dataclass
class MailRuntime:
    """What the mail actor needs in a worker process (built by the composition root)."""

    accounts: Accounts
    redis: Redis
    mailer: Mailer
    secrets: MailedSecrets
    # Where links in mails point: the public address (a front end, or a proxy in front of
    # the API), or else where the API listens.
    base_url: str


class Mailer:
    """Sends mail through an SMTP relay (the development sink, mailpit, or a real server)."""

    def __init__(self, host: str, port: int, sender: str, *, timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout = timeout

    def send(self, to: str, subject: str, text: str) -> str:
        """Deliver one message; returns its Message-ID. SMTP errors propagate so the worker retries."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or "localhost")
        message.set_content(text)
        # local_hostname skips smtplib's socket.getfqdn(), a DNS lookup that can stall for seconds.
        with smtplib.SMTP(self.host, self.port, local_hostname="localhost", timeout=self.timeout) as smtp:
            smtp.send_message(message)
        return str(message["Message-ID"])


def send_account_email(rt: MailRuntime, kind: str, email: str) -> str:
    """Issue the secret for `kind` and mail it, if the account exists (and, for a verification,
    is still unverified). A repeated message mails a fresh secret, which is harmless."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of account mail {kind!r}")
    account = rt.accounts.find(email)
    if account is None:
        log.info("%s: no account for this address, nothing sent", kind)
        return "no_account"
    if kind == VERIFY_EMAIL:
        if account.email_verified:
            return "already_verified"
        token = rt.secrets.issue_verification(rt.redis, account.id)
        subject, text = "Confirm your e-mail address", _verification_text(account.username, token, rt.base_url)
    else:
        code = rt.secrets.issue_reset_code(rt.redis, account.id)
        subject, text = "Your password reset code", _reset_text(account.username, code)
    rt.mailer.send(account.email, subject, text)
    log.info("%s mailed to account %s", kind, account.id)
    return "sent"


def _verification_text(name: str, token: str, base_url: str) -> str:
    hours = int(VERIFICATION_TTL.total_seconds() // 3600)
    return (
        f"Hello {name},\n\n"
        "please confirm the e-mail address of your ticketing account. "
        f"Your verification token (valid for {hours} hours, usable once) is:\n\n"
        f"    {token}\n\n"
        f"Your app submits it as POST {base_url}/api/v1/auth/verify-email with the body\n"
        f'{{"token": "{token}"}}\n\n'
        "If you did not create this account, ignore this message.\n"
    )


def _reset_text(name: str, code: str) -> str:
    minutes = int(RESET_CODE_TTL.total_seconds() // 60)
    return (
        f"Hello {name},\n\n"
        "someone asked to reset the password of your ticketing account. Your code is:\n\n"
        f"    {code}\n\n"
        f"It expires in {minutes} minutes and works once. "
        "If you did not ask for it, ignore this message: your password stays as it is.\n"
    )
