"""Image files for the tests of event images: ordinary ones, and ones made to hurt."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

# Text that must never come back out of an upload (it rides in EXIF, in a comment, after the end).
MARKER = b"EvilCam-5e1f"


def png(width: int = 64, height: int = 48, color: tuple[int, ...] = (200, 40, 40), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), color).save(out, "PNG")
    return out.getvalue()


def jpeg_with_exif(width: int = 300, height: int = 200, orientation: int = 6) -> bytes:
    """A JPEG whose EXIF names a camera (`MARKER`), a GPS position and an orientation (6: the
    picture must be turned 90 degrees to stand upright), with an ICC profile and a comment."""
    image = Image.new("RGB", (width, height), (20, 120, 220))
    exif = Image.Exif()
    exif[0x010F] = MARKER.decode()  # Make
    exif[0x0112] = orientation
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}  # GPS
    out = io.BytesIO()
    icc = b"\0" * 128 + MARKER  # not a real profile: it only has to travel, or not
    image.save(out, "JPEG", exif=exif.tobytes(), icc_profile=icc, comment=MARKER, quality=90)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int) -> bytes:
    """A few dozen bytes of valid PNG structure that declare a `width` x `height` canvas (1 bit
    per pixel, grey): a decompression bomb if anything believed it and allocated."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )
