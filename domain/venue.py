"""Venue: a place with an optional seating layout (sections -> rows -> seats with x/y)."""

from __future__ import annotations

import math
from typing import Any, TypedDict
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.audit import Audited
from domain.errors import Invalid
from domain.ids import seat_key, section_id
from domain.legacy import LegacyChanges

MAX_COORDINATE = 100_000.0
MAX_SEATS = 200_000


class SeatSpec(TypedDict):
    label: str
    x: float
    y: float
    accessible: bool


class RowSpec(TypedDict):
    label: str
    seats: list[SeatSpec]


class SectionSpec(TypedDict):
    id: str
    name: str
    rows: list[RowSpec]


class LayoutSeat(TypedDict):
    key: str
    section_id: str
    section: str
    row: str
    label: str
    x: float
    y: float
    accessible: bool


def normalise_layout(venue_id: UUID, sections: list[dict[str, Any]]) -> list[SectionSpec]:
    """Validate a layout and give each section its deterministic id.

    Section names are unique in the venue, row labels unique in their section, seat labels
    unique in their row, and coordinates finite and within bounds; otherwise `Invalid`.
    """
    if not sections:
        raise Invalid("a layout needs at least one section", field="sections")
    seen_sections: set[str] = set()
    total = 0
    result: list[SectionSpec] = []
    for s_index, section in enumerate(sections):
        name = str(section.get("name", "")).strip()
        where = f"sections[{s_index}]"
        if not name:
            raise Invalid("section name is required", field=f"{where}.name")
        if name in seen_sections:
            raise Invalid(f"duplicate section name {name!r}", field=f"{where}.name")
        seen_sections.add(name)
        rows: list[RowSpec] = []
        seen_rows: set[str] = set()
        for r_index, row in enumerate(section.get("rows", [])):
            row_label = str(row.get("label", "")).strip()
            r_where = f"{where}.rows[{r_index}]"
            if not row_label:
                raise Invalid("row label is required", field=f"{r_where}.label")
            if row_label in seen_rows:
                raise Invalid(f"duplicate row {row_label!r} in section {name!r}", field=f"{r_where}.label")
            seen_rows.add(row_label)
            seats: list[SeatSpec] = []
            seen_seats: set[str] = set()
            for p_index, seat in enumerate(row.get("seats", [])):
                label = str(seat.get("label", "")).strip()
                p_where = f"{r_where}.seats[{p_index}]"
                if not label:
                    raise Invalid("seat label is required", field=f"{p_where}.label")
                if label in seen_seats:
                    raise Invalid(
                        f"duplicate seat {label!r} in row {row_label!r} of section {name!r}",
                        field=f"{p_where}.label",
                    )
                seen_seats.add(label)
                x, y = float(seat.get("x", 0.0)), float(seat.get("y", 0.0))
                for axis, value in (("x", x), ("y", y)):
                    if not math.isfinite(value) or not -MAX_COORDINATE <= value <= MAX_COORDINATE:
                        raise Invalid(f"seat coordinate {axis} out of range", field=f"{p_where}.{axis}")
                seats.append({"label": label, "x": x, "y": y, "accessible": bool(seat.get("accessible", False))})
            if not seats:
                raise Invalid(f"row {row_label!r} has no seats", field=f"{r_where}.seats")
            total += len(seats)
            rows.append({"label": row_label, "seats": seats})
        if not rows:
            raise Invalid(f"section {name!r} has no rows", field=f"{where}.rows")
        result.append({"id": str(section_id(venue_id, name)), "name": name, "rows": rows})
    if total > MAX_SEATS:
        raise Invalid(f"a layout may hold at most {MAX_SEATS} seats", field="sections")
    return result


