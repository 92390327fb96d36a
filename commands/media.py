"""Event images: what an upload must be, the two variants made of it, and where their bytes live.

An upload is hostile until proven otherwise. `prepare_image` takes the raw bytes and:

- refuses more than `MAX_IMAGE_BYTES` (the API's body limit for these routes is the same figure);
- reads only the header first and refuses a picture of more than `MAX_PIXELS` pixels before any
  pixel is decoded: a small file can declare a huge canvas (a "decompression bomb": a 50 KB PNG
  of 50,000 x 50,000 pixels would decode into 7.5 GB);
- decodes it with Pillow's PNG, JPEG and WebP decoders only (nothing else is even tried), to the
  last pixel, so a truncated or corrupt file is refused here, not half-shown later, and shrinks
  it at once to at most `FULL_SIZE` pixels each way (never enlarged);
- turns it upright by its EXIF orientation, then copies the pixels alone into a fresh image: EXIF
  (camera, GPS position), XMP, ICC profiles, comments and whatever else rode along are left behind;
- encodes that as WebP twice: as it is for the event page, and at most `CARD_SIZE` pixels each
  way for the home page's cards.

What is stored is only what we encoded. Each variant is kept once per content, by the SHA-256
of its bytes, in `media_images` beside the event store (as `personal_keys` is,
`commands/privacy.py`), not in the log: the log is replayed by every read model and every
rebuild forever, and half a megabyte of pixels per event would be read and decoded again each
time for nothing. The show's `ImageChanged` event records the two hashes and sizes; the bytes of
a hash never change, so `GET /media/{hash}.webp` is cached by browsers for good. Bytes are
written before the event that names them (a failed save leaves an unreferenced row, never an
event without its image), and are not deleted when a show changes its picture: an old page or
a rebuild may still name them.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image as PILImage
from PIL import ImageOps
from psycopg import Connection
from psycopg.sql import SQL, Identifier

from domain.errors import Invalid
from domain.event import Image

MEDIA_TABLE = "media_images"
MAX_IMAGE_BYTES = 5 * 1024 * 1024
# 40 megapixels (e.g. 8000 x 5000): larger than any camera's picture a show needs, and decoded at
# most 160 MB (RGBA) in memory; JPEGs are decoded already scaled down (`draft`), so far less.
MAX_PIXELS = 40_000_000
FULL_SIZE = 1600
CARD_SIZE = 480
WEBP_QUALITY = 82
MEDIA_TYPE = "image/webp"
# What an upload may be: declared as (the route's Content-Type) and decoded by (Pillow's plugin).
ACCEPTED_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}


class NotAnImage(Invalid):
    code = "not_an_image"


class ImageTooLarge(Invalid):
    code = "image_too_large"


@dataclass(frozen=True)
class Encoded:
    """One stored variant: its bytes (WebP), their SHA-256 (hex) and its size in pixels."""

    sha256: str
    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class Prepared:
    full: Encoded
    card: Encoded

    def image(self) -> Image:
        """What the show's event records of it."""
        return Image(self.full.sha256, self.full.width, self.full.height,
                     self.card.sha256, self.card.width, self.card.height)  # fmt: skip


