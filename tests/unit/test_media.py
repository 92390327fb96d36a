"""Event images: what `prepare_image` lets through and what it makes of it, and the show's
picture events."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from PIL import Image as PILImage

from commands.media import CARD_SIZE, FULL_SIZE, MAX_IMAGE_BYTES, ImageTooLarge, NotAnImage, prepare_image
from domain.errors import Invalid
from domain.event import Event, Image, WrongEventState
from tests.images import MARKER, jpeg_with_exif, png, png_declaring

START = datetime(2031, 1, 10, 20, tzinfo=UTC)


def decoded(data: bytes) -> PILImage.Image:
    image = PILImage.open(io.BytesIO(data))
    image.load()
    return image


def test_a_png_comes_out_as_two_webp_variants_named_by_their_hashes() -> None:
    prepared = prepare_image(png(2400, 1200))
    assert (prepared.full.width, prepared.full.height) == (FULL_SIZE, 800)
    assert (prepared.card.width, prepared.card.height) == (CARD_SIZE, 240)
    for variant in (prepared.full, prepared.card):
        image = decoded(variant.data)
        assert image.format == "WEBP" and image.size == (variant.width, variant.height)
        assert variant.sha256 == hashlib.sha256(variant.data).hexdigest()
        pixel = image.getpixel((5, 5))
        assert isinstance(pixel, tuple) and pixel[:3] == pytest.approx((200, 40, 40), abs=6)
    # The same upload makes the same bytes: stored once.
    assert prepare_image(png(2400, 1200)).full.sha256 == prepared.full.sha256


def test_small_pictures_are_not_enlarged() -> None:
    prepared = prepare_image(png(100, 50))
    assert (prepared.full.width, prepared.full.height) == (100, 50)
    assert (prepared.card.width, prepared.card.height) == (100, 50)


def test_exif_icc_and_comments_are_left_behind_and_the_picture_stands_upright() -> None:
    upload = jpeg_with_exif(300, 200, orientation=6)
    assert MARKER in upload
    prepared = prepare_image(upload)
    for variant in (prepared.full, prepared.card):
        assert MARKER not in variant.data
        image = decoded(variant.data)
        assert not image.getexif()
        assert not {"exif", "icc_profile", "xmp", "comment"} & set(image.info)
        assert b"EXIF" not in variant.data and b"ICCP" not in variant.data and b"XMP " not in variant.data
    # Orientation 6: the 300 x 200 sensor image is shown 200 wide, 300 high.
    assert (prepared.full.width, prepared.full.height) == (200, 300)


def test_what_rides_after_the_image_does_not_come_back() -> None:
    polyglot = png(20, 20) + b"<script>alert(1)</script>" + MARKER
    prepared = prepare_image(polyglot)
    assert MARKER not in prepared.full.data and b"<script>" not in prepared.full.data


def test_transparency_is_kept() -> None:
    prepared = prepare_image(png(20, 20, (0, 0, 0, 0), mode="RGBA"))
    pixel = decoded(prepared.full.data).getpixel((3, 3))
    assert isinstance(pixel, tuple) and pixel[3] == 0


@pytest.mark.parametrize(
    "upload",
    [
        b"",
        b"hello, I am text",
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
        png(64, 64)[:60],  # truncated in its pixel data
        jpeg_with_exif()[:400],  # truncated JPEG
        b"\x89PNG\r\n\x1a\n" + b"\0" * 100,  # a signature and garbage
        b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\xff" * 40,  # a WebP header and garbage
    ],
    ids=["empty", "text", "svg", "gif", "truncated-png", "truncated-jpeg", "garbage-png", "garbage-webp"],
)
def test_anything_but_a_whole_png_jpeg_or_webp_is_refused(upload: bytes) -> None:
    with pytest.raises(NotAnImage) as refused:
        prepare_image(upload)
    assert refused.value.code == "not_an_image" and refused.value.field == "image"


@pytest.mark.parametrize("size", [(50_000, 50_000), (7_000, 7_000), (1_000_000, 100)])
def test_a_canvas_too_large_is_refused_before_it_is_decoded(size: tuple[int, int]) -> None:
    bomb = png_declaring(*size)
    assert len(bomb) < 200
    with pytest.raises(ImageTooLarge) as refused:
        prepare_image(bomb)
    assert refused.value.code == "image_too_large"


def test_more_than_the_byte_limit_is_refused_unread() -> None:
    with pytest.raises(ImageTooLarge):
        prepare_image(png(10, 10) + b"\0" * MAX_IMAGE_BYTES)


# The show's picture -------------------------------------------------------------------------


def a_show() -> Event:
    return Event.schedule(organizer_id=uuid4(), venue_id=uuid4(), title="Rock Night", description="",
                          start_time=START, end_time=START + timedelta(hours=3))  # fmt: skip


PICTURE = Image("a" * 64, 1600, 900, "b" * 64, 480, 270)


def test_a_show_changes_and_removes_its_picture_with_one_event_each() -> None:
    show = a_show()
    show.change_image(PICTURE, START - timedelta(days=1))
    show.change_image(PICTURE, START - timedelta(days=1))  # the same: nothing to record
    assert show.image == PICTURE
    show.remove_image()
    show.remove_image()
    assert show.image is None
    events = show.collect_events()
    assert [type(e).__name__ for e in events] == ["Created", "ImageChanged", "ImageRemoved"]
    changed = events[1]
    assert isinstance(changed, Event.ImageChanged)
    assert (changed.image_id, changed.width, changed.card_id, changed.card_height) == ("a" * 64, 1600, "b" * 64, 270)


def test_a_picture_is_named_by_hashes_and_has_pixels() -> None:
    show = a_show()
    with pytest.raises(Invalid):
        show.change_image(Image("../../etc/passwd", 1, 1, "b" * 64, 1, 1))
    with pytest.raises(Invalid):
        show.change_image(Image("a" * 64, 0, 1, "b" * 64, 1, 1))
    assert show.image is None


def test_a_finished_show_keeps_its_picture_but_may_lose_it() -> None:
    show = a_show()
    show.change_image(PICTURE)
    show.cancel("rain")
    with pytest.raises(WrongEventState):
        show.change_image(Image("c" * 64, 10, 10, "d" * 64, 10, 10))
    completed = a_show()
    completed.add_tier("GA", "general", [], None, set())
    completed.publish()
    with pytest.raises(WrongEventState):
        completed.change_image(PICTURE, START + timedelta(days=1))
    show.remove_image()
    assert show.image is None
