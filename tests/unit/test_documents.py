from __future__ import annotations

import dataclasses
import io
import re
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pypdf import PdfReader

from commands.tickets_signing import TicketSigner, human_code
from projections import documents
from projections.documents import TicketDocument, pdf_safe_text, qr_png, tickets_pdf

SIGNER = TicketSigner.from_secret("documents-test-secret")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def ticket(**changes: Any) -> TicketDocument:
    ticket_id, event_id = uuid4(), uuid4()
    document = TicketDocument(
        ticket_id=ticket_id,
        code=human_code(ticket_id),
        qr_data=SIGNER.sign(ticket_id, event_id),
        event_title="The Demo Band — Live",
        venue_name="Demo Arena",
        event_start_time=datetime(2031, 5, 1, 17, 0, tzinfo=UTC),
        timezone="Europe/Berlin",
        tier_name="Seated",
        section="B",
        row="3",
        seat="12",
        price="19.90",
        currency="EUR",
        holder_name="Zoë O\u2019Brien",
    )
    return dataclasses.replace(document, **changes)


def page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", pdf))


def image_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Subtype\s*/Image\b", pdf))


def page_texts(pdf: bytes) -> list[str]:
    """The text of each page as a PDF reader extracts it (through the fonts' ToUnicode maps)."""
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def page_fonts(pdf: bytes) -> set[str]:
    """The base names of the fonts the pages use (subset prefix dropped)."""
    names = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        resources: Any = page["/Resources"]
        for font in resources["/Font"].values():
            names.add(str(font.get_object()["/BaseFont"]).split("+")[-1])
    return names


def test_qr_png_is_a_decodable_square_png_of_plausible_size() -> None:
    png = qr_png(SIGNER.sign(uuid4(), uuid4()))
    assert png.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        width, height = image.size
    assert width == height
    assert width % 8 == 0
    # A 137-character code needs a version 7 or 8 symbol (45 or 49 modules) plus 2 * 4 quiet-zone modules.
    assert (45 + 8) * 8 <= width <= (49 + 8) * 8
    assert len(png) < 5_000


def test_qr_png_scale_sets_the_module_size() -> None:
    data = SIGNER.sign(uuid4(), uuid4())
    with Image.open(io.BytesIO(qr_png(data, scale=2))) as small, Image.open(io.BytesIO(qr_png(data, scale=8))) as big:
        assert big.size[0] == 4 * small.size[0]
    with pytest.raises(ValueError):
        qr_png(data, scale=0)


def test_short_data_still_gets_a_regular_qr_code() -> None:
    # segno would pick a Micro QR for a few characters, which many phone scanners cannot read.
    with Image.open(io.BytesIO(qr_png("A1", scale=1))) as image:
        assert image.size == (21 + 8, 21 + 8)


def test_pdf_has_one_page_and_one_qr_code_per_ticket() -> None:
    for count in (1, 3):
        pdf = tickets_pdf([ticket() for _ in range(count)])
        assert pdf.startswith(b"%PDF")
        assert pdf.rstrip().endswith(b"%%EOF")
        assert page_count(pdf) == count
        assert image_count(pdf) == count
        # The font's subset is embedded once, whatever the number of pages.
        assert len(pdf) < 30_000 + 6_000 * count


def test_pdf_page_shows_the_ticket_details_in_the_events_time_zone() -> None:
    document = ticket()
    [text] = page_texts(tickets_pdf([document]))
    for expected in (
        "The Demo Band — Live",
        "Demo Arena",
        "Thursday, 1 May 2031, 19:00 CEST",
        "Seated",
        "Section B, Row 3, Seat 12",
        "Zoë O\u2019Brien",
        "19.90 EUR",
        document.code,
        str(document.ticket_id),
    ):
        assert expected in text
    assert "VOID" not in text


def test_ticket_without_a_seat_is_general_admission_and_holder_is_optional() -> None:
    [text] = page_texts(tickets_pdf([ticket(section=None, row=None, seat=None, holder_name=None)]))
    assert "General admission" in text
    assert "NAME" not in text


def test_unknown_time_zone_falls_back_to_utc_and_naive_times_are_utc() -> None:
    [unknown, naive] = page_texts(
        tickets_pdf(
            [
                ticket(timezone="Mars/Olympus_Mons"),
                ticket(event_start_time=datetime(2031, 12, 1, 18, 30), timezone="America/New_York"),
            ]
        )
    )
    assert "17:00 UTC" in unknown
    assert "Monday, 1 December 2031, 13:30 EST" in naive


def test_voided_ticket_is_marked_void_and_carries_no_qr_code() -> None:
    pdf = tickets_pdf([ticket(), ticket(status="voided")])
    valid, voided = page_texts(pdf)
    assert "VOID" in voided
    assert "VOID" not in valid
    assert page_count(pdf) == 2
    assert image_count(pdf) == 1


def test_unicode_and_very_long_text_render_on_a_single_page() -> None:
    pdf = tickets_pdf(
        [
            ticket(
                event_title="Hatsune Miku 初音ミク 🎤🎶 — ライブ",
                venue_name="東京ドーム",
                holder_name="\U0001f468\u200d\U0001f469\u200d\U0001f467 family",  # an emoji ZWJ sequence
            ),
            ticket(event_title="Very long title " * 300, venue_name="v" * 5000, tier_name="x" * 5000, seat="9" * 500),
            ticket(event_title="", venue_name="", tier_name="", code="", price="", currency=""),
            ticket(event_title="Line\nbreaks\tand\x00controls\u200b\u202e and (parentheses) \\ backslash"),
        ]
    )
    assert page_count(pdf) == 4
    texts = page_texts(pdf)
    assert "Hatsune Miku ? ? — ?" in texts[0]
    assert "…" in texts[1]


