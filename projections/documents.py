"""Printable ticket documents: the QR code image and the PDF with one page per ticket.

Rendered from read-model rows (no I/O beyond reading the installed font and, once per machine
user, writing its trimmed copy: see below), so the API (downloads) and the workers (mail
attachments) print the same document.

The PDF embeds Fira Sans (regular and bold) from the `fontpkg-fira-sans` package: Latin with its
extensions, Greek and Cyrillic, so an attendee called Βασίλης or Ирина is printed as typed (only
the glyphs used are embedded, ~8 KB a page). Text the buyer or organizer typed can be anything,
so every string goes through ``pdf_safe_text`` first: a character the font has no glyph for is
folded to one it has where Unicode says how (``ﬁ`` → ``fi``, full-width letters → ASCII, a
letter with an accent the font lacks → the bare letter), and anything else (emoji, CJK) becomes
``?``, one per run. Rendering never fails on text.

The fonts are not given to fpdf2 as installed but trimmed once (``_trimmed``): fpdf2 parses
every font it is given and subsets it again for every PDF, and the installed files carry what it
never uses (OpenType layout tables, since it does no shaping, TrueType hinting, and glyphs only
those tables reach). Trimmed, a one-ticket PDF took 49 instead of 71 ms of CPU and a two-ticket
one 64 instead of 86 (a mail of a hot sale's purchase is mostly this PDF), and the file is a
third smaller; the text and its widths are the same.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID
from zoneinfo import ZoneInfo

import fontpkg
import segno
from fontTools.ttLib import TTFont

if TYPE_CHECKING:
    # fpdf2 (with fontTools' subsetter) is imported where a PDF is made: it costs ~0.85 s of CPU
    # at every API process's start otherwise, and most processes never make one.
    from fpdf import FPDF

__all__ = ["TicketDocument", "pdf_safe_text", "qr_png", "tickets_pdf"]

# fpdf2 subsets the fonts of every PDF with fontTools, which logs each table it prunes at INFO:
# about a hundred lines per PDF in a worker's log (139,392 lines while 1,352 orders were paid).
logging.getLogger("fontTools.subset").setLevel(logging.WARNING)

_FAMILY = "Fira Sans"
_FONT = "ticket"  # the name the PDF's text is set in (regular "" and bold "B")
# Longer input cannot fit on a page anyway; cutting it first keeps layout work bounded.
_MAX_TEXT = 500
_REPLACEMENT = "?"
_ELLIPSIS = "\u2026"

# A4 portrait, millimetres: printable at home, and readable when shown on a phone.
_PAGE_W = 210.0
_MARGIN = 15.0
_CONTENT_W = _PAGE_W - 2 * _MARGIN
_QR_SIZE = 70.0
_QR_X = _PAGE_W - _MARGIN - _QR_SIZE
_DETAILS_W = _QR_X - _MARGIN - 8
_INK = (20, 20, 20)
_MUTED = (110, 110, 110)
_VOID_RED = (200, 20, 20)


@dataclass(frozen=True)
class TicketDocument:
    """Everything printed on one ticket page.

    ``code`` is the short human-readable code, ``qr_data`` the signed code for the QR image,
    ``price`` the formatted amount (e.g. ``"19.90"``). A ``status`` of ``"voided"`` prints the page
    as VOID and leaves out the QR code.
    """

    ticket_id: UUID
    code: str
    qr_data: str
    event_title: str
    venue_name: str
    event_start_time: datetime
    timezone: str
    tier_name: str
    section: str | None
    row: str | None
    seat: str | None
    price: str
    currency: str
    holder_name: str | None = None
    status: str = "valid"
    order_number: str | None = None


def qr_png(data: str, *, scale: int = 8) -> bytes:
    """``data`` as a QR code PNG: error correction level M, the standard 4-module quiet zone.

    ``scale`` is the size of one module in pixels. A regular (never Micro) QR code is made, since
    not every scanner reads Micro QR.
    """
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    qr = segno.make_qr(data, error="m", boost_error=False)
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def tickets_pdf(tickets: Sequence[TicketDocument]) -> bytes:
    """A PDF with one A4 page per ticket, in the given order."""
    if not tickets:
        raise ValueError("a ticket PDF needs at least one ticket")
    from fpdf import FPDF

    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    regular, bold = _font_files()
    pdf.add_font(_FONT, "", regular)
    pdf.add_font(_FONT, "B", bold)
    # Every field is fitted to its box, so nothing may silently spill onto an extra page.
    pdf.set_auto_page_break(auto=False)
    pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
    pdf.set_title("Tickets")
    pdf.set_creator("ticketing")
    for ticket in tickets:
        _ticket_page(pdf, ticket)
    return bytes(pdf.output())


def pdf_safe_text(text: str) -> str:
    """``text`` reduced to what the ticket font can show, on one line."""
    out: list[str] = []
    replaced = False
    # NFC first, so a letter typed as base + combining accent keeps its accent where it can.
    for char in unicodedata.normalize("NFC", text[:_MAX_TEXT]):
        if char in "\t\n\r\v\f\x85\u2028\u2029":
            out.append(" ")
        elif unicodedata.category(char) in {"Cc", "Cf", "Mn", "Me"}:
            # Zero-width joiners, variation selectors, bidi marks, stray combining marks: invisible
            # or meaningless without their base.
            continue
        elif _encodable(char):
            out.append(char)
        else:
            folded = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            if not folded or not _encodable(folded):
                # One "?" per unprintable run: an emoji sequence or a CJK word reads as one gap.
                if not replaced:
                    out.append(_REPLACEMENT)
                replaced = True
                continue
            out.append(folded)
        replaced = False
    return " ".join("".join(out).split())


@functools.cache
def _installed_fonts() -> tuple[Path, Path]:
    """The regular and bold font files as installed (found once per process)."""
    return fontpkg.path(_FAMILY, weight=400), fontpkg.path(_FAMILY, weight=700)


@functools.cache
def _font_files() -> tuple[Path, Path]:
    """The regular and bold font files the PDFs use: the installed ones, trimmed (``_trimmed``)."""
    regular, bold = _installed_fonts()
    return _trimmed(regular), _trimmed(bold)


@functools.cache
def _glyphs() -> frozenset[int]:
    """Code points both weights of the font can draw."""
    covered = []
    for path in _installed_fonts():
        with TTFont(path, lazy=True) as font:
            covered.append(set(font.getBestCmap()))
    return frozenset(set.intersection(*covered))


# Bump when the trimming below changes, so files trimmed the old way are not reused.
_TRIM_VERSION = "1"


def _trimmed(source: Path) -> Path:
    """``source`` without what fpdf2 never uses, made once per font file and machine user.

    Kept: every glyph of a code point both weights draw (``_glyphs``), their outlines and widths,
    and the font's names. Dropped: the OpenType layout tables (GSUB, GPOS, GDEF, kern: fpdf2 lays
    text out glyph by glyph from the widths, without shaping), the hinting programs, and glyphs
    only those tables reach. The file goes to the user's cache directory (written whole, then
    renamed, so processes racing to make it never read half of one); where that is not writable,
    to a temporary directory of this process.
    """
    data = source.read_bytes()
    glyphs = ",".join(map(str, sorted(_glyphs())))
    digest = hashlib.sha256(b"%s|%s|%s" % (_TRIM_VERSION.encode(), glyphs.encode(), data)).hexdigest()[:16]
    name = f"{source.stem}-{digest}.ttf"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ticketing" / "fonts"
    try:
        return _trimmed_into(cache / name, data)
    except OSError:
        return _trimmed_into(Path(tempfile.mkdtemp(prefix="ticketing-fonts-")) / name, data)


def _trimmed_into(target: Path, data: bytes) -> Path:
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as part:
            part.write(_trim(data))
        os.replace(part.name, target)
    return target


def _trim(data: bytes) -> bytes:
    from fontTools import subset

    options = subset.Options()
    options.layout_features = []
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "kern"]
    options.hinting = False
    options.notdef_outline = True
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.glyph_names = False
    font = TTFont(io.BytesIO(data), recalcTimestamp=False)  # the same file whenever it is made
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(_glyphs()))
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


def _encodable(text: str) -> bool:
    glyphs = _glyphs()
    return all(ord(char) in glyphs for char in text)


def _format_start(start: datetime, zone_name: str) -> str:
    zone: tzinfo
    try:
        zone = ZoneInfo(zone_name)
    except (KeyError, ValueError, OSError):
        # ZoneInfoNotFoundError is a KeyError; malformed keys raise ValueError or OSError.
        zone = UTC
    # A naive time from the store is UTC, never the server's local time.
    aware = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
    try:
        local = aware.astimezone(zone)
    except (OverflowError, ValueError):
        local = aware.astimezone(UTC)
    return f"{local:%A}, {local.day} {local:%B %Y}, {local:%H:%M} {local.tzname() or 'UTC'}"


def _seat_line(ticket: TicketDocument) -> str:
    parts = [
        f"{label} {value.strip()}"
        for label, value in (("Section", ticket.section), ("Row", ticket.row), ("Seat", ticket.seat))
        if value and value.strip()
    ]
    return ", ".join(parts) if parts else "General admission"


def _ticket_page(pdf: FPDF, ticket: TicketDocument) -> None:
    voided = ticket.status == "voided"
    pdf.add_page()
    pdf.set_text_color(*_INK)
    pdf.set_draw_color(*_INK)

    if voided:
        pdf.set_fill_color(*_VOID_RED)
        pdf.set_text_color(255, 255, 255)
        pdf.set_font(_FONT, "B", 14)
        pdf.set_xy(_MARGIN, _MARGIN)
        pdf.cell(_CONTENT_W, 10, "VOID \u2013 this ticket is not valid for entry", align="C", fill=True)
        pdf.set_text_color(*_INK)
        pdf.set_y(_MARGIN + 16)
    else:
        pdf.set_y(_MARGIN)

    pdf.set_font(_FONT, "B", 22)
    for line in _wrap(pdf, pdf_safe_text(ticket.event_title), _CONTENT_W, max_lines=3):
        pdf.set_x(_MARGIN)
        pdf.cell(_CONTENT_W, 10, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font(_FONT, "", 13)
    for text in (ticket.venue_name, _format_start(ticket.event_start_time, ticket.timezone)):
        pdf.cell(_CONTENT_W, 7, _fit(pdf, pdf_safe_text(text), _CONTENT_W), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.line(_MARGIN, pdf.get_y(), _PAGE_W - _MARGIN, pdf.get_y())
    top = pdf.get_y() + 8

    pdf.set_y(top)
    fields = [("Ticket type", ticket.tier_name), ("Seat", _seat_line(ticket))]
    if ticket.holder_name and ticket.holder_name.strip():
        fields.append(("Name", ticket.holder_name))
    fields.append(("Price", f"{ticket.price} {ticket.currency}"))
    if ticket.order_number:
        fields.append(("Order", ticket.order_number))
    if ticket.status not in {"valid", "voided"}:
        fields.append(("Status", ticket.status.replace("_", " ").capitalize()))
    for label, value in fields:
        _field(pdf, label, value)

    code = pdf_safe_text(ticket.code)
    if voided:
        # A voided ticket must not carry a code a scanner could still read.
        pdf.set_draw_color(*_VOID_RED)
        pdf.set_line_width(1.0)
        pdf.rect(_QR_X, top, _QR_SIZE, _QR_SIZE)
        pdf.line(_QR_X, top, _QR_X + _QR_SIZE, top + _QR_SIZE)
        pdf.line(_QR_X, top + _QR_SIZE, _QR_X + _QR_SIZE, top)
        pdf.set_line_width(0.2)
        pdf.set_draw_color(*_INK)
    else:
        pdf.image(io.BytesIO(qr_png(ticket.qr_data)), x=_QR_X, y=top, w=_QR_SIZE, h=_QR_SIZE)
    pdf.set_xy(_QR_X - 10, top + _QR_SIZE + 2)
    pdf.set_font(_FONT, "B", 24)
    pdf.cell(_QR_SIZE + 20, 12, _fit(pdf, code, _QR_SIZE + 20), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(_QR_X - 10)
    pdf.set_font(_FONT, "", 9)
    pdf.set_text_color(*_MUTED)
    pdf.cell(_QR_SIZE + 20, 5, "Ticket code", align="C")

    pdf.set_xy(_MARGIN, 270)
    pdf.set_font(_FONT, "", 8)
    pdf.cell(_CONTENT_W, 4, "Show the QR code at the entrance. Each ticket admits one person once.")
    pdf.set_xy(_MARGIN, 275)
    pdf.cell(_CONTENT_W, 4, f"Ticket ID {ticket.ticket_id}")
    pdf.set_text_color(*_INK)

    if voided:
        pdf.set_text_color(*_VOID_RED)
        pdf.set_font(_FONT, "B", 110)
        with pdf.rotation(angle=35, x=_PAGE_W / 2, y=160):
            pdf.set_xy(0, 145)
            pdf.cell(_PAGE_W, 40, "VOID", align="C")
        pdf.set_text_color(*_INK)


def _field(pdf: FPDF, label: str, value: str) -> None:
    pdf.set_x(_MARGIN)
    pdf.set_font(_FONT, "", 9)
    pdf.set_text_color(*_MUTED)
    pdf.cell(_DETAILS_W, 5, label.upper(), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*_INK)
    pdf.set_font(_FONT, "B", 15)
    for line in _wrap(pdf, pdf_safe_text(value), _DETAILS_W, max_lines=2):
        pdf.cell(_DETAILS_W, 8, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _wrap(pdf: FPDF, text: str, width: float, *, max_lines: int) -> list[str]:
    """``text`` broken into at most ``max_lines`` lines of ``width``, the last one ellipsized if cut."""
    lines: list[str] = []
    current = ""
    words = text.split(" ")
    for index, word in enumerate(words):
        candidate = f"{current} {word}" if current else word
        if pdf.get_string_width(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        # A word wider than the line (a URL, a run of "?") is broken between characters.
        while pdf.get_string_width(current) > width and len(lines) < max_lines:
            cut = _fitting_prefix(pdf, current, width)
            lines.append(current[:cut])
            current = current[cut:]
        if len(lines) >= max_lines:
            rest = " ".join([current, *words[index + 1 :]]).strip()
            if rest:
                lines[max_lines - 1] = _fit(pdf, f"{lines[max_lines - 1]} {rest}", width)
            return lines[:max_lines]
    if current or not lines:
        lines.append(current)
    return lines


def _fit(pdf: FPDF, text: str, width: float) -> str:
    """``text`` if it fits ``width``, else its longest prefix that fits with an ellipsis."""
    if pdf.get_string_width(text) <= width:
        return text
    cut = _fitting_prefix(pdf, text, width - pdf.get_string_width(_ELLIPSIS))
    return text[:cut].rstrip() + _ELLIPSIS


def _fitting_prefix(pdf: FPDF, text: str, width: float) -> int:
    """Length of the longest prefix of ``text`` within ``width``; at least 1 so callers progress."""
    low, high = 1, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if pdf.get_string_width(text[:middle]) <= width:
            low = middle
        else:
            high = middle - 1
    return low