def prepare_image(data: bytes) -> Prepared:
    """The upload checked, cleaned and encoded as the two stored variants, or `NotAnImage` /
    `ImageTooLarge` (both 422) saying why not. Never anything else: whatever a decoder raises
    on a hostile file is a refusal."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageTooLarge(f"the image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB", field="image")
    if not data:
        raise NotAnImage("the image is empty", field="image")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its own limit and twice it; ours is lower and is an error.
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data), formats=list(ACCEPTED_TYPES.values())) as opened:
                width, height = opened.size
                if width < 1 or height < 1:
                    raise NotAnImage("the image has no pixels", field="image")
                if width * height > MAX_PIXELS:
                    raise ImageTooLarge(
                        f"the image is {width} x {height} pixels; at most {MAX_PIXELS // 1_000_000} megapixels",
                        field="image",
                    )
                picture: PILImage.Image = opened
                if opened.mode in ("1", "P"):  # resized as they are, they would be resized NEAREST
                    picture = opened.convert("RGBA" if "transparency" in opened.info else "RGB")
                # Shrunk to the full-size variant before anything copies it: the decoded picture
                # is held once (a JPEG is even decoded at 1/2, 1/4 or 1/8 when that is enough).
                picture.thumbnail((FULL_SIZE, FULL_SIZE), PILImage.Resampling.LANCZOS)
                picture.load()
                picture = _pixels_only(picture)
    except Invalid:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise ImageTooLarge(f"the image has more than {MAX_PIXELS // 1_000_000} megapixels", field="image") from None
    except Exception:  # noqa: BLE001
        # Pillow's decoders signal a bad file with many exceptions (truncated: OSError; a broken
        # PNG chunk: SyntaxError; odd headers or EXIF: ValueError, EOFError, IndexError,
        # struct.error ...); on input made to break them, anything they raise means "not an image".
        raise NotAnImage("this is not a PNG, JPEG or WebP image that can be read", field="image") from None
    return Prepared(full=_encode(picture, FULL_SIZE), card=_encode(picture, CARD_SIZE))


def _pixels_only(opened: PILImage.Image) -> PILImage.Image:
    """The decoded first frame, upright (by its EXIF orientation), as RGB (RGBA when it has
    transparency), in a new image that carries nothing but its pixels."""
    upright = ImageOps.exif_transpose(opened) or opened
    transparent = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
    mode = "RGBA" if transparent else "RGB"
    converted = upright.convert(mode)
    return PILImage.frombytes(mode, converted.size, converted.tobytes())


def _encode(picture: PILImage.Image, size: int) -> Encoded:
    variant = picture.copy()
    variant.thumbnail((size, size), PILImage.Resampling.LANCZOS)  # only ever makes it smaller
    out = io.BytesIO()
    variant.save(out, format="WEBP", quality=WEBP_QUALITY, method=4)
    data = out.getvalue()
    return Encoded(hashlib.sha256(data).hexdigest(), data, variant.width, variant.height)


# Storage ------------------------------------------------------------------------------------


def create_tables(conn: Connection[Any], schema: str) -> None:
    """`media_images`: the bytes of each stored variant by the SHA-256 of those bytes. WebP is
    compressed already, so Postgres is told not to try again (EXTERNAL: out of line, as is)."""
    table = SQL("{}.{}").format(Identifier(schema), Identifier(MEDIA_TABLE))
    conn.execute(
        SQL(
            "CREATE TABLE IF NOT EXISTS {} (sha256 text PRIMARY KEY, media_type text NOT NULL, "
            "width integer NOT NULL, height integer NOT NULL, data bytea NOT NULL, "
            "created_at timestamptz NOT NULL DEFAULT now())"
        ).format(table)
    )
    conn.execute(SQL("ALTER TABLE {} ALTER COLUMN data SET STORAGE EXTERNAL").format(table))


class MediaStore:
    """The `media_images` table of the event store's database."""

    def __init__(self, datastore: Any) -> None:
        self._datastore = datastore
        self._table = SQL("{}.{}").format(Identifier(datastore.schema), Identifier(MEDIA_TABLE))

    def put(self, *variants: Encoded) -> None:
        """Store the variants (committed when this returns); a content already there is kept."""
        with self._datastore.get_connection() as conn:
            for v in variants:
                conn.execute(
                    SQL("INSERT INTO {} (sha256, media_type, width, height, data) VALUES (%s, %s, %s, %s, %s) "
                        "ON CONFLICT (sha256) DO NOTHING").format(self._table),
                    (v.sha256, MEDIA_TYPE, v.width, v.height, v.data),
                )  # fmt: skip

    def get(self, sha256: str) -> bytes | None:
        """The stored bytes of a variant, or None."""
        with self._datastore.get_connection() as conn:
            row = conn.execute(SQL("SELECT data FROM {} WHERE sha256 = %s").format(self._table), (sha256,)).fetchone()
        return None if row is None else bytes(row["data"])