@settings(max_examples=15, deadline=None)  # each PDF embeds a font subset: ~0.5 s
@given(
    title=st.text(),
    venue=st.text(),
    tier=st.text(),
    holder=st.none() | st.text(),
    seat=st.none() | st.text(),
    zone=st.text(),
    code=st.text(),
)
def test_any_text_renders_without_error(
    title: str, venue: str, tier: str, holder: str | None, seat: str | None, zone: str, code: str
) -> None:
    pdf = tickets_pdf(
        [
            ticket(
                event_title=title,
                venue_name=venue,
                tier_name=tier,
                holder_name=holder,
                seat=seat,
                timezone=zone,
                code=code,
            )
        ]
    )
    assert page_count(pdf) == 1


def test_greek_and_cyrillic_names_are_printed_as_typed_with_the_embedded_unicode_font() -> None:
    names = ["Βασίλης Παπαδόπουλος", "Ирина Шевченко", "Đorđe Šćepanović", "Ålesund Ærøskøbing"]
    pdf = tickets_pdf([ticket(holder_name=name, event_title="Συναυλία — Концерт") for name in names])
    texts = page_texts(pdf)
    for name, text in zip(names, texts, strict=True):
        assert name in text
        assert "Συναυλία — Концерт" in text
        assert "?" not in text
    # Text is drawn in the embedded TrueType font (regular and bold), no core font is used.
    assert page_fonts(pdf) == {"FiraSans", "FiraSansBold"}
    assert b"/FontFile2" in pdf


def test_glyphs_the_font_lacks_fall_back_to_a_marker_and_the_rest_of_the_name_stays() -> None:
    [text] = page_texts(tickets_pdf([ticket(holder_name="Ирина 李娜 🎤 Ωμέγα")]))
    assert "Ирина ? ? Ωμέγα" in text


@given(st.text())
def test_pdf_safe_text_is_always_printable_with_the_ticket_font(text: str) -> None:
    safe = pdf_safe_text(text)
    assert all(char == " " or documents._encodable(char) for char in safe)
    assert "\n" not in safe


def test_pdf_safe_text_keeps_what_it_can_and_marks_the_rest() -> None:
    assert pdf_safe_text("The Demo Band — Live") == "The Demo Band — Live"
    assert pdf_safe_text("Zoë “Ő” ﬁnal \uff26\uff55\uff4c\uff4c café") == "Zoë “Ő” ﬁnal Full café"
    assert pdf_safe_text("Ελληνικά Кириллица") == "Ελληνικά Кириллица"
    assert pdf_safe_text("Rock 🎸🎸 東京") == "Rock ? ?"
    assert pdf_safe_text("two\nlines\t ") == "two lines"
    assert pdf_safe_text("cafe\u0301") == "café"


def test_an_empty_ticket_list_is_refused() -> None:
    with pytest.raises(ValueError):
        tickets_pdf([])


def test_the_trimmed_fonts_draw_every_printable_character_as_the_installed_ones_do() -> None:
    """The PDF's fonts are trimmed copies (documents._trimmed): same code points, same glyph
    widths and outlines; only the layout tables, the hinting and unreachable glyphs are gone."""
    from fontTools.ttLib import TTFont

    for installed, trimmed in zip(documents._installed_fonts(), documents._font_files(), strict=True):
        assert trimmed != installed and trimmed.stat().st_size < installed.stat().st_size / 3
        with TTFont(installed) as before, TTFont(trimmed) as after:
            assert not {"GSUB", "GPOS", "GDEF", "fpgm", "prep"} & set(after.keys())
            assert before["name"].getBestFullName() == after["name"].getBestFullName()
            # Trimmed twice, a font is the same file (its "modified" time is the installed one's).
            assert before["head"].modified == after["head"].modified
            old, new = before.getBestCmap(), after.getBestCmap()
            assert set(new) == documents._glyphs()
            old_glyphs, new_glyphs = before.getGlyphSet(), after.getGlyphSet()
            for code in sorted(documents._glyphs()):
                assert before["hmtx"][old[code]][0] == after["hmtx"][new[code]][0], hex(code)
            for char in "AgЖλß€?…—":
                assert _outline(old_glyphs, old[ord(char)]) == _outline(new_glyphs, new[ord(char)]), char


def _outline(glyphs: Any, name: str) -> list[Any]:
    from fontTools.pens.recordingPen import DecomposingRecordingPen

    pen = DecomposingRecordingPen(glyphs)
    glyphs[name].draw(pen)
    assert pen.value
    return list(pen.value)


def test_the_trimmed_fonts_are_made_once_and_where_the_cache_is_not_writable_in_a_temporary_directory(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = documents._installed_fonts()[0]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = documents._trimmed(installed)
    assert first.parent == tmp_path / "cache" / "ticketing" / "fonts"
    made = first.stat().st_mtime_ns
    assert documents._trimmed(installed) == first and first.stat().st_mtime_ns == made
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no half-written file left

    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    elsewhere = documents._trimmed(installed)
    assert elsewhere.parent.name.startswith("ticketing-fonts-") and elsewhere.read_bytes() == first.read_bytes()
