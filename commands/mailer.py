"""A thin SMTP adapter: one plain-text message per call."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid


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
