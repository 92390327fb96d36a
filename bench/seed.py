"""Benchmark data, written through the write side in the bench process (not over HTTP).

Small things go through the BoxOffice commands exactly as the API would call them. Bulk data (the
10,000-event catalog, the million-event history for `replay`) is built from the real aggregates'
own methods and saved many aggregates per `save()`, which is one transaction and one multi-row
insert: the events are exactly those the commands would record, only without a round trip each.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from commands.accounts import Accounts
from commands.boxoffice import BoxOffice
from domain.event import Event
from domain.ids import seat_id, seat_key
from domain.offer import Offer
from domain.order import Order, OrderItem
from domain.seat import Seat, materialise_seats
from domain.venue import Venue

PASSWORD = "bench-password-123"  # noqa: S105 - accounts that live only in .data/bench
SHOW_START = datetime(2031, 6, 1, 19, 0, tzinfo=UTC)


class Writer:
    """Saves aggregates for the benchmark's set-up: `app.save`, unless pipelines are broken.

    When `bench.probe` finds that psycopg's pipeline mode hangs on large parameters, big saves
    (a venue layout or a show publish with thousands of seats, bulk seeding) would hang the
    same way in the service's own `save()`. Then they are written with the recorder's own
    statements (table lock, NOTIFY, one INSERT of the same stored events) in an ordinary
    transaction: the same rows, the same notification order, no pipeline. That path uses two
    private methods of `eventsourcing`'s recorder; it is a workaround for the benchmark's set-up
    only, and `workaround` in the results says whether it was used.
    """

    def __init__(self, app: BoxOffice, *, pipeline_ok: bool) -> None:
        self.app = app
        self.pipeline_ok = pipeline_ok
        self.position = 0
        self.events = 0

    @property
    def workaround(self) -> bool:
        return not self.pipeline_ok

    def save(self, *aggregates: Any) -> int:
        """Save the aggregates' pending events in one transaction; returns how many."""
        if self.pipeline_ok:
            recordings = self.app.save(*aggregates)
            if recordings:
                self.position = max(self.position, *(r.notification.id for r in recordings))
            self.events += len(recordings)
            return len(recordings)
        pending = [event for aggregate in aggregates for event in aggregate.collect_events()]
        if not pending:
            return 0
        stored = [self.app.mapper.to_stored_event(event) for event in pending]
        recorder: Any = self.app.recorder
        with recorder.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            recorder._insert_stored_events(curs, stored)
            ids: list[int] = recorder._fetch_ids_after_insert_events(curs, stored)
        self.position = max(self.position, *ids)
        self.events += len(stored)
        return len(stored)

    def publish(self, event_id: UUID) -> None:
        """`BoxOffice.publish_event`, or the same events written by `save` above."""
        if self.pipeline_ok:
            self.app.publish_event(event_id)
            self.position = max(self.position, self.app.take_position() or 0)
            return
        show = self.app.get_event(event_id)
        show.publish()
        venue = self.app.get_venue(show.venue_id)
        self.save(show, *materialise_seats(show, venue))

    def set_layout(self, venue_id: UUID, layout: list[dict[str, Any]]) -> Venue:
        """`BoxOffice.set_venue_layout`, or the same event written by `save` above."""
        if self.pipeline_ok:
            venue = self.app.set_venue_layout(venue_id, layout)
            self.position = max(self.position, self.app.take_position() or 0)
            return venue
        venue = self.app.get_venue(venue_id)
        venue.set_layout(layout)
        self.save(venue)
        return venue


@dataclass(frozen=True)
class Buyer:
    email: str
    account_id: UUID


@dataclass
class People:
    buyers: list[Buyer]
    organizer_id: UUID
    seconds: float


def create_accounts(accounts: Accounts, n: int, run: str) -> People:
    """n attendee accounts and one organizer, e-mail verified (only verified accounts may buy).

    argon2 makes each registration cost about 0.1 s, so buyers share accounts: virtual user i
    uses account i mod n.
    """
    started = time.monotonic()
    buyers = []
    for i in range(n):
        email = f"buyer-{run}-{i}@bench.example"
        account = accounts.register(email=email, username=f"buyer{i}", password=PASSWORD)
        accounts.mark_verified(account.id)
        buyers.append(Buyer(email, account.id))
    organizer = accounts.register(
        email=f"organizer-{run}@bench.example", username="organizer", password=PASSWORD, role="organizer"
    )
    accounts.mark_verified(organizer.id)
    return People(buyers, organizer.id, time.monotonic() - started)


# --------------------------------------------------------------------------------------------
# Shows for the hot scenarios


@dataclass
class GaShow:
    event_id: UUID
    offer_id: UUID
    tickets: int
    publish_s: float
    position: int


