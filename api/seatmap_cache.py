"""Seat maps kept encoded in each API process and patched with the seats that changed.

A 20,000-seat map is about 4 MB of JSON; building it takes one query over every seat and costs
~150 ms. During an on-sale its version moves with every hold, but only a handful of seats change
between two versions. So each process keeps the map of a show as a list of byte chunks in which
every seat's status has a chunk of its own: a newer version is the cached one with the statuses of
the seats changed since (`read.seats.changed_at`, an index lookup) swapped in, then joined.
Seats added or removed and price changes move the show's `layout_version`; the map is then
built again from scratch.

The document is the `SeatMap` struct (the one OpenAPI documents) encoded by msgspec, with a
marker in every status that is then cut out: the chunks are the struct's own encoding.
"""

from __future__ import annotations

import asyncio
import gzip
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec

from projections import queries

_encode = msgspec.json.encode
STATUS = {s: _encode(s) for s in ("available", "held", "sold", "blocked")}
# Put in every seat's status while encoding. Text cannot contain a control character (the API
# refuses them), and a quote inside a string is always escaped, so the key and this value
# appear unescaped only where a seat's status is.
_MARK = "\x01"
_SLOT = b'"status":' + _encode(_MARK)


def _status(value: str) -> bytes:
    return STATUS.get(value) or _encode(value)


class SeatOut(msgspec.Struct):
    id: UUID
    label: str
    x: float
    y: float
    status: str
    accessible: bool
    offer_id: UUID | None
    price: str | None


class RowOut(msgspec.Struct):
    label: str
    seats: list[SeatOut]


class SectionOut(msgspec.Struct):
    id: str
    name: str
    day: str | None
    rows: list[RowOut]


class SeatMap(msgspec.Struct):
    event_id: UUID
    version: int
    currency: str | None
    sections: list[SectionOut]


@dataclass
class SeatMapDocument:
    """One show's seat map as chunks: `parts[1]` is the version, `slots[seat]` the index of a
    seat's status; everything else is fixed until the layout changes."""

    layout_version: int
    version: int
    parts: list[bytes]
    slots: dict[UUID, int]
    body: bytes = b""
    _gzipped: bytes | None = None

    @classmethod
    def build(
        cls, event_id: UUID, layout_version: int, version: int, currency: str | None, seats: Sequence[tuple[Any, ...]]
    ) -> SeatMapDocument:
        """The `SeatMap` of rows of `queries.seat_map_seats` (already in seat-map order)."""
        sections: list[SectionOut] = []
        ids: list[UUID] = []
        statuses: list[str] = []
        for seat_id, section_id, name, day, row_label, label, x, y, status, accessible, offer_id, price, _ in seats:
            if not sections or (sections[-1].id, sections[-1].name, sections[-1].day) != (section_id, name, day):
                sections.append(SectionOut(section_id, name, day, [RowOut(row_label, [])]))
            elif sections[-1].rows[-1].label != row_label:
                sections[-1].rows.append(RowOut(row_label, []))
            sections[-1].rows[-1].seats.append(SeatOut(seat_id, label, x, y, _MARK, accessible, offer_id, price))
            ids.append(seat_id)
            statuses.append(status)
        pieces = _encode(SeatMap(event_id, 0, currency, sections)).split(_SLOT)
        assert len(pieces) == len(ids) + 1, "a seat-map status marker appeared outside a status"
        head, text = pieces[0].split(b'"version":0', 1)
        parts = [head + b'"version":', b""]
        slots: dict[UUID, int] = {}
        for seat_id, status, after in zip(ids, statuses, pieces[1:], strict=True):
            parts.append(text + b'"status":')
            slots[seat_id] = len(parts)
            parts.append(_status(status))
            text = after
        parts.append(text)
        document = cls(layout_version, version, parts, slots)
        document.render()
        return document

    def patch(self, version: int, changes: Sequence[tuple[UUID, str]]) -> None:
        for seat_id, status in changes:
            slot = self.slots.get(seat_id)
            if slot is not None:
                self.parts[slot] = _status(status)
        self.version = version
        self.render()

    def render(self) -> None:
        self.parts[1] = str(self.version).encode()
        self.body = b"".join(self.parts)
        self._gzipped = None

    def gzipped(self) -> bytes:
        """The body gzipped, once per version: a 20,000-seat map of 3.7 MB is ~0.67 MB at level 1
        (~35 ms; level 6 saves another 0.1 MB for three times the time, paid again at every
        version during an on-sale)."""
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=1, mtime=0)
        return self._gzipped


class SeatMaps:
    """The seat maps of the last few shows asked for, one document per show."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.documents: OrderedDict[UUID, SeatMapDocument] = OrderedDict()
        self.locks: dict[UUID, asyncio.Lock] = {}

    async def body(self, conn: queries.Conn, event_id: UUID, layout_version: int, version: int) -> bytes:
        """The map at `version` or later (what a later snapshot shows): patched from the cached
        document when only statuses changed, built from scratch otherwise."""
        return (await self.document(conn, event_id, layout_version, version)).body

    async def gzipped(self, conn: queries.Conn, event_id: UUID, layout_version: int, version: int) -> bytes:
        """`body` gzipped (compressed in a thread, kept until the map changes)."""
        document = await self.document(conn, event_id, layout_version, version)
        return await asyncio.to_thread(document.gzipped)

    async def document(self, conn: queries.Conn, event_id: UUID, layout_version: int, version: int) -> SeatMapDocument:
        document = self._current(event_id, layout_version, version)
        if document is None:
            # One refresh at a time per show, so the statuses of an older snapshot never
            # overwrite those of a newer one.
            async with self.locks.setdefault(event_id, asyncio.Lock()):
                document = self.documents.get(event_id)
                if document is None or document.layout_version < layout_version:
                    currency, seats = await queries.seat_map_seats(conn, event_id)
                    document = SeatMapDocument.build(event_id, layout_version, version, currency, seats)
                elif document.version < version:
                    document.patch(version, await queries.seat_changes(conn, event_id, document.version))
                self._keep(event_id, document)
        return document

    def _current(self, event_id: UUID, layout_version: int, version: int) -> SeatMapDocument | None:
        document = self.documents.get(event_id)
        if document is None or document.layout_version < layout_version or document.version < version:
            return None
        self.documents.move_to_end(event_id)
        return document

    def _keep(self, event_id: UUID, document: SeatMapDocument) -> None:
        self.documents[event_id] = document
        self.documents.move_to_end(event_id)
        while len(self.documents) > self.size:
            # Its lock stays: a refresh may still be waiting on it (a lock is a few hundred bytes).
            self.documents.popitem(last=False)
