"""Mail content: Jinja2 templates (`workers/templates/mail/<kind>.txt` and `.html`, the HTML
autoescaped) rendered into a `Mail`: subject, plain text, HTML and attachments.

Everything a template shows comes from the context it is given; names, titles and reasons are
whatever people typed, in any script: the text part is UTF-8, the HTML escapes markup, and the
headers are encoded by the `email` package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates" / "mail"

SUBJECTS = {
    "verify_email": "Confirm your e-mail address",
    "password_reset": "Your password reset code",
    "order_confirmed": "Your tickets for {{ event.title }}",
    "payment_failed": "Payment failed for your order for {{ event.title }}",
    "refund_done": "Refund of {{ amount }} for {{ event.title }}",
    "event_cancelled": "Cancelled: {{ event.title }}",
    "event_rescheduled": "New date for {{ event.title }}",
    "ticket_transferred_from": "You passed on a ticket for {{ event.title }}",
    "ticket_transferred_to": "A ticket for {{ event.title }} for you",
    "waitlist_offer": "Tickets for {{ event.title }} are waiting for you",
    "reminder": "Tomorrow: {{ event.title }}",
}

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str
    html: str
    # (file name, content type, bytes)
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)


def render(kind: str, *, attachments: list[tuple[str, str, bytes]] | None = None, **context: Any) -> Mail:
    """The mail of `kind` for `context`."""
    subject = _env.from_string(SUBJECTS[kind]).render(**context)
    # A subject is one line, whatever the title held.
    subject = " ".join(subject.split())
    text = _env.get_template(f"{kind}.txt").render(subject=subject, **context)
    html = _env.get_template(f"{kind}.html").render(subject=subject, **context)
    return Mail(subject, text, html, attachments or [])


ZERO_DECIMAL = {"JPY", "KRW", "VND", "CLP", "ISK", "HUF"}  # as the API formats amounts (api/common.py)


def money(minor: int, currency: str) -> str:
    """Minor units as people read them: "19.90 EUR"."""
    if currency.upper() in ZERO_DECIMAL:
        return f"{minor} {currency}"
    units, cents = divmod(abs(minor), 100)
    return f"{'-' if minor < 0 else ''}{units}.{cents:02d} {currency}"


def local_time(at: datetime, zone: str) -> str:
    """A moment in the show's own time zone: "Thursday 1 May 2031, 21:00 (Europe/Berlin)"."""
    try:
        local = at.astimezone(ZoneInfo(zone))
    except (KeyError, ValueError):
        local, zone = at, "UTC"
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} ({zone})"