def create_ga_show(writer: Writer, organizer_id: UUID, tickets: int, title: str) -> GaShow:
    """A general-admission show with one offer of `tickets`, published through the commands."""
    app = writer.app
    venue = app.create_venue(
        name=f"{title} Hall", address="1 Bench Road", city="Berlin", country="DE", capacity=tickets
    )
    show = app.create_event(
        organizer_id=organizer_id,
        venue_id=venue.id,
        title=title,
        description="General admission benchmark show",
        start_time=SHOW_START,
        end_time=SHOW_START + timedelta(hours=3),
    )
    tier = app.add_tier(show.id, name="Standing", kind="general", section_ids=[])
    offer = app.add_offer(
        show.id, tier, name="Standing", price=4900, currency="EUR", quantity_for_sale=tickets, max_per_order=4
    )
    started = time.monotonic()
    writer.publish(show.id)
    return GaShow(show.id, offer.id, tickets, time.monotonic() - started, writer.position)


@dataclass
class SeatedShow:
    event_id: UUID
    seat_offer_id: UUID
    # Seat ids row by row, best rows first (front rows, centre sections first), each row in seat order.
    rows: list[list[str]]
    seats: int
    layout_s: float
    publish_s: float
    position: int


def seated_layout(sections: int, rows: int, per_row: int) -> list[dict[str, Any]]:
    """sections side by side facing the stage at y=0; row 1 is the front row of every section."""
    layout = []
    for s in range(sections):
        layout.append(
            {
                "name": f"S{s + 1:02d}",
                "rows": [
                    {
                        "label": str(r + 1),
                        "seats": [
                            {"label": str(n + 1), "x": float(s * (per_row + 4) + n), "y": float(r + 1)}
                            for n in range(per_row)
                        ],
                    }
                    for r in range(rows)
                ],
            }
        )
    return layout


def create_seated_show(writer: Writer, organizer_id: UUID, sections: int, rows: int, per_row: int) -> SeatedShow:
    """A numbered-seat show with one offer over every seat of a venue, published."""
    app = writer.app
    started = time.monotonic()
    venue = app.create_venue(name="Bench Arena", address="2 Bench Road", city="Berlin", country="DE", capacity=0)
    layout = seated_layout(sections, rows, per_row)
    venue = writer.set_layout(venue.id, layout)
    layout_s = time.monotonic() - started
    show = app.create_event(
        organizer_id=organizer_id,
        venue_id=venue.id,
        title="Bench Arena Night",
        description="Numbered seats benchmark show",
        start_time=SHOW_START,
        end_time=SHOW_START + timedelta(hours=3),
    )
    section_ids = [s["id"] for s in venue.sections]
    seated = app.add_tier(show.id, name="Seats", kind="seated", section_ids=section_ids)
    seat_offer = app.add_offer(
        show.id, seated, name="Seat", price=7900, currency="EUR", quantity_for_sale=None, max_per_order=10
    )
    started = time.monotonic()
    writer.publish(show.id)
    publish_s = time.monotonic() - started
    position = writer.position
    centre = (sections - 1) / 2
    order = sorted((r, abs(s - centre), s) for s in range(sections) for r in range(rows))
    seat_rows = []
    for r, _, s in order:
        name = f"S{s + 1:02d}"
        seat_rows.append([str(seat_id(show.id, seat_key(name, str(r + 1), str(n + 1)))) for n in range(per_row)])
    return SeatedShow(show.id, seat_offer.id, seat_rows, sections * rows * per_row, layout_s, publish_s, position)


# --------------------------------------------------------------------------------------------
# The catalog for `browse`

CITIES = (
    "Berlin", "Hamburg", "Munich", "Cologne", "Frankfurt", "Stuttgart", "Leipzig", "Dresden", "Vienna", "Zurich",
    "Paris", "Lyon", "Amsterdam", "Rotterdam", "Brussels", "Copenhagen", "Oslo", "Stockholm", "Prague", "Warsaw",
)  # fmt: skip
GENRES = ("rock", "jazz", "techno", "opera", "comedy", "folk", "hiphop", "classical", "indie", "metal")
ADJECTIVES = (
    "Velvet", "Electric", "Silent", "Golden", "Midnight", "Crimson", "Wild", "Lunar", "Neon", "Broken",
    "Savage", "Gentle", "Frozen", "Burning", "Hidden", "Restless",
)  # fmt: skip
NOUNS = (
    "Owls", "Rivers", "Engines", "Foxes", "Orchestra", "Wolves", "Machines", "Sisters", "Pilots", "Gardens",
    "Lanterns", "Tigers", "Ghosts", "Harbours", "Satellites", "Dreamers",
)  # fmt: skip
FORMATS = ("Live", "Tour", "Festival", "Night", "Unplugged", "Matinee")


