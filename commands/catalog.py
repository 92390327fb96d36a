"""Catalog commands: venues and their layouts, events, tiers and offers."""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from commands.base import BaseApplication, new_id, utcnow
from commands.media import MediaStore, prepare_image
from commands.media import create_tables as create_media_tables
from domain.category import Category
from domain.errors import Conflict, Invalid, NotFound
from domain.event import Event, WrongEventState
from domain.offer import Offer
from domain.seat import Seat, materialise_seats
from domain.venue import Venue


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def check_time_zone(name: str) -> str:
    """An IANA time zone name (from the tz database the `tzdata` package ships), or `Invalid`."""
    if name not in _time_zones():
        raise Invalid(f"unknown time zone {name[:64]!r}; use an IANA name such as Europe/Berlin", field="timezone")
    return name


class CatalogCommands(BaseApplication):
    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env=env)
        datastore = getattr(self.recorder, "datastore", None)
        self.media = MediaStore(datastore) if datastore is not None else None
        if datastore is not None and self.env.get("CREATE_TABLE", "n").lower() in ("y", "yes", "t", "true", "1"):
            with datastore.get_connection() as conn:
                create_media_tables(conn, datastore.schema)

    # Venues ----------------------------------------------------------------------------

    def create_venue(
        self,
        *,
        name: str,
        address: str,
        city: str,
        country: str,
        capacity: int,
        latitude: float | None = None,
        longitude: float | None = None,
        timezone: str = "UTC",
        venue_id: UUID | None = None,
    ) -> Venue:
        """Create a venue (optionally with a chosen id, for imports and the demo)."""
        if not name.strip():
            raise Invalid("name is required", field="name")
        if capacity < 0:
            raise Invalid("capacity cannot be negative", field="capacity")
        check_time_zone(timezone)
        venue = Venue._create(
            Venue.Created,
            id=venue_id,
            name=name.strip(),
            address=address,
            city=city,
            country=country,
            capacity=capacity,
            latitude=latitude,
            longitude=longitude,
            timezone=timezone,
        )
        self.save(venue)
        return venue

    def update_venue(self, venue_id: UUID, changes: dict[str, Any]) -> Venue:
        if "timezone" in changes:
            check_time_zone(changes["timezone"])

        def attempt() -> Venue:
            venue = self.load(venue_id, "venue", Venue)
            venue.update(**changes)
            self.save(venue)
            return venue

        return self.retrying(attempt)

    def set_venue_layout(self, venue_id: UUID, sections: list[dict[str, Any]]) -> Venue:
        def attempt() -> Venue:
            venue = self.load(venue_id, "venue", Venue)
            venue.set_layout(sections)
            self.save(venue)
            return venue

        return self.retrying(attempt)

    def get_venue(self, venue_id: UUID) -> Venue:
        return self.load(venue_id, "venue", Venue)

    # Categories ------------------------------------------------------------------------

    def create_category(self, name: str, parent_id: UUID | None = None) -> Category:
        """A segment (no parent), a genre (under a segment) or a sub-genre (under a genre)."""
        category = self.load(parent_id, "category", Category).child(name) if parent_id else Category.segment(name)
        try:
            self.save(category)
        except IntegrityError:
            held = self.load(category.id, "category", Category)
            if not held.removed and held.slug == category.slug:
                raise Conflict(f"{category.name!r} already exists here", code="category_exists", field="name") from None
            category = category.with_id(new_id())  # its name's id went to one renamed or deleted since
            self.save(category)
        return category

    def rename_category(self, category_id: UUID, name: str) -> Category:
        category = self._category(category_id)
        category.rename(name)
        self.save(category)
        return category

    def remove_category(self, category_id: UUID) -> None:
        """Delete a category; the API checks first that nothing is filed under it."""
        category = self._category(category_id)
        category.remove()
        self.save(category)

    def _category(self, category_id: UUID) -> Category:
        category = self.load(category_id, "category", Category)
        if category.removed:
            raise NotFound("category not found", code="category_not_found")
        return category

    def check_categories(self, segment_id: UUID | None, genre_id: UUID | None, sub_genre_id: UUID | None) -> None:
        """Each given category exists, sits at its level, and they form one branch of the tree."""
        levels = (("segment", segment_id), ("genre", genre_id), ("sub_genre", sub_genre_id))
        parent: Category | None = None
        for level, category_id in levels:
            if category_id is None:
                parent = None
                continue
            try:
                category = self.load(category_id, level.replace("_", "-"), Category)
            except NotFound:
                raise Invalid(f"unknown {level.replace('_', '-')}", field=f"{level}_id") from None
            if category.removed:
                raise Invalid(f"unknown {level.replace('_', '-')}", field=f"{level}_id")
            if category.level != level:
                raise Invalid(f"that category is not a {level.replace('_', '-')}", field=f"{level}_id")
            if parent is not None and category.parent_id != parent.id:
                raise Invalid(f"that {level.replace('_', '-')} is not under the given parent", field=f"{level}_id")
            parent = category

    # Events ----------------------------------------------------------------------------

    def create_event(
        self,
        *,
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
        event_id: UUID | None = None,
        at: datetime | None = None,
    ) -> Event:
        check_time_zone(timezone)
        venue = self.load(venue_id, "venue", Venue)
        if not venue.active:
            raise Invalid("this venue is not active", field="venue_id")
        self.check_categories(segment_id, genre_id, sub_genre_id)
        show = Event.schedule(
            organizer_id=organizer_id,
            venue_id=venue_id,
            title=title.strip(),
            description=description,
            start_time=start_time,
            end_time=end_time,
            timezone=timezone,
            days=days,
            segment_id=segment_id,
            genre_id=genre_id,
            sub_genre_id=sub_genre_id,
            event_id=event_id,
            now=at or utcnow(),
        )
        self.save(show)
        return show

    def get_event(self, event_id: UUID) -> Event:
        return self.load(event_id, "event", Event)

    def update_event(self, event_id: UUID, changes: dict[str, Any]) -> Event:
        if "timezone" in changes:
            check_time_zone(changes["timezone"])

        def attempt() -> Event:
            show = self.get_event(event_id)
            if "venue_id" in changes:
                self.load(changes["venue_id"], "venue", Venue)
            if {"segment_id", "genre_id", "sub_genre_id"} & set(changes):
                merged = {k: changes.get(k, getattr(show, k)) for k in ("segment_id", "genre_id", "sub_genre_id")}
                self.check_categories(merged["segment_id"], merged["genre_id"], merged["sub_genre_id"])
            show.update(utcnow(), **changes)
            self.save(show)
            return show

        return self.retrying(attempt)

    def feature_event(self, event_id: UUID, featured: bool) -> Event:
        """Feature a show on the home page, or stop (admins decide; see the API)."""

        def attempt() -> Event:
            show = self.get_event(event_id)
            before = show.version
            show.feature(featured)
            if show.version != before:
                self.save(show)
            return show

        return self.retrying(attempt)

    def set_event_image(self, event_id: UUID, data: bytes) -> Event:
        """Give a show the picture in `data` (an upload, untrusted): checked and re-encoded
        (`commands/media.py`), its variants stored by hash, then `ImageChanged` naming them.
        The show's state is checked first, so a frozen show costs no decoding."""
        if self.media is None:
            raise RuntimeError("images need the Postgres event store")
        self.get_event(event_id).check_image_changeable(utcnow())
        prepared = prepare_image(data)
        self.media.put(prepared.full, prepared.card)
        return self._change_event(event_id, lambda show: show.change_image(prepared.image(), utcnow()))

    def remove_event_image(self, event_id: UUID) -> Event:
        return self._change_event(event_id, lambda show: show.remove_image())

    def image_bytes(self, sha256: str) -> bytes | None:
        """A stored image variant by its hash (None when unknown)."""
        return None if self.media is None else self.media.get(sha256)

    def publish_event(self, event_id: UUID) -> Event:
        """Publish a draft; seated tiers get one Seat aggregate per seat, saved atomically."""

        def attempt() -> Event:
            show = self.get_event(event_id)
            show.publish(utcnow())
            seats = self._materialise_seats(show)
            self.save(show, *seats)
            return show

        return self.retrying(attempt)

    def cancel_event(self, event_id: UUID, reason: str = "") -> Event:
        return self._change_event(event_id, lambda show: show.cancel(reason, utcnow()))

    def delete_event(self, event_id: UUID) -> Event:
        """Delete a draft, or cancel a published show (the caller settles its orders)."""
        return self._change_event(event_id, lambda show: show.withdraw(utcnow()))

    def add_attraction(self, event_id: UUID, *, name: str, description: str = "", image_url: str = "") -> UUID:
        def attempt() -> UUID:
            show = self.get_event(event_id)
            attraction_id = show.add_attraction(name, description, image_url)
            self.save(show)
            return attraction_id

        return self.retrying(attempt)

    def remove_attraction(self, event_id: UUID, attraction_id: UUID) -> Event:
        return self._change_event(event_id, lambda show: show.remove_attraction(attraction_id))

    def _change_event(self, event_id: UUID, change: Callable[[Event], None]) -> Event:
        def attempt() -> Event:
            show = self.get_event(event_id)
            change(show)
            self.save(show)
            return show

        return self.retrying(attempt)

    # Tiers -----------------------------------------------------------------------------

    def add_tier(self, event_id: UUID, *, name: str, kind: str, section_ids: list[str], day: str | None = None) -> UUID:
        def attempt() -> UUID:
            show = self.get_event(event_id)
            venue = self.load(show.venue_id, "venue", Venue)
            tier_id = show.add_tier(name, kind, section_ids, day, venue.section_ids())
            seats = self._materialise_seats(show, venue) if show.status == "published" else []
            self.save(show, *seats)
            return tier_id

        return self.retrying(attempt)

    def update_tier(self, event_id: UUID, tier_id: UUID, *, name: str | None, day: str | None) -> Event:
        return self._change_event(event_id, lambda show: show.update_tier(tier_id, name, day))

    def remove_tier(self, event_id: UUID, tier_id: UUID) -> Event:
        return self._change_event(event_id, lambda show: show.remove_tier(tier_id))

    def set_seats_blocked(self, event_id: UUID, seat_ids: list[UUID], blocked: bool) -> list[Seat]:
        """Block (or unblock) seats of a show, all or none: one seat that cannot be (held or
        sold: 409 `seat_taken`; not this show's: 422) leaves every seat as it was."""
        ids = list(dict.fromkeys(seat_ids))
        if not ids:
            raise Invalid("name at least one seat", field="seat_ids")

        def attempt() -> list[Seat]:
            show = self.get_event(event_id)
            if show.status_at(utcnow()) not in ("draft", "published"):
                raise WrongEventState(f"the seats of a {show.status_at(utcnow())} event cannot change")
            loaded = self.load_many(ids)
            seats: list[Seat] = []
            for seat_id in ids:
                seat = loaded.get(seat_id)
                if not isinstance(seat, Seat) or seat.event_id != event_id:
                    raise Invalid(f"seat {seat_id} is not a seat of this event", field="seat_ids")
                seats.append(seat)
            changed = []
            for seat in seats:
                before = seat.version
                seat.block() if blocked else seat.unblock()
                if seat.version != before:
                    changed.append(seat)
            if changed:
                self.save(*changed)
            return seats

        return self.retrying(attempt)

    def _materialise_seats(self, show: Event, venue: Venue | None = None) -> list[Seat]:
        if not show.sections_to_materialise():
            return []
        return materialise_seats(show, venue or self.load(show.venue_id, "venue", Venue))

    # Offers ----------------------------------------------------------------------------

    def add_offer(
        self,
        event_id: UUID,
        tier_id: UUID,
        *,
        name: str,
        price: int,
        currency: str,
        quantity_for_sale: int | None,
        sale_start_time: datetime | None = None,
        sale_end_time: datetime | None = None,
        min_per_order: int = 1,
        max_per_order: int = 10,
    ) -> Offer:
        show = self.get_event(event_id)
        status = show.status_at(utcnow())
        if status in ("cancelled", "completed"):
            raise WrongEventState(f"a {status} event cannot get new offers")
        tier = show.tier(tier_id)
        offer = Offer.define(
            event_id=event_id,
            tier_id=tier_id,
            tier_kind=tier.kind,
            name=name.strip(),
            price=price,
            currency=currency.upper(),
            quantity_for_sale=quantity_for_sale,
            sale_start_time=sale_start_time,
            sale_end_time=sale_end_time,
            min_per_order=min_per_order,
            max_per_order=max_per_order,
        )
        self.save(offer)
        return offer

    def get_offer(self, offer_id: UUID) -> Offer:
        return self.load(offer_id, "offer", Offer)

    def update_offer(self, offer_id: UUID, changes: dict[str, Any]) -> Offer:
        def attempt() -> Offer:
            offer = self.get_offer(offer_id)
            if "currency" in changes:
                changes["currency"] = str(changes["currency"]).upper()
            offer.update(**changes)
            self.save(offer)
            return offer

        return self.retrying(attempt)
