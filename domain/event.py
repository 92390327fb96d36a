"""Event: the show. Lifecycle draft -> published -> cancelled | completed; tiers live inside it.

The word "event" in prose means the show; the library's domain events are nested classes
such as `Event.Published`.

One module because it is one aggregate: the show and its tiers and days are one consistency
boundary, and their rules (lifecycle, schedule, tiers) read the same state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, event

from domain.audit import Audited
from domain.errors import Conflict, Invalid, NotFound
from domain.legacy import LegacyChanges

TIER_KINDS = ("general", "seated")
SCHEDULE = ("start_time", "end_time", "days", "timezone")
CATEGORY = ("segment_id", "genre_id", "sub_genre_id")
EDITABLE = ("title", "description", "venue_id", *SCHEDULE, *CATEGORY)
# An image's id: the SHA-256 (hex) of its encoded bytes, which live outside the log (commands/media.py).
IMAGE_ID = re.compile(r"[0-9a-f]{64}")


class WrongEventState(Conflict):
    code = "wrong_event_state"


class EventEnded(Conflict):
    """The show is over (completed): nothing more is sold for it."""

    code = "event_ended"


def lifecycle_status(status: str, end_time: datetime, now: datetime) -> str:
    """The status a show has at `now`: a published show whose end has passed is `completed`.

    Completion follows from the clock alone, so every reader (aggregate, read models, API) agrees
    at the very second the show ends, without waiting for anything to record it."""
    return "completed" if status == "published" and now >= end_time else status


def check_not_in_past(start_time: datetime, end_time: datetime, now: datetime) -> None:
    """A show is scheduled (or moved) into the future only."""
    if start_time < now:
        raise Invalid("start_time must not be in the past", field="start_time")
    if end_time <= now:
        raise Invalid("end_time must be in the future", field="end_time")


@dataclass
class Attraction:
    """A performer or act in the lineup."""

    id: UUID
    name: str
    description: str
    image_url: str


@dataclass(frozen=True)
class Image:
    """A show's picture: the full-size variant and the card-size one, each by content hash, with
    their sizes in pixels (pages give them as width and height, so nothing jumps as they load)."""

    image_id: str
    width: int
    height: int
    card_id: str
    card_width: int
    card_height: int


@dataclass
class Tier:
    id: UUID
    name: str
    kind: str
    section_ids: list[str]
    day: str | None


class Event(Audited):
    class Created(Aggregate.Created):
        organizer_id: UUID
        venue_id: UUID
        title: str
        description: str
        start_time: datetime
        end_time: datetime
        timezone: str
        days: list[str] | None
        segment_id: UUID | None
        genre_id: UUID | None
        sub_genre_id: UUID | None

    @event(Created)
    def __init__(
        self,
        organizer_id: UUID,
        venue_id: UUID,
        title: str,
        description: str,
        start_time: datetime,
        end_time: datetime,
        timezone: str = "UTC",
        days: list[str] | None = None,
        segment_id: UUID | None = None,
        genre_id: UUID | None = None,
        sub_genre_id: UUID | None = None,
    ) -> None:
        self.organizer_id = organizer_id
        self.venue_id = venue_id
        self.title = title
        self.description = description
        self.start_time = start_time
        self.end_time = end_time
        self.timezone = timezone
        self.days = list(days or [])
        self.segment_id = segment_id
        self.genre_id = genre_id
        self.sub_genre_id = sub_genre_id
        self.status = "draft"
        self.tiers: dict[UUID, Tier] = {}
        self.materialised_sections: set[str] = set()
        self.attractions: dict[UUID, Attraction] = {}
        self.scanners: set[UUID] = set()

    @classmethod
    def schedule(cls, event_id: UUID | None = None, *, now: datetime | None = None, **kwargs: Any) -> Event:
        """Create a draft after checking the schedule makes sense (and, given `now`, that it is
        not in the past)."""
        if kwargs["end_time"] <= kwargs["start_time"]:
            raise Invalid("end_time must be after start_time", field="end_time")
        if now is not None:
            check_not_in_past(kwargs["start_time"], kwargs["end_time"], now)
        if not str(kwargs.get("title", "")).strip():
            raise Invalid("title is required", field="title")
        defaults = {"timezone": "UTC", "days": None, "segment_id": None, "genre_id": None, "sub_genre_id": None}
        return cls._create(cls.Created, id=event_id or uuid4(), **{**defaults, **kwargs})

    # Lifecycle -------------------------------------------------------------------------

    def status_at(self, now: datetime) -> str:
        return lifecycle_status(self.status, self.end_time, now)

    def update(self, now: datetime | None = None, **changes: Any) -> None:
        """Change what was sent (PATCH semantics): one event per kind of change, none if nothing
        changes. Given `now`, a completed show is frozen and a new schedule must lie ahead."""
        unknown = changes.keys() - EDITABLE
        if unknown:
            raise Invalid(f"cannot change {sorted(unknown)}")
        status = self.status if now is None else self.status_at(now)
        if status in ("cancelled", "completed", "deleted"):
            raise WrongEventState(f"a {status} event cannot be changed")
        if self.status == "published" and "venue_id" in changes and changes["venue_id"] != self.venue_id:
            raise WrongEventState("a published event keeps its venue")
        start = changes.get("start_time", self.start_time)
        end = changes.get("end_time", self.end_time)
        if end <= start:
            raise Invalid("end_time must be after start_time", field="end_time")
        changed = {k: v for k, v in changes.items() if getattr(self, k) != v}
        new = {k: changes.get(k, getattr(self, k)) for k in EDITABLE}
        if now is not None and changed.keys() & {"start_time", "end_time"}:
            if "start_time" in changed and new["start_time"] < now:
                raise Invalid("an event cannot be rescheduled into the past", field="start_time")
            if new["end_time"] <= now:
                raise Invalid("an event cannot be rescheduled into the past", field="end_time")
        if "title" in changed:
            self._retitle(title=new["title"])
        if "description" in changed:
            self._describe(description=new["description"])
        if changed.keys() & SCHEDULE:
            self._reschedule(
                start_time=new["start_time"], end_time=new["end_time"], days=list(new["days"]), timezone=new["timezone"]
            )
        if "venue_id" in changed:
            self._relocate(venue_id=new["venue_id"])
        if changed.keys() & CATEGORY:
            self._categorise(segment_id=new["segment_id"], genre_id=new["genre_id"], sub_genre_id=new["sub_genre_id"])

    class Retitled(Aggregate.Event):
        title: str

    @event(Retitled)
    def _retitle(self, title: str) -> None:
        self.title = title

    class Described(Aggregate.Event):
        description: str

    @event(Described)
    def _describe(self, description: str) -> None:
        self.description = description

    class Rescheduled(Aggregate.Event):
        """The whole new schedule, whichever part of it changed."""

        start_time: datetime
        end_time: datetime
        days: list[str]
        timezone: str

    @event(Rescheduled)
    def _reschedule(self, start_time: datetime, end_time: datetime, days: list[str], timezone: str) -> None:
        self.start_time = start_time
        self.end_time = end_time
        self.days = list(days)
        self.timezone = timezone

    class Relocated(Aggregate.Event):
        venue_id: UUID

    @event(Relocated)
    def _relocate(self, venue_id: UUID) -> None:
        self.venue_id = venue_id

    class Categorised(Aggregate.Event):
        segment_id: UUID | None
        genre_id: UUID | None
        sub_genre_id: UUID | None

    @event(Categorised)
    def _categorise(self, segment_id: UUID | None, genre_id: UUID | None, sub_genre_id: UUID | None) -> None:
        self.segment_id = segment_id
        self.genre_id = genre_id
        self.sub_genre_id = sub_genre_id

    class Updated(LegacyChanges):
        """Any edit, as recorded before the intent events above; only read from older stores."""

    def publish(self, now: datetime | None = None) -> None:
        if self.status != "draft":
            raise WrongEventState(f"only drafts can be published (this event is {self.status})")
        if now is not None and now >= self.end_time:
            raise EventEnded("this event is over; move it to a new date before publishing it")
        if not self.tiers:
            raise Conflict("add at least one tier before publishing", code="no_tiers")
        self._publish()

    class Published(Aggregate.Event):
        pass

    @event(Published)
    def _publish(self) -> None:
        self.status = "published"

    def cancel(self, reason: str = "", now: datetime | None = None) -> None:
        status = self.status if now is None else self.status_at(now)
        if status not in ("draft", "published"):
            raise WrongEventState(f"a {status} event cannot be cancelled")
        self._cancel(reason=reason)

    class Cancelled(Aggregate.Event):
        reason: str

    @event(Cancelled)
    def _cancel(self, reason: str) -> None:
        self.status = "cancelled"

    # Shown first on the home page and in `GET /events?featured=true`: an admin's choice.
    featured = False

    def feature(self, featured: bool) -> None:
        """Feature the show (or stop); a cancelled or deleted show cannot be featured."""
        if featured and self.status not in ("draft", "published"):
            raise WrongEventState(f"a {self.status} event cannot be featured")
        if featured != self.featured:
            self._feature(featured=featured)

    class Featured(Aggregate.Event):
        featured: bool

    @event(Featured)
    def _feature(self, featured: bool) -> None:
        self.featured = featured

    # The show's picture (None: none). Only its hashes and sizes are events; the bytes are
    # stored once per content beside the log (commands/media.py) and never change.
    image: Image | None = None

    def check_image_changeable(self, now: datetime | None = None) -> None:
        """A finished show keeps the picture it has (one may still be removed, `remove_image`)."""
        status = self.status if now is None else self.status_at(now)
        if status in ("cancelled", "completed", "deleted"):
            raise WrongEventState(f"the image of a {status} event cannot be changed")

    def change_image(self, image: Image, now: datetime | None = None) -> None:
        """Give the show a picture (or another one)."""
        self.check_image_changeable(now)
        for name in ("image_id", "card_id"):
            if not IMAGE_ID.fullmatch(getattr(image, name)):
                raise Invalid(f"{name} must be a SHA-256 in hex", field=name)
        if min(image.width, image.height, image.card_width, image.card_height) < 1:
            raise Invalid("an image has at least one pixel each way", field="image")
        if image != self.image:
            self._change_image(**vars(image))

    class ImageChanged(Aggregate.Event):
        image_id: str
        width: int
        height: int
        card_id: str
        card_width: int
        card_height: int

    @event(ImageChanged)
    def _change_image(
        self, image_id: str, width: int, height: int, card_id: str, card_width: int, card_height: int
    ) -> None:
        self.image = Image(image_id, width, height, card_id, card_width, card_height)

    def remove_image(self) -> None:
        """Take the picture off (nothing happens when there is none); allowed in any state, so
        an unfortunate picture can always go."""
        if self.image is not None:
            self._remove_image()

    class ImageRemoved(Aggregate.Event):
        pass

    @event(ImageRemoved)
    def _remove_image(self) -> None:
        self.image = None

    def withdraw(self, now: datetime, reason: str = "withdrawn by the organizer") -> None:
        """What DELETE means for a show: a draft is deleted; a published show is cancelled
        instead (its holds released, paid orders refunded), as its buyers must be told."""
        if self.status == "draft":
            self.delete()
        else:
            self.cancel(reason, now)

    def delete(self) -> None:
        """Drafts can be deleted; published events are cancelled instead."""
        if self.status != "draft":
            raise WrongEventState(f"only drafts can be deleted (this event is {self.status}); cancel it instead")
        self._delete()

    class Deleted(Aggregate.Event):
        pass

    @event(Deleted)
    def _delete(self) -> None:
        self.status = "deleted"

    def check_on_sale(self, now: datetime | None = None) -> None:
        if self.status != "published":
            raise Conflict("this event is not on sale", code="event_not_on_sale")
        if now is not None and self.status_at(now) == "completed":
            raise EventEnded("this event is over; tickets are no longer sold")

    # Lineup ------------------------------------------------------------------------

    def add_attraction(self, name: str, description: str = "", image_url: str = "") -> UUID:
        if self.status in ("cancelled", "completed", "deleted"):
            raise WrongEventState(f"a {self.status} event cannot change its lineup")
        name = " ".join(name.split())
        if not name:
            raise Invalid("attraction name is required", field="name")
        if any(a.name.lower() == name.lower() for a in self.attractions.values()):
            raise Conflict(f"{name!r} is already in the lineup", code="attraction_exists")
        attraction_id = uuid4()
        self._add_attraction(attraction_id=attraction_id, name=name, description=description, image_url=image_url)
        return attraction_id

    class AttractionAdded(Aggregate.Event):
        attraction_id: UUID
        name: str
        description: str
        image_url: str

    @event(AttractionAdded)
    def _add_attraction(self, attraction_id: UUID, name: str, description: str, image_url: str) -> None:
        self.attractions[attraction_id] = Attraction(attraction_id, name, description, image_url)

    def remove_attraction(self, attraction_id: UUID) -> None:
        if attraction_id not in self.attractions:
            raise NotFound("attraction not found", code="attraction_not_found")
        if self.status in ("cancelled", "completed", "deleted"):
            raise WrongEventState(f"a {self.status} event cannot change its lineup")
        self._remove_attraction(attraction_id=attraction_id)

    class AttractionRemoved(Aggregate.Event):
        attraction_id: UUID

    @event(AttractionRemoved)
    def _remove_attraction(self, attraction_id: UUID) -> None:
        del self.attractions[attraction_id]

    # Door staff ----------------------------------------------------------------------

    def grant_scanner(self, account_id: UUID) -> None:
        if account_id == self.organizer_id or account_id in self.scanners:
            return
        self._grant_scanner(account_id=account_id)

    class ScannerGranted(Aggregate.Event):
        account_id: UUID

    @event(ScannerGranted)
    def _grant_scanner(self, account_id: UUID) -> None:
        self.scanners = self.scanners | {account_id}

    def revoke_scanner(self, account_id: UUID) -> None:
        if account_id not in self.scanners:
            raise NotFound("that account is not a scanner of this event", code="scanner_not_found")
        self._revoke_scanner(account_id=account_id)

    class ScannerRevoked(Aggregate.Event):
        account_id: UUID

    @event(ScannerRevoked)
    def _revoke_scanner(self, account_id: UUID) -> None:
        self.scanners = self.scanners - {account_id}

    def may_scan(self, account_id: UUID) -> bool:
        return account_id == self.organizer_id or account_id in self.scanners

    # Tiers -------------------------------------------------------------------------

    def add_tier(self, name: str, kind: str, section_ids: list[str], day: str | None, venue_sections: set[str]) -> UUID:
        if self.status in ("cancelled", "completed", "deleted"):
            raise WrongEventState(f"a {self.status} event cannot get new tiers")
        self._check_tier(None, name, kind, section_ids, day, venue_sections)
        tier_id = uuid4()
        self._add_tier(tier_id=tier_id, name=name.strip(), kind=kind, section_ids=sorted(set(section_ids)), day=day)
        return tier_id

    class TierAdded(Aggregate.Event):
        tier_id: UUID
        name: str
        kind: str
        section_ids: list[str]
        day: str | None

    @event(TierAdded)
    def _add_tier(self, tier_id: UUID, name: str, kind: str, section_ids: list[str], day: str | None) -> None:
        self.tiers[tier_id] = Tier(id=tier_id, name=name, kind=kind, section_ids=section_ids, day=day)

    def update_tier(self, tier_id: UUID, name: str | None, day: str | None) -> None:
        tier = self.tier(tier_id)
        if self.status in ("cancelled", "completed"):
            raise WrongEventState(f"a {self.status} event cannot change tiers")
        new_name = tier.name if name is None else name.strip()
        if not new_name:
            raise Invalid("tier name is required", field="name")
        if day is not None and self.days and day not in self.days:
            raise Invalid(f"day {day} is not one of the event's days", field="day")
        self._update_tier(tier_id=tier_id, name=new_name, day=tier.day if day is None else day)

    class TierUpdated(Aggregate.Event):
        tier_id: UUID
        name: str
        day: str | None

    @event(TierUpdated)
    def _update_tier(self, tier_id: UUID, name: str, day: str | None) -> None:
        self.tiers[tier_id].name = name
        self.tiers[tier_id].day = day

    def remove_tier(self, tier_id: UUID) -> None:
        self.tier(tier_id)
        if self.status != "draft":
            raise WrongEventState("tiers can only be removed from drafts")
        self._remove_tier(tier_id=tier_id)

    class TierRemoved(Aggregate.Event):
        tier_id: UUID

    @event(TierRemoved)
    def _remove_tier(self, tier_id: UUID) -> None:
        del self.tiers[tier_id]

    def tier(self, tier_id: UUID) -> Tier:
        try:
            return self.tiers[tier_id]
        except KeyError:
            raise NotFound("tier not found", code="tier_not_found") from None

    def sections_to_materialise(self) -> list[tuple[Tier, str]]:
        """(tier, section id) pairs of seated tiers whose Seat aggregates do not exist yet.

        A multi-day event has one seat per day, so the key of a section includes the day.
        """
        return [
            (tier, section)
            for tier in self.tiers.values()
            if tier.kind == "seated"
            for section in tier.section_ids
            if f"{tier.day or ''}|{section}" not in self.materialised_sections
        ]

    class SeatsMaterialised(Aggregate.Event):
        section_keys: list[str]

    @event(SeatsMaterialised)
    def mark_seats_materialised(self, section_keys: list[str]) -> None:
        self.materialised_sections |= set(section_keys)

    def _check_tier(
        self,
        tier_id: UUID | None,
        name: str,
        kind: str,
        section_ids: list[str],
        day: str | None,
        venue_sections: set[str],
    ) -> None:
        if not name.strip():
            raise Invalid("tier name is required", field="name")
        if kind not in TIER_KINDS:
            raise Invalid(f"kind must be one of {TIER_KINDS}", field="kind")
        if day is not None and self.days and day not in self.days:
            raise Invalid(f"day {day} is not one of the event's days", field="day")
        if kind == "general":
            if section_ids:
                raise Invalid("general admission tiers have no sections", field="section_ids")
            return
        if not section_ids:
            raise Invalid("seated tiers need at least one section", field="section_ids")
        unknown = set(section_ids) - venue_sections
        if unknown:
            raise Invalid("section not in this venue's layout", field="section_ids")
        for other in self.tiers.values():
            if (
                other.id != tier_id
                and other.kind == "seated"
                and other.day == day
                and set(other.section_ids) & set(section_ids)
            ):
                raise Conflict(f"a section already belongs to tier {other.name!r}", code="section_taken")