@dataclass
class Catalog:
    events: int
    venues: int
    cities: tuple[str, ...]
    seconds: float
    store_events_written: int
    position: int
    first_start: datetime
    last_start: datetime


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def seed_catalog(writer: Writer, organizer_id: UUID, events: int, venues: int, rng: random.Random) -> Catalog:
    """`events` published shows at `venues` venues in 20 cities, over the next year, 1-2 offers each."""
    app = writer.app
    started = time.monotonic()
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    venue_rows: list[Venue] = []
    for i in range(venues):
        city = CITIES[i % len(CITIES)]
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(('Hall', 'Arena', 'Club', 'Theatre', 'Stadium'))} {city} {i}"
        venue_rows.append(
            app.create_venue(name=name, address=f"{i} Main Street", city=city, country="EU", capacity=5000)
        )
    written = venues
    starts: list[datetime] = []
    for batch in _chunks(range(events), 250):
        aggregates: list[Any] = []
        for _ in batch:
            venue = rng.choice(venue_rows)
            genre = rng.choice(GENRES)
            artist = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
            start = now + timedelta(days=rng.randint(1, 365), hours=rng.randint(0, 5))
            starts.append(start)
            show = Event.schedule(
                organizer_id=organizer_id,
                venue_id=venue.id,
                title=f"{artist} {rng.choice(FORMATS)}",
                description=f"A {genre} evening with {artist} at {venue.name}",
                start_time=start,
                end_time=start + timedelta(hours=3),
            )
            tier_id = show.add_tier("General", "general", [], None, set())
            offers = []
            sold_out = rng.random() < 0.1
            base = rng.randrange(1000, 25_000, 50)
            for n, (name, price) in enumerate((("Standard", base), ("VIP", base * 2 + 2000))):
                if n == 1 and rng.random() < 0.5:
                    break
                offers.append(
                    Offer.define(
                        event_id=show.id,
                        tier_id=tier_id,
                        tier_kind="general",
                        name=name,
                        price=price,
                        currency="EUR",
                        quantity_for_sale=0 if sold_out else rng.randint(50, 5000),
                        sale_start_time=None,
                        sale_end_time=None,
                        min_per_order=1,
                        max_per_order=10,
                    )
                )
            show.publish()
            aggregates += [show, *offers]
        written += writer.save(*aggregates)
    return Catalog(
        events=events,
        venues=venues,
        cities=CITIES,
        seconds=time.monotonic() - started,
        store_events_written=written,
        position=writer.position,
        first_start=min(starts),
        last_start=max(starts),
    )


# --------------------------------------------------------------------------------------------
# A long history for `replay`


@dataclass
class History:
    shows: int
    orders: int
    events_written: int
    seconds: float
    outcomes: dict[str, int]


def seed_history(
    writer: Writer,
    organizer_id: UUID,
    buyers: Sequence[UUID],
    events_wanted: int,
    rng: random.Random,
    *,
    sections: int = 4,
    rows: int = 25,
    per_row: int = 20,
    ga_quantity: int = 3000,
) -> History:
    """Shows with seats and a standing offer, then orders placed and later paid, expired or left
    held, until about `events_wanted` events have been written.

    Each show is published (seats materialised the way `publish_event` does), its orders placed
    in groups of a few hundred per transaction (order, offer claim, seat holds), and the outcomes
    recorded in later transactions, so the log reads like a real sale: Order.Placed,
    Offer.Claimed, Seat.Held, then Order.Paid with Seat.Sold/Offer.Sold, or Order.Expired with the
    releases.
    """
    started = time.monotonic()
    venue = history_venue(writer, sections, rows, per_row)
    written = 3
    shows = orders_total = 0
    outcomes = {"paid": 0, "expired": 0, "held": 0}
    while written < events_wanted:
        shows += 1
        _, n, orders = _one_show_history(writer, venue, organizer_id, buyers, rng, ga_quantity, outcomes, shows)
        written += n
        orders_total += orders
    return History(shows, orders_total, written, time.monotonic() - started, outcomes)


def history_venue(writer: Writer, sections: int = 4, rows: int = 25, per_row: int = 20) -> Venue:
    """The seated hall the history's shows play in."""
    venue = writer.app.create_venue(name="History Hall", address="3 Bench Road", city="Hamburg", country="DE",
                                    capacity=0)  # fmt: skip
    return writer.set_layout(venue.id, seated_layout(sections, rows, per_row))


def seed_show_sale(
    writer: Writer, venue: Venue, organizer_id: UUID, buyers: Sequence[UUID], orders: int, rng: random.Random
) -> tuple[UUID, int, int]:
    """One show sold like a history show but with exactly `orders` orders (its seated ones, then
    standing ones); returns its id, the events written and its orders."""
    outcomes = {"paid": 0, "expired": 0, "held": 0}
    return _one_show_history(writer, venue, organizer_id, buyers, rng, 4 * orders, outcomes, 0, orders)


