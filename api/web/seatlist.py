"""What the event page says about its seats without drawing them: per section how many are
free, and the free seats to pick without JavaScript, a page at a time. The map itself is drawn
in the browser (`static/seatmap.js`) from the seat-map document, so a 20,000-seat house costs
the page a few lines of markup, not one element per seat."""

from __future__ import annotations

from dataclasses import dataclass

from api.seatmap_cache import SeatMap

# Up to this many free seats in the whole house are listed at once; above it the list is paged by
# section, LIST_PAGE seats a page.
INLINE_LIMIT = 200
LIST_PAGE = 200


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


def _free(seat_map: SeatMap, index: int) -> list[FreeSeat]:
    section = seat_map.sections[index]
    return [
        FreeSeat(f"{s.offer_id}:{s.id}", seat_name(section.name, row.label, s.label), s.price)
        for row in section.rows
        for s in row.seats
        if s.status == "available" and s.offer_id is not None
    ]


def seat_list(seat_map: SeatMap, section: int | None = None, offset: int = 0) -> SeatList | None:
    """The summary of `seat_map` and the free seats to list: all of them in a small house, else
    LIST_PAGE of `section`'s from `offset` (none when no section is asked for)."""
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
