"""What the event page says about its seats without drawing them: per section how many are
free, and the free seats to pick without JavaScript, a page at a time. The map itself is drawn
in the browser (`static/seatmap.js`) from the seat-map document, so a 20,000-seat house costs
the page a few lines of markup, not one element per seat."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from uuid import UUID

import msgspec

# Up to this many free seats in the whole house are listed at once; above it the list is paged by
# section, LIST_PAGE seats a page.
INLINE_LIMIT = 200
LIST_PAGE = 200


class _Seat(msgspec.Struct):
    """The fields of the seat-map document (`api.seatmap_cache.SeatMap`) the list needs, ids as
    text: decoding only these is about three times faster than the whole document."""

    id: str
    label: str
    status: str
    offer_id: str | None
    price: str | None


class _Row(msgspec.Struct):
    label: str
    seats: list[_Seat]


class _Section(msgspec.Struct):
    name: str
    rows: list[_Row]


class _Map(msgspec.Struct):
    version: int
    currency: str | None
    sections: list[_Section]


@dataclass(frozen=True)
class FreeSeat:
    value: str  # "offer_id:seat_id", the hold form's `seat` field
    name: str
    price: str | None


@dataclass(frozen=True)
class SectionSummary:
    index: int
    name: str
    free: int
    seats: int


@dataclass(frozen=True)
class SeatList:
    version: int
    currency: str | None
    seats: int
    free: int
    sections: list[SectionSummary]
    listed: list[FreeSeat]
    section: SectionSummary | None  # the section listed, when paged
    previous_offset: int | None  # where the pages before and after this one start
    next_offset: int | None

    @property
    def paged(self) -> bool:
        return self.free > INLINE_LIMIT


def seat_name(section: str, row: str, seat: str) -> str:
    return f"{section}, row {row}, seat {seat}"


def _free(seat_map: _Map, index: int) -> list[FreeSeat]:
    section = seat_map.sections[index]
    return [
        FreeSeat(f"{s.offer_id}:{s.id}", seat_name(section.name, row.label, s.label), s.price)
        for row in section.rows
        for s in row.seats
        if s.status == "available" and s.offer_id is not None
    ]


class SeatLists:
    """The lists made lately, per show, seat-map version, section and offset (a 20,000-seat map
    takes tens of milliseconds to decode; a list is a few hundred bytes to a few dozen kB)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.made: OrderedDict[tuple[UUID, int, int | None, int], SeatList | None] = OrderedDict()

    def get(self, event_id: UUID, version: int, body: bytes, section: int | None, offset: int) -> SeatList | None:
        """The list of the seat-map document `body`, read at `version` (or later)."""
        key = (event_id, version, section, max(0, offset))
        if key in self.made:
            self.made.move_to_end(key)
            return self.made[key]
        made = self.made[key] = seat_list(body, section, offset)
        while len(self.made) > self.size:
            self.made.popitem(last=False)
        return made


def seat_list(body: bytes, section: int | None = None, offset: int = 0) -> SeatList | None:
    """The summary of the seat-map document `body` and the free seats to list: all of them in a
    small house, else LIST_PAGE of `section`'s from `offset` (none when no section is asked for)."""
    seat_map = msgspec.json.decode(body, type=_Map)
    sections: list[SectionSummary] = []
    for i, s in enumerate(seat_map.sections):
        seats = [seat for row in s.rows for seat in row.seats]
        free = sum(1 for seat in seats if seat.status == "available" and seat.offer_id is not None)
        sections.append(SectionSummary(i, s.name, free, len(seats)))
    total = sum(s.seats for s in sections)
    if total == 0:
        return None
    free = sum(s.free for s in sections)
    offset = max(0, offset)
    chosen = sections[section] if section is not None and 0 <= section < len(sections) else None
    listed: list[FreeSeat] = []
    previous_offset = next_offset = None
    if free <= INLINE_LIMIT:
        chosen = None
        listed = [seat for i in range(len(sections)) for seat in _free(seat_map, i)]
    elif chosen is not None:
        everything = _free(seat_map, chosen.index)
        listed = everything[offset : offset + LIST_PAGE]
        previous_offset = max(0, offset - LIST_PAGE) if offset else None
        next_offset = offset + LIST_PAGE if len(everything) > offset + LIST_PAGE else None
    return SeatList(
        seat_map.version, seat_map.currency, total, free, sections, listed, chosen, previous_offset, next_offset
    )