class Venue(Audited):
    class Created(Aggregate.Created):
        name: str
        address: str
        city: str
        country: str
        capacity: int
        latitude: float | None
        longitude: float | None
        timezone: str

    @event(Created)
    def __init__(
        self,
        name: str,
        address: str,
        city: str,
        country: str,
        capacity: int,
        latitude: float | None = None,
        longitude: float | None = None,
        timezone: str = "UTC",
    ) -> None:
        self.name = name
        self.address = address
        self.city = city
        self.country = country
        self.capacity = capacity
        self.latitude = latitude
        self.longitude = longitude
        self.timezone = timezone
        self.active = True
        self.sections: list[SectionSpec] = []

    def update(self, **changes: Any) -> None:
        """Change what was sent (PATCH semantics): one event per kind of change, none if nothing changes."""
        allowed = {"name", "address", "city", "country", "capacity", "latitude", "longitude", "timezone", "active"}
        unknown = set(changes) - allowed
        if unknown:
            raise Invalid(f"cannot change {sorted(unknown)}")
        changed = {k: v for k, v in changes.items() if getattr(self, k) != v}
        new = {k: changes.get(k, getattr(self, k)) for k in allowed}
        if "name" in changed:
            self._rename(name=new["name"])
        if changed.keys() & {"address", "city", "country"}:
            self._change_address(address=new["address"], city=new["city"], country=new["country"])
        if "capacity" in changed:
            self._change_capacity(capacity=new["capacity"])
        if changed.keys() & {"latitude", "longitude"}:
            self._locate(latitude=new["latitude"], longitude=new["longitude"])
        if "timezone" in changed:
            self._change_timezone(timezone=new["timezone"])
        if "active" in changed:
            if changed["active"]:
                self._reactivate()
            else:
                self._deactivate()

    class Renamed(Aggregate.Event):
        name: str

    @event(Renamed)
    def _rename(self, name: str) -> None:
        self.name = name

    class AddressChanged(Aggregate.Event):
        address: str
        city: str
        country: str

    @event(AddressChanged)
    def _change_address(self, address: str, city: str, country: str) -> None:
        self.address = address
        self.city = city
        self.country = country

    class CapacityChanged(Aggregate.Event):
        capacity: int

    @event(CapacityChanged)
    def _change_capacity(self, capacity: int) -> None:
        self.capacity = capacity

    class Located(Aggregate.Event):
        latitude: float | None
        longitude: float | None

    @event(Located)
    def _locate(self, latitude: float | None, longitude: float | None) -> None:
        self.latitude = latitude
        self.longitude = longitude

    class TimeZoneChanged(Aggregate.Event):
        timezone: str

    @event(TimeZoneChanged)
    def _change_timezone(self, timezone: str) -> None:
        self.timezone = timezone

    class Deactivated(Aggregate.Event):
        pass

    @event(Deactivated)
    def _deactivate(self) -> None:
        self.active = False

    class Reactivated(Aggregate.Event):
        pass

    @event(Reactivated)
    def _reactivate(self) -> None:
        self.active = True

    class Updated(LegacyChanges):
        """Any change of details, as recorded before the intent events above; only read from older stores."""

    def set_layout(self, sections: list[dict[str, Any]]) -> None:
        normalised = normalise_layout(self.id, sections)
        self._set_layout(sections=normalised)

    class LayoutSet(Aggregate.Event):
        sections: list[SectionSpec]

    @event(LayoutSet)
    def _set_layout(self, sections: list[SectionSpec]) -> None:
        self.sections = sections
        self.capacity = sum(len(r["seats"]) for s in sections for r in s["rows"])

    @property
    def seat_count(self) -> int:
        return sum(len(r["seats"]) for s in self.sections for r in s["rows"])

    def section_ids(self) -> set[str]:
        return {s["id"] for s in self.sections}

    def seats_in(self, section_ids: set[str]) -> list[LayoutSeat]:
        """Every seat of the given sections, flattened, with its stable key."""
        out: list[LayoutSeat] = []
        for section in self.sections:
            if section["id"] not in section_ids:
                continue
            for row in section["rows"]:
                for seat in row["seats"]:
                    out.append(
                        {
                            "key": seat_key(section["name"], row["label"], seat["label"]),
                            "section_id": section["id"],
                            "section": section["name"],
                            "row": row["label"],
                            "label": seat["label"],
                            "x": seat["x"],
                            "y": seat["y"],
                            "accessible": seat["accessible"],
                        }
                    )
        return out
