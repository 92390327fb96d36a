"""Catalog commands: venues and their layouts, events, tiers and offers."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from commands.base import BaseApplication
from domain.errors import Forbidden, Invalid
from domain.event import Event, WrongEventState
from domain.offer import Offer
from domain.seat import Seat
from domain.venue import Venue


class CatalogCommands(BaseApplication):
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
    ) -> Event:
        venue = self.load(venue_id, "venue", Venue)
        if not venue.active:
            raise Invalid("this venue is not active", field="venue_id")
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
        )
        self.save(show)
        return show

    def get_event(self, event_id: UUID) -> Event:
        return self.load(event_id, "event", Event)

    def event_for_organizer(self, event_id: UUID, actor_id: UUID, is_admin: bool) -> Event:
        """The event, if `actor_id` may manage it; others get 404 or 403 as the API says."""
        show = self.get_event(event_id)
        if not is_admin and show.organizer_id != actor_id:
            raise Forbidden("you do not manage this event")
        return show

    def update_event(self, event_id: UUID, changes: dict[str, Any]) -> Event:
        def attempt() -> Event:
            show = self.get_event(event_id)
            if "venue_id" in changes:
                self.load(changes["venue_id"], "venue", Venue)
            show.update(**changes)
            self.save(show)
            return show

        return self.retrying(attempt)

    def publish_event(self, event_id: UUID) -> Event:
        """Publish a draft; seated tiers get one Seat aggregate per seat, saved atomically."""

        def attempt() -> Event:
            show = self.get_event(event_id)
            show.publish()
            seats = self._materialise_seats(show)
            self.save(show, *seats)
            return show

        return self.retrying(attempt)

    def cancel_event(self, event_id: UUID, reason: str = "") -> Event:
        def attempt() -> Event:
            show = self.get_event(event_id)
            show.cancel(reason)
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
        def attempt() -> Event:
            show = self.get_event(event_id)
            show.update_tier(tier_id, name, day)
            self.save(show)
            return show

        return self.retrying(attempt)

    def remove_tier(self, event_id: UUID, tier_id: UUID) -> Event:
        def attempt() -> Event:
            show = self.get_event(event_id)
            show.remove_tier(tier_id)
            self.save(show)
            return show

        return self.retrying(attempt)

    def _materialise_seats(self, show: Event, venue: Venue | None = None) -> list[Seat]:
        pending = show.sections_to_materialise()
        if not pending:
            return []
        venue = venue or self.load(show.venue_id, "venue", Venue)
        seats: list[Seat] = []
        for tier, section in pending:
            for spec in venue.seats_in({section}):
                key = f"{tier.day}|{spec['key']}" if tier.day else spec["key"]
                seats.append(
                    Seat(
                        event_id=show.id,
                        key=key,
                        tier_id=tier.id,
                        section_id=spec["section_id"],
                        section=spec["section"],
                        row=spec["row"],
                        label=spec["label"],
                        x=spec["x"],
                        y=spec["y"],
                        accessible=spec["accessible"],
                        day=tier.day,
                    )
                )
        show.mark_seats_materialised(sorted({f"{tier.day or ''}|{section}" for tier, section in pending}))
        return seats

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
        if show.status in ("cancelled", "completed"):
            raise WrongEventState(f"a {show.status} event cannot get new offers")
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