def _one_show_history(
    writer: Writer,
    venue: Venue,
    organizer_id: UUID,
    buyers: Sequence[UUID],
    rng: random.Random,
    ga_quantity: int,
    outcomes: dict[str, int],
    number: int,
    orders: int | None = None,
) -> tuple[UUID, int, int]:
    start = SHOW_START + timedelta(days=number)
    show = Event.schedule(
        organizer_id=organizer_id,
        venue_id=venue.id,
        title=f"History Show {number}",
        description="A show with a long sales history",
        start_time=start,
        end_time=start + timedelta(hours=3),
    )
    sections = venue.section_ids()
    seated_tier = show.add_tier("Seats", "seated", sorted(sections), None, sections)
    ga_tier = show.add_tier("Standing", "general", [], None, sections)
    seat_offer = Offer.define(
        event_id=show.id, tier_id=seated_tier, tier_kind="seated", name="Seat", price=6500, currency="EUR",
        quantity_for_sale=None, sale_start_time=None, sale_end_time=None, min_per_order=1, max_per_order=10,
    )  # fmt: skip
    ga_offer = Offer.define(
        event_id=show.id, tier_id=ga_tier, tier_kind="general", name="Standing", price=3500, currency="EUR",
        quantity_for_sale=ga_quantity, sale_start_time=None, sale_end_time=None, min_per_order=1, max_per_order=10,
    )  # fmt: skip
    show.publish()
    seats = materialise_seats(show, venue)
    written = writer.save(show, seat_offer, ga_offer, *seats)

    now = datetime.now(UTC)
    hold_until = now + timedelta(minutes=15)
    # Who buys what: runs of 1-4 adjacent seats over ~85% of the house, and standing orders of
    # 1-4 until ~90% of the standing quantity is taken; then shuffled into one sale.
    plans: list[tuple[list[Seat], int]] = []
    i = 0
    while i < len(seats):
        k = rng.randint(1, 4)
        group = [s for s in seats[i : i + k] if s.row == seats[i].row]
        i += len(group)
        if rng.random() >= 0.15:
            plans.append((group, 0))
    claimed = 0
    while claimed < ga_quantity * 0.9 if orders is None else len(plans) < orders:
        quantity = rng.randint(1, 4)
        claimed += quantity
        plans.append(([], quantity))
    rng.shuffle(plans)
    placed: list[tuple[Order, list[Seat], int]] = []
    # Placing: each order with its offer claim or seat holds, a few hundred orders per save.
    for chunk in _chunks(plans, 300):
        touched: list[Any] = []
        for group, quantity in chunk:
            order_id = uuid4()
            items: list[OrderItem] = []
            for seat in group:
                seat.hold(order_id, hold_until)
                items.append(
                    {"offer_id": seat_offer.id, "tier_id": seated_tier, "seat_id": seat.id,
                     "seat_label": f"{seat.section} {seat.row}-{seat.label}", "quantity": 1,
                     "unit_price": seat_offer.price}
                )  # fmt: skip
            if quantity:
                ga_offer.claim(order_id, quantity)
                items.append(
                    {"offer_id": ga_offer.id, "tier_id": ga_tier, "seat_id": None, "seat_label": None,
                     "quantity": quantity, "unit_price": ga_offer.price}
                )  # fmt: skip
            order = _place(order_id, rng.choice(buyers), show.id, items, now, hold_until)
            placed.append((order, group, quantity))
            touched += [order, *group]
        written += writer.save(*touched, ga_offer)
    # Outcomes, later: 60% paid, 25% expired, the rest still held.
    for chunk in _chunks(placed, 300):
        touched = []
        for order, group, quantity in chunk:
            roll = rng.random()
            if roll < 0.6:
                for seat in group:
                    seat.sell(order.id)
                if quantity:
                    ga_offer.sell(order.id, quantity)
                order.pay(f"pi_history_{order.id.hex}", order.total, now)
                outcomes["paid"] += 1
            elif roll < 0.85:
                order.expire(hold_until + timedelta(seconds=1))
                for seat in group:
                    seat.release(order.id)
                if quantity:
                    ga_offer.release(order.id, quantity)
                outcomes["expired"] += 1
            else:
                outcomes["held"] += 1
                continue
            touched += [order, *group]
        written += writer.save(*touched, ga_offer)
    return show.id, written, len(placed)


def _place(
    order_id: UUID, buyer_id: UUID, event_id: UUID, items: list[OrderItem], now: datetime, hold_until: datetime
) -> Order:
    return Order.place(
        order_id=order_id,
        buyer_id=buyer_id,
        event_id=event_id,
        items=items,
        currency="EUR",
        fee_basis_points=0,
        fee_fixed=0,
        at=now,
        hold_until=hold_until,
    )
