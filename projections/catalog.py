"""Catalog read model: venues, the event listing (price range, availability), tiers, offers.

One module because it is one projection with one tracking position: its handlers write these
tables together in each batch's transaction, and a change to one event usually touches several."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from domain.category import Category
from domain.event import Event
from domain.offer import Offer
from domain.seat import Seat
from domain.venue import Venue
from projections.base import SCHEMA, ReadModel, ReadModelView, Upkeep, json_rows

# The columns an `Updated` event of an older store may change (its other keys are not projected).
EVENT_FIELDS = (
    "venue_id", "title", "description", "start_time", "end_time", "timezone", "days",
    "segment_id", "genre_id", "sub_genre_id",
)  # fmt: skip
OFFER_FIELDS = (
    "name", "price", "currency", "quantity_for_sale", "sale_start_time", "sale_end_time",
    "min_per_order", "max_per_order", "status",
)  # fmt: skip
VENUE_FIELDS = ("name", "address", "city", "country", "capacity", "latitude", "longitude", "timezone", "active")
# A show's columns its search document is made of (a new venue brings a new name and city).
SEARCHED = {"title", "description", "venue_id"}


class CatalogView(ReadModelView):
    tables = ("venues", "events", "tiers", "offers", "seats", "categories", "attractions", "scanners")
    ddl = (
        """CREATE TABLE IF NOT EXISTS read.venues (
            id uuid PRIMARY KEY, name text NOT NULL, address text NOT NULL, city text NOT NULL,
            country text NOT NULL, capacity integer NOT NULL, latitude double precision,
            longitude double precision, timezone text NOT NULL, active boolean NOT NULL,
            sections jsonb NOT NULL DEFAULT '[]', seat_count integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS read.events (
            id uuid PRIMARY KEY, organizer_id uuid NOT NULL, venue_id uuid NOT NULL,
            title text NOT NULL, description text NOT NULL, start_time timestamptz NOT NULL,
            end_time timestamptz NOT NULL, timezone text NOT NULL, days jsonb NOT NULL,
            segment_id uuid, genre_id uuid, sub_genre_id uuid, status text NOT NULL,
            venue_name text NOT NULL DEFAULT '', city text NOT NULL DEFAULT '',
            min_price bigint, max_price bigint, currency text, available integer NOT NULL DEFAULT 0,
            version bigint NOT NULL DEFAULT 0, seats_version bigint NOT NULL DEFAULT 0,
            layout_version bigint NOT NULL DEFAULT 0, created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL, search tsvector)""",
        "ALTER TABLE read.events ADD COLUMN IF NOT EXISTS seats_version bigint NOT NULL DEFAULT 0",
        "ALTER TABLE read.events ADD COLUMN IF NOT EXISTS featured boolean NOT NULL DEFAULT false",
        "ALTER TABLE read.events ADD COLUMN IF NOT EXISTS layout_version bigint NOT NULL DEFAULT 0",
        # The show's picture: {image_id, width, height, card_id, card_width, card_height}, or null.
        "ALTER TABLE read.events ADD COLUMN IF NOT EXISTS image jsonb",
        "CREATE INDEX IF NOT EXISTS events_listing ON read.events (status, start_time)",
        # Totals of listing searches count through this index alone (no visit to the wide rows).
        "CREATE INDEX IF NOT EXISTS events_open_counts ON read.events (status, end_time) "
        "INCLUDE (available, min_price, max_price, start_time)",
        "CREATE INDEX IF NOT EXISTS events_cheapest ON read.events (status, min_price, start_time)",
        "CREATE INDEX IF NOT EXISTS events_dearest ON read.events (status, max_price DESC, start_time)",
        "CREATE INDEX IF NOT EXISTS events_city ON read.events (status, lower(city), start_time)",
        "CREATE INDEX IF NOT EXISTS events_organizer ON read.events (organizer_id, start_time)",
        "CREATE INDEX IF NOT EXISTS events_venue ON read.events (venue_id)",
        "CREATE INDEX IF NOT EXISTS events_search ON read.events USING gin (search)",
        """CREATE TABLE IF NOT EXISTS read.tiers (
            id uuid PRIMARY KEY, event_id uuid NOT NULL, name text NOT NULL, kind text NOT NULL,
            section_ids jsonb NOT NULL, day text, seats_total integer NOT NULL DEFAULT 0,
            seats_available integer NOT NULL DEFAULT 0, created_at timestamptz NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS tiers_event ON read.tiers (event_id)",
        """CREATE TABLE IF NOT EXISTS read.offers (
            id uuid PRIMARY KEY, event_id uuid NOT NULL, tier_id uuid NOT NULL, tier_kind text NOT NULL,
            name text NOT NULL, price bigint NOT NULL, currency text NOT NULL, quantity_for_sale integer,
            held integer NOT NULL DEFAULT 0, sold integer NOT NULL DEFAULT 0,
            sale_start_time timestamptz, sale_end_time timestamptz, min_per_order integer NOT NULL,
            max_per_order integer NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS offers_event ON read.offers (event_id)",
        "CREATE INDEX IF NOT EXISTS offers_tier ON read.offers (tier_id)",
        """CREATE TABLE IF NOT EXISTS read.seats (
            id uuid PRIMARY KEY, event_id uuid NOT NULL, tier_id uuid NOT NULL, section_id text NOT NULL,
            section text NOT NULL, row_label text NOT NULL, label text NOT NULL,
            x double precision NOT NULL, y double precision NOT NULL, accessible boolean NOT NULL,
            day text, status text NOT NULL, order_id uuid, held_until timestamptz,
            changed_at bigint NOT NULL DEFAULT 0)""",
        "ALTER TABLE read.seats ADD COLUMN IF NOT EXISTS changed_at bigint NOT NULL DEFAULT 0",
        "CREATE INDEX IF NOT EXISTS seats_event ON read.seats (event_id, section, row_label)",
        # What changed in a seat map since a version: a few rows, however big the house.
        "CREATE INDEX IF NOT EXISTS seats_changes ON read.seats (event_id, changed_at)",
        """CREATE TABLE IF NOT EXISTS read.categories (
            id uuid PRIMARY KEY, level text NOT NULL, name text NOT NULL, slug text NOT NULL,
            parent_id uuid, created_at timestamptz NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS categories_parent ON read.categories (level, parent_id, name)",
        """CREATE TABLE IF NOT EXISTS read.attractions (
            id uuid PRIMARY KEY, event_id uuid NOT NULL, name text NOT NULL, description text NOT NULL,
            image_url text NOT NULL, created_at timestamptz NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS attractions_event ON read.attractions (event_id, created_at)",
        """CREATE TABLE IF NOT EXISTS read.scanners (
            event_id uuid NOT NULL, account_id uuid NOT NULL, granted_at timestamptz NOT NULL,
            PRIMARY KEY (event_id, account_id))""",
    )

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        # Listing searches count their totals through an index alone, which needs the table
        # vacuumed; after thousands of shows change at once, autovacuum may take a minute.
        self.listing_upkeep = Upkeep(datastore, f"{SCHEMA}.events")
        self._listing_rows_written = 0
        self._totals = _RebuildTotals()

    # Counters and listing figures change with almost every event of a sale; they are
    # accumulated during a batch and written with a few set-based statements at its end.

    def new_batch_state(self) -> CatalogBatch:
        return CatalogBatch()

    def committed(self) -> None:
        written, self._listing_rows_written = self._listing_rows_written, 0
        self.listing_upkeep.note(written)

    def end_batch(self, curs: Cursor[DictRow]) -> None:
        b: CatalogBatch = self.pending
        # Rows of read.events this batch writes, at most: the shows it changed, one per changed
        # offer, and the sold show's counters and seat-map version.
        self._listing_rows_written += (
            len(b.events) + len(b.offers) + len(b.map_events) + len(b.map_offers) + 2 * bool(b.seats)
        )
        if b.new_seats:
            self.insert_seats(curs, b)
        if b.seat_status:
            ids = list(b.seat_status)
            statuses, orders, untils = zip(*b.seat_status.values(), strict=True)
            curs.execute(
                """UPDATE read.seats s SET status = x.status, order_id = x.order_id, held_until = x.until,
                     changed_at = x.position
                   FROM unnest(%s::uuid[], %s::text[], %s::uuid[], %s::timestamptz[], %s::bigint[])
                     AS x(id, status, order_id, until, position)
                   WHERE s.id = x.id""",
                (ids, list(statuses), list(orders), list(untils), [b.seats[i] for i in ids]),
            )
        if self.rebuilding:
            self._totals.add(curs, b)
            return
        seat_deltas = {"seat_ids": list(b.seat_available), "seat_deltas": list(b.seat_available.values())}
        _add_counts(
            curs, b.tier_seats, _TIER_DELTAS_FROM_SEATS if b.seat_available else "", seat_deltas, b.offer_counts
        )
        if b.events or b.offers or b.seats:
            curs.execute(f"WITH {_dirty_sql('events', 'offers')} {_LISTING}", _dirty_params(b, b.events, b.offers))
        if b.map_events or b.map_offers:
            # Seats added or removed, prices changed: a seat map is built again from scratch.
            map_params = _dirty_params(b, b.map_events, b.map_offers)
            curs.execute(f"WITH {_dirty_sql('map_events', 'map_offers', seats=False)} {_LAYOUT}", map_params)
        if b.map_events or b.map_offers or b.seats:
            # The seat map's ETag moves only when seats or prices change, not with GA sales;
            # a change of seat status alone is patched into a cached map (read.seats.changed_at).
            curs.execute(
                f"WITH {_dirty_sql('map_events', 'map_offers')} {_SEATS_VERSION}",
                _dirty_params(b, b.map_events, b.map_offers),
            )

    # A rebuild writes the counters of tiers and offers, and each show's listing figures and
    # versions, once at its end. Written at every batch as live, such a row would be rewritten
    # once per batch touching it, and in one transaction none of its old versions can be
    # pruned: every later update or read of the row walks all of them (a 20,000-seat house
    # rebuilt one event per batch ran over ten minutes, quadratic). The result is the same:
    # counters are sums of deltas, figures are computed from the final tables, and a version
    # is the position of the last event that touched the show.

    def create_for_rebuild(self, curs: Cursor[DictRow]) -> None:
        self._totals = _RebuildTotals()
        super().create_for_rebuild(curs)

    def finish_rebuild(self, curs: Cursor[DictRow]) -> None:
        t = self._totals
        tier_deltas = {"tier_ids": list(t.tier_available), "tier_deltas": list(t.tier_available.values())}
        _add_counts(curs, t.tier_seats, _TIER_DELTAS_GIVEN if t.tier_available else "", tier_deltas, t.offer_counts)
        for shows, update in ((t.listing, _LISTING), (t.layout, _LAYOUT), (t.seats, _SEATS_VERSION)):
            if shows:
                curs.execute(f"WITH {_GIVEN} {update}", {"ids": list(shows), "at": list(shows.values())})
        super().finish_rebuild(curs)

    def abandon_rebuild(self) -> None:
        self._totals = _RebuildTotals()
        super().abandon_rebuild()

    def insert_seats(self, curs: Cursor[DictRow], b: CatalogBatch) -> None:
        """The batch's new seats, in one statement (rows as one JSON document), before anything
        of the batch updates them. Coordinates travel as their repr (exact, and NaN/inf too)."""
        curs.execute(
            """INSERT INTO read.seats (id, event_id, tier_id, section_id, section, row_label, label, x, y,
                 accessible, day, status)
               SELECT id, event_id, tier_id, section_id, section, row_label, label, x, y, accessible, day, 'available'
               FROM json_to_recordset(%s::json) AS s(id uuid, event_id uuid, tier_id uuid, section_id text,
                 section text, row_label text, label text, x double precision, y double precision,
                 accessible boolean, day text)
               ON CONFLICT (id) DO NOTHING""",
            (json_rows(list(b.new_seats.values())),),
        )


# What changes with the rows of a show's offers, tiers and seats; each statement follows a
# `dirty(id, position)` CTE naming the shows and the position of the last event that touched them.
_LISTING = """UPDATE read.events e SET
                 min_price = f.min_price, max_price = f.max_price, currency = f.currency,
                 available = f.available, version = d.position
               FROM dirty d, LATERAL (
                 SELECT min(o.price) AS min_price, max(o.price) AS max_price, min(o.currency) AS currency,
                   coalesce((SELECT sum(greatest(o2.quantity_for_sale - o2.held - o2.sold, 0))
                             FROM read.offers o2 WHERE o2.event_id = d.id AND o2.tier_kind = 'general'), 0)
                   + coalesce((SELECT sum(t.seats_available) FROM read.tiers t
                               WHERE t.event_id = d.id AND t.kind = 'seated'), 0) AS available
                 FROM read.offers o WHERE o.event_id = d.id) f
               WHERE e.id = d.id"""
_LAYOUT = "UPDATE read.events e SET layout_version = d.position FROM dirty d WHERE e.id = d.id"
_SEATS_VERSION = "UPDATE read.events e SET seats_version = d.position FROM dirty d WHERE e.id = d.id"
_GIVEN = "dirty AS (SELECT x.id, x.position FROM unnest(%(ids)s::uuid[], %(at)s::bigint[]) AS x(id, position))"


# A tier's change of available seats, from the seats that changed (live) or as summed (rebuild).
_TIER_DELTAS_FROM_SEATS = """deltas AS (SELECT s.tier_id, sum(x.delta) AS delta
                 FROM unnest(%(seat_ids)s::uuid[], %(seat_deltas)s::int[]) AS x(id, delta)
                 JOIN read.seats s ON s.id = x.id GROUP BY s.tier_id)"""
_TIER_DELTAS_GIVEN = (
    "deltas AS (SELECT * FROM unnest(%(tier_ids)s::uuid[], %(tier_deltas)s::int[]) AS x(tier_id, delta))"
)


def _add_counts(
    curs: Cursor[DictRow],
    tier_seats: dict[UUID, int],
    tier_deltas: str,
    params: dict[str, Any],
    offer_counts: dict[UUID, list[int]],
) -> None:
    """Add seats to tiers, a `deltas(tier_id, delta)` CTE to their available seats (if given),
    and held and sold counts to offers."""
    if tier_seats:
        curs.execute(
            """UPDATE read.tiers t SET seats_total = t.seats_total + x.n, seats_available = t.seats_available + x.n
               FROM unnest(%s::uuid[], %s::int[]) AS x(id, n) WHERE t.id = x.id""",
            (list(tier_seats), list(tier_seats.values())),
        )
    if tier_deltas:
        curs.execute(
            f"""WITH {tier_deltas}
                UPDATE read.tiers t SET seats_available = t.seats_available + d.delta FROM deltas d
                WHERE t.id = d.tier_id""",
            params,
        )
    if offer_counts:
        held, sold = zip(*offer_counts.values(), strict=True)
        curs.execute(
            """UPDATE read.offers o SET held = o.held + x.held, sold = o.sold + x.sold
               FROM unnest(%s::uuid[], %s::int[], %s::int[]) AS x(id, held, sold) WHERE o.id = x.id""",
            (list(offer_counts), list(held), list(sold)),
        )


@dataclass
class _RebuildTotals:
    """What a rebuild writes once, at its end: counts added to tiers and offers, and the shows
    to refresh, each with the position of the last event that touched it."""

    tier_seats: dict[UUID, int] = field(default_factory=dict)
    tier_available: dict[UUID, int] = field(default_factory=dict)
    offer_counts: dict[UUID, list[int]] = field(default_factory=dict)
    listing: dict[UUID, int] = field(default_factory=dict)
    layout: dict[UUID, int] = field(default_factory=dict)
    seats: dict[UUID, int] = field(default_factory=dict)

    def add(self, curs: Cursor[DictRow], b: CatalogBatch) -> None:
        """Add a batch's counts; note the shows it changed (resolved through offers and seats)."""
        for tier, n in b.tier_seats.items():
            self.tier_seats[tier] = self.tier_seats.get(tier, 0) + n
        for offer, (held, sold) in b.offer_counts.items():
            counts = self.offer_counts.setdefault(offer, [0, 0])
            counts[0] += held
            counts[1] += sold
        if b.seat_available:
            params = {"seat_ids": list(b.seat_available), "seat_deltas": list(b.seat_available.values())}
            curs.execute(f"WITH {_TIER_DELTAS_FROM_SEATS} SELECT tier_id, delta FROM deltas", params)
            for row in curs.fetchall():
                self.tier_available[row["tier_id"]] = self.tier_available.get(row["tier_id"], 0) + row["delta"]
        for shows, events, offers, seats, changed in (
            (self.listing, "events", "offers", True, b.events or b.offers or b.seats),
            (self.layout, "map_events", "map_offers", False, b.map_events or b.map_offers),
            (self.seats, "map_events", "map_offers", True, b.map_events or b.map_offers or b.seats),
        ):
            if changed:
                params = _dirty_params(b, getattr(b, events), getattr(b, offers))
                curs.execute(f"WITH {_dirty_sql(events, offers, seats=seats)} SELECT id, position FROM dirty", params)
                for row in curs.fetchall():
                    shows[row["id"]] = max(row["position"], shows.get(row["id"], 0))


def _dirty_sql(events: str, offers: str, *, seats: bool = True) -> str:
    """A `dirty(id, position)` CTE: shows changed directly, or through an offer (or a seat)."""
    through_seats = (
        """UNION ALL SELECT s.event_id, x.position
                   FROM unnest(%(seats)s::uuid[], %(seats_at)s::bigint[]) AS x(id, position)
                   JOIN read.seats s ON s.id = x.id"""
        if seats
        else ""
    )
    return f"""changes AS (
                 SELECT x.id AS event_id, x.position
                   FROM unnest(%({events})s::uuid[], %({events}_at)s::bigint[]) AS x(id, position)
                 UNION ALL SELECT o.event_id, x.position
                   FROM unnest(%({offers})s::uuid[], %({offers}_at)s::bigint[]) AS x(id, position)
                   JOIN read.offers o ON o.id = x.id
                 {through_seats}),
               dirty AS (SELECT event_id AS id, max(position) AS position FROM changes GROUP BY event_id)"""


def _dirty_params(b: CatalogBatch, events: dict[UUID, int], offers: dict[UUID, int]) -> dict[str, Any]:
    names = ("map_events", "map_offers") if events is b.map_events else ("events", "offers")
    return {
        names[0]: list(events),
        f"{names[0]}_at": list(events.values()),
        names[1]: list(offers),
        f"{names[1]}_at": list(offers.values()),
        "seats": list(b.seats),
        "seats_at": list(b.seats.values()),
    }


@dataclass
class CatalogBatch:
    """Changes of one batch, written at its end.

    Every changed show, offer and seat is noted with the position of its last change, so a
    show's `version` is the position of the last event that touched it, however the log was
    cut into batches (a rebuild gives the same versions as the live runner).
    """

    position: int = 0
    events: dict[UUID, int] = field(default_factory=dict)
    offers: dict[UUID, int] = field(default_factory=dict)
    seats: dict[UUID, int] = field(default_factory=dict)
    map_events: dict[UUID, int] = field(default_factory=dict)
    map_offers: dict[UUID, int] = field(default_factory=dict)
    offer_counts: dict[UUID, list[int]] = field(default_factory=dict)
    tier_seats: dict[UUID, int] = field(default_factory=dict)
    seat_status: dict[UUID, tuple[str, UUID | None, Any]] = field(default_factory=dict)
    seat_available: dict[UUID, int] = field(default_factory=dict)
    new_seats: dict[UUID, dict[str, Any]] = field(default_factory=dict)

    def at(self, tracking: Tracking) -> CatalogBatch:
        self.position = tracking.notification_id
        return self

    def note(self, changed: dict[UUID, int], key: UUID) -> None:
        changed[key] = self.position


class CatalogProjection(ReadModel[CatalogView]):
    name = "catalog"
    view_class = CatalogView

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Ignored events only advance the position."""

    # Venues ----------------------------------------------------------------------------

    @process_event.register
    def _(self, e: Venue.Created, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                """INSERT INTO read.venues (id, name, address, city, country, capacity, latitude, longitude,
                     timezone, active, created_at, updated_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, true, %s, %s) ON CONFLICT (id) DO NOTHING""",
                (e.originator_id, e.name, e.address, e.city, e.country, e.capacity, e.latitude,
                 e.longitude, e.timezone, e.timestamp, e.timestamp),
            )  # fmt: skip

    @process_event.register
    def _(self, e: Venue.Renamed, tracking: Tracking) -> None:
        self._venue(e, tracking, name=e.name)

    @process_event.register
    def _(self, e: Venue.AddressChanged, tracking: Tracking) -> None:
        self._venue(e, tracking, address=e.address, city=e.city, country=e.country)

    @process_event.register
    def _(self, e: Venue.CapacityChanged, tracking: Tracking) -> None:
        self._venue(e, tracking, capacity=e.capacity)

    @process_event.register
    def _(self, e: Venue.Located, tracking: Tracking) -> None:
        self._venue(e, tracking, latitude=e.latitude, longitude=e.longitude)

    @process_event.register
    def _(self, e: Venue.TimeZoneChanged, tracking: Tracking) -> None:
        self._venue(e, tracking, timezone=e.timezone)

    @process_event.register
    def _(self, e: Venue.Deactivated, tracking: Tracking) -> None:
        self._venue(e, tracking, active=False)

    @process_event.register
    def _(self, e: Venue.Reactivated, tracking: Tracking) -> None:
        self._venue(e, tracking, active=True)

    @process_event.register
    def _(self, e: Venue.Updated, tracking: Tracking) -> None:
        self._venue(e, tracking, **{k: v for k, v in e.changes.items() if k in VENUE_FIELDS})

    def _venue(self, e: Any, tracking: Tracking, **columns: Any) -> None:
        """A venue's details changed; its name and city are copied onto its shows (and their search)."""
        with self.view.writing(tracking) as curs:
            _update(curs, "venues", e.originator_id, columns, e.timestamp)
            if "name" in columns or "city" in columns:
                curs.execute(
                    "UPDATE read.events e SET venue_name = v.name, city = v.city FROM read.venues v "
                    "WHERE v.id = %s AND e.venue_id = v.id",
                    (e.originator_id,),
                )
                _refresh_search(curs, "venue_id", e.originator_id)

    @process_event.register
    def _(self, e: Venue.LayoutSet, tracking: Tracking) -> None:
        summary: list[dict[str, Any]] = [
            {
                "id": s["id"],
                "name": s["name"],
                "rows": len(s["rows"]),
                "seats": sum(len(r["seats"]) for r in s["rows"]),
            }
            for s in e.sections
        ]
        seat_count = sum(s["seats"] for s in summary)
        with self.view.writing(tracking) as curs:
            curs.execute(
                "UPDATE read.venues SET sections = %s, seat_count = %s, capacity = %s, updated_at = %s WHERE id = %s",
                (Jsonb(summary), seat_count, seat_count, e.timestamp, e.originator_id),
            )

    # Categories ------------------------------------------------------------------------

    @process_event.register
    def _(self, e: Category.Created, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                "INSERT INTO read.categories VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (e.originator_id, e.level, e.name, e.slug, e.parent_id, e.timestamp),
            )

    @process_event.register
    def _(self, e: Category.Renamed, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                "UPDATE read.categories SET name = %s, slug = %s WHERE id = %s", (e.name, e.slug, e.originator_id)
            )

    @process_event.register
    def _(self, e: Category.Removed, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute("DELETE FROM read.categories WHERE id = %s", (e.originator_id,))

    # Events ----------------------------------------------------------------------------

    @process_event.register
    def _(self, e: Event.Deleted, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            for table in ("events", "tiers", "offers", "attractions"):
                column = "id" if table == "events" else "event_id"
                curs.execute(f"DELETE FROM read.{table} WHERE {column} = %s", (e.originator_id,))

    @process_event.register
    def _(self, e: Event.ScannerGranted, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                "INSERT INTO read.scanners VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (e.originator_id, e.account_id, e.timestamp),
            )

    @process_event.register
    def _(self, e: Event.ScannerRevoked, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                "DELETE FROM read.scanners WHERE event_id = %s AND account_id = %s", (e.originator_id, e.account_id)
            )

    @process_event.register
    def _(self, e: Event.AttractionAdded, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                "INSERT INTO read.attractions VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (e.attraction_id, e.originator_id, e.name, e.description, e.image_url, e.timestamp),
            )
            _refresh_search(curs, "id", e.originator_id)

    @process_event.register
    def _(self, e: Event.AttractionRemoved, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute("DELETE FROM read.attractions WHERE id = %s", (e.attraction_id,))
            _refresh_search(curs, "id", e.originator_id)

    @process_event.register
    def _(self, e: Event.Created, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                """INSERT INTO read.events (id, organizer_id, venue_id, title, description, start_time, end_time,
                     timezone, days, segment_id, genre_id, sub_genre_id, status, venue_name, city,
                     created_at, updated_at)
                   SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'draft',
                     coalesce(v.name, ''), coalesce(v.city, ''), %s, %s
                   FROM (SELECT 1) one LEFT JOIN read.venues v ON v.id = %s
                   ON CONFLICT (id) DO NOTHING""",
                (e.originator_id, e.organizer_id, e.venue_id, e.title, e.description, e.start_time,
                 e.end_time, e.timezone, Jsonb(list(e.days or [])), e.segment_id, e.genre_id,
                 e.sub_genre_id, e.timestamp, e.timestamp, e.venue_id),
            )  # fmt: skip
            _refresh_search(curs, "id", e.originator_id)

    @process_event.register
    def _(self, e: Event.Retitled, tracking: Tracking) -> None:
        self._event(e, tracking, title=e.title)

    @process_event.register
    def _(self, e: Event.Described, tracking: Tracking) -> None:
        self._event(e, tracking, description=e.description)

    @process_event.register
    def _(self, e: Event.Rescheduled, tracking: Tracking) -> None:
        self._event(e, tracking, start_time=e.start_time, end_time=e.end_time, days=e.days, timezone=e.timezone)

    @process_event.register
    def _(self, e: Event.Relocated, tracking: Tracking) -> None:
        self._event(e, tracking, venue_id=e.venue_id)

    @process_event.register
    def _(self, e: Event.Categorised, tracking: Tracking) -> None:
        self._event(e, tracking, segment_id=e.segment_id, genre_id=e.genre_id, sub_genre_id=e.sub_genre_id)

    @process_event.register
    def _(self, e: Event.Updated, tracking: Tracking) -> None:
        self._event(e, tracking, **{k: v for k, v in e.changes.items() if k in EVENT_FIELDS})

    def _event(self, e: Any, tracking: Tracking, **columns: Any) -> None:
        """A show's details changed; a new venue brings its name and city along."""
        if "days" in columns:
            columns["days"] = Jsonb(columns["days"])
        with self.view.writing(tracking) as curs:
            _update(curs, "events", e.originator_id, columns, e.timestamp)
            if "venue_id" in columns:
                curs.execute(
                    "UPDATE read.events e SET venue_name = v.name, city = v.city FROM read.venues v "
                    "WHERE e.id = %s AND v.id = e.venue_id",
                    (e.originator_id,),
                )
            if columns.keys() & SEARCHED:
                _refresh_search(curs, "id", e.originator_id)

    @process_event.register
    def _(self, e: Event.Published, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            _update(curs, "events", e.originator_id, {"status": "published"}, e.timestamp)

    @process_event.register
    def _(self, e: Event.Featured, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            _update(curs, "events", e.originator_id, {"featured": e.featured}, e.timestamp)

    @process_event.register
    def _(self, e: Event.ImageChanged, tracking: Tracking) -> None:
        image = {"image_id": e.image_id, "width": e.width, "height": e.height, "card_id": e.card_id,
                 "card_width": e.card_width, "card_height": e.card_height}  # fmt: skip
        with self.view.writing(tracking) as curs:
            _update(curs, "events", e.originator_id, {"image": Jsonb(image)}, e.timestamp)

    @process_event.register
    def _(self, e: Event.ImageRemoved, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            _update(curs, "events", e.originator_id, {"image": None}, e.timestamp)

    @process_event.register
    def _(self, e: Event.Cancelled, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            _update(curs, "events", e.originator_id, {"status": "cancelled"}, e.timestamp)

    @process_event.register
    def _(self, e: Event.TierAdded, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                """INSERT INTO read.tiers (id, event_id, name, kind, section_ids, day, created_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING""",
                (e.tier_id, e.originator_id, e.name, e.kind, Jsonb(e.section_ids), e.day, e.timestamp),
            )

    @process_event.register
    def _(self, e: Event.TierUpdated, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute("UPDATE read.tiers SET name = %s, day = %s WHERE id = %s", (e.name, e.day, e.tier_id))

    @process_event.register
    def _(self, e: Event.TierRemoved, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute("DELETE FROM read.tiers WHERE id = %s", (e.tier_id,))
            batch: CatalogBatch = self.view.pending.at(tracking)
            batch.note(batch.events, e.originator_id)
            batch.note(batch.map_events, e.originator_id)

    # Offers ----------------------------------------------------------------------------

    @process_event.register
    def _(self, e: Offer.Created, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                """INSERT INTO read.offers (id, event_id, tier_id, tier_kind, name, price, currency,
                     quantity_for_sale, sale_start_time, sale_end_time, min_per_order, max_per_order,
                     status, created_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'on_sale', %s)
                   ON CONFLICT (id) DO NOTHING""",
                (e.originator_id, e.event_id, e.tier_id, e.tier_kind, e.name, e.price, e.currency,
                 e.quantity_for_sale, e.sale_start_time, e.sale_end_time, e.min_per_order,
                 e.max_per_order, e.timestamp),
            )  # fmt: skip
            batch: CatalogBatch = self.view.pending.at(tracking)
            batch.note(batch.events, e.event_id)
            batch.note(batch.map_events, e.event_id)

    @process_event.register
    def _(self, e: Offer.Renamed, tracking: Tracking) -> None:
        self._offer(e, tracking, name=e.name)

    @process_event.register
    def _(self, e: Offer.Repriced, tracking: Tracking) -> None:
        self._offer(e, tracking, price=e.price, currency=e.currency)

    @process_event.register
    def _(self, e: Offer.QuantityChanged, tracking: Tracking) -> None:
        self._offer(e, tracking, quantity_for_sale=e.quantity_for_sale)

    @process_event.register
    def _(self, e: Offer.SaleWindowChanged, tracking: Tracking) -> None:
        self._offer(e, tracking, sale_start_time=e.sale_start_time, sale_end_time=e.sale_end_time)

    @process_event.register
    def _(self, e: Offer.LimitsChanged, tracking: Tracking) -> None:
        self._offer(e, tracking, min_per_order=e.min_per_order, max_per_order=e.max_per_order)

    @process_event.register
    def _(self, e: Offer.Paused, tracking: Tracking) -> None:
        self._offer(e, tracking, status="paused")

    @process_event.register
    def _(self, e: Offer.Resumed, tracking: Tracking) -> None:
        self._offer(e, tracking, status="on_sale")

    @process_event.register
    def _(self, e: Offer.Updated, tracking: Tracking) -> None:
        self._offer(e, tracking, **{k: v for k, v in e.changes.items() if k in OFFER_FIELDS})

    def _offer(self, e: Any, tracking: Tracking, **columns: Any) -> None:
        """An offer's terms changed: its show's listing figures and seat map are built again."""
        with self.view.writing(tracking) as curs:
            _update(curs, "offers", e.originator_id, columns, None)
            batch: CatalogBatch = self.view.pending.at(tracking)
            batch.note(batch.offers, e.originator_id)
            batch.note(batch.map_offers, e.originator_id)

    @process_event.register
    def _(self, e: Offer.Claimed, tracking: Tracking) -> None:
        self._count(e, tracking, held=e.quantity)

    @process_event.register
    def _(self, e: Offer.Released, tracking: Tracking) -> None:
        self._count(e, tracking, held=-e.quantity)

    @process_event.register
    def _(self, e: Offer.Sold, tracking: Tracking) -> None:
        self._count(e, tracking, held=-e.quantity, sold=e.quantity)

    @process_event.register
    def _(self, e: Offer.SoldWithoutHold, tracking: Tracking) -> None:
        self._count(e, tracking, sold=e.quantity)

    @process_event.register
    def _(self, e: Offer.Returned, tracking: Tracking) -> None:
        self._count(e, tracking, sold=-e.quantity)

    # Waitlist: GA stock kept for the waitlist counts as held here (not on sale, not sold), so
    # every `available` read from this model leaves it out; kept seats show as held seats.

    @process_event.register
    def _(self, e: Offer.ReservedForWaitlist, tracking: Tracking) -> None:
        if not e.seat_ids:
            self._count(e, tracking, held=e.quantity)

    @process_event.register
    def _(self, e: Offer.WaitlistLeft, tracking: Tracking) -> None:
        if e.unreserved and not e.seat_ids:
            self._count(e, tracking, held=-e.unreserved)

    @process_event.register
    def _(self, e: Offer.OfferedToWaitlist, tracking: Tracking) -> None:
        change = e.held - (0 if e.seat_ids else e.quantity)
        if change:
            self._count(e, tracking, held=change)

    def _count(self, e: Any, tracking: Tracking, held: int = 0, sold: int = 0) -> None:
        with self.view.writing(tracking):
            batch: CatalogBatch = self.view.pending.at(tracking)
            counts = batch.offer_counts.setdefault(e.originator_id, [0, 0])
            counts[0] += held
            counts[1] += sold
            batch.note(batch.offers, e.originator_id)

    # Seats: the seat map, and per-tier availability for the listing ------------------------

    @process_event.register
    def _(self, e: Seat.Created, tracking: Tracking) -> None:
        with self.view.writing(tracking):
            batch: CatalogBatch = self.view.pending.at(tracking)
            # Inserted at the end of the batch (insert_seats), first thing; the first one wins.
            batch.new_seats.setdefault(e.originator_id, {
                "id": e.originator_id, "event_id": e.event_id, "tier_id": e.tier_id, "section_id": e.section_id,
                "section": e.section, "row_label": e.row, "label": e.label, "x": repr(float(e.x)),
                "y": repr(float(e.y)), "accessible": e.accessible, "day": e.day,
            })  # fmt: skip
            batch.tier_seats[e.tier_id] = batch.tier_seats.get(e.tier_id, 0) + 1
            batch.note(batch.events, e.event_id)
            batch.note(batch.map_events, e.event_id)

    # The domain fixes each transition, so the change of availability is known from the
    # event alone (held: available -> held, -1; sold: held -> sold, 0; and so on).

    @process_event.register
    def _(self, e: Seat.Held, tracking: Tracking) -> None:
        self._seat(e, tracking, "held", e.order_id, e.until, -1)

    @process_event.register
    def _(self, e: Seat.Released, tracking: Tracking) -> None:
        self._seat(e, tracking, "available", None, None, +1)

    @process_event.register
    def _(self, e: Seat.Sold, tracking: Tracking) -> None:
        self._seat(e, tracking, "sold", e.order_id, None, 0)

    @process_event.register
    def _(self, e: Seat.SoldWithoutHold, tracking: Tracking) -> None:
        self._seat(e, tracking, "sold", e.order_id, None, -1)

    @process_event.register
    def _(self, e: Seat.Returned, tracking: Tracking) -> None:
        self._seat(e, tracking, "available", None, None, +1)

    @process_event.register
    def _(self, e: Seat.Blocked, tracking: Tracking) -> None:
        self._seat(e, tracking, "blocked", None, None, -1)

    @process_event.register
    def _(self, e: Seat.Unblocked, tracking: Tracking) -> None:
        self._seat(e, tracking, "available", None, None, +1)

    @process_event.register
    def _(self, e: Seat.KeptForWaitlist, tracking: Tracking) -> None:
        self._seat(e, tracking, "held", None, None, -1)

    @process_event.register
    def _(self, e: Seat.HeldForWaitlist, tracking: Tracking) -> None:
        self._seat(e, tracking, "held", e.order_id, e.until, 0)

    @process_event.register
    def _(self, e: Seat.ReturnedFromWaitlist, tracking: Tracking) -> None:
        self._seat(e, tracking, "available", None, None, +1)

    def _seat(self, e: Any, tracking: Tracking, status: str, order_id: UUID | None, until: Any, delta: int) -> None:
        with self.view.writing(tracking):
            batch: CatalogBatch = self.view.pending.at(tracking)
            batch.seat_status[e.originator_id] = (status, order_id, until)
            batch.note(batch.seats, e.originator_id)
            if delta:
                batch.seat_available[e.originator_id] = batch.seat_available.get(e.originator_id, 0) + delta


def _update(curs: Cursor[DictRow], table: str, row_id: UUID, changes: dict[str, Any], at: Any) -> None:
    if not changes and at is None:
        return
    columns = dict(changes)
    if at is not None:
        columns["updated_at"] = at
    assignments = ", ".join(f"{column} = %({column})s" for column in columns)
    curs.execute(f"UPDATE read.{table} SET {assignments} WHERE id = %(row_id)s", {**columns, "row_id": row_id})


def _refresh_search(curs: Cursor[DictRow], column: str, value: UUID) -> None:
    curs.execute(
        f"""UPDATE read.events SET search =
              setweight(to_tsvector('simple', coalesce(title, '')), 'A') ||
              setweight(to_tsvector('simple', coalesce(venue_name, '') || ' ' || coalesce(city, '') || ' ' ||
              coalesce((SELECT string_agg(a.name, ' ') FROM read.attractions a WHERE a.event_id = events.id), '')),
              'B') ||
              setweight(to_tsvector('simple', coalesce(description, '')), 'C')
            WHERE {column} = %s""",
        (value,),
    )
