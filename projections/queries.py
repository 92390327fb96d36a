"""The query functions the API uses: SQL over the read tables, returning plain rows.

Kept in one module on purpose: every column a read model's table offers is read here, so a
change to a read table is checked against its readers in one file (and the SQL stays out of api/)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import DictRow, tuple_row

Row = dict[str, Any]
Conn = AsyncConnection[DictRow]

OFFER_AVAILABLE_SQL = """CASE
    WHEN o.tier_kind = 'seated' AND o.quantity_for_sale IS NULL THEN t.seats_available
    WHEN o.tier_kind = 'seated' THEN least(t.seats_available, greatest(o.quantity_for_sale - o.held - o.sold, 0))
    ELSE greatest(o.quantity_for_sale - o.held - o.sold, 0) END"""

# As `Offer.sale_status` says, plus what the offer's read row knows besides: an offer of a show
# that is over has `ended` (the show is completed), and one with nothing left is `sold_out`.
OFFER_STATUS_SQL = f"""CASE
    WHEN o.sale_end_time IS NOT NULL AND now() >= o.sale_end_time THEN 'ended'
    WHEN e.end_time IS NOT NULL AND now() >= e.end_time THEN 'ended'
    WHEN o.status = 'paused' THEN 'paused'
    WHEN o.sale_start_time IS NOT NULL AND now() < o.sale_start_time THEN 'scheduled'
    WHEN ({OFFER_AVAILABLE_SQL}) <= 0 THEN 'sold_out'
    ELSE 'on_sale' END"""

# Tickets sold (paid, not refunded): counted on the offer where it keeps a quota; a seated offer
# without one sells its tier's seats, so its valid tickets are counted.
OFFER_SOLD_SQL = """CASE WHEN o.quantity_for_sale IS NOT NULL THEN o.sold
    ELSE (SELECT count(*) FROM read.tickets k WHERE k.event_id = o.event_id AND k.offer_id = o.id
          AND k.status <> 'voided') END"""

OFFER_SELECT = f"""SELECT o.*, {OFFER_STATUS_SQL} AS sale_status, {OFFER_AVAILABLE_SQL} AS available,
       {OFFER_SOLD_SQL} AS sold_count, t.name AS tier_name
    FROM read.offers o JOIN read.tiers t ON t.id = o.tier_id LEFT JOIN read.events e ON e.id = o.event_id"""


async def _all(conn: Conn, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
    cur = await conn.execute(sql, params)
    return list(await cur.fetchall())


async def _one(conn: Conn, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
    cur = await conn.execute(sql, params)
    return await cur.fetchone()


# Venues ----------------------------------------------------------------------------------


async def list_venues(conn: Conn, page: int, page_size: int, city: str | None = None) -> tuple[list[Row], int]:
    where, params = "active", {"limit": page_size, "offset": (page - 1) * page_size, "city": city}
    if city:
        where += " AND lower(city) = lower(%(city)s)"
    rows = await _all(
        conn,
        f"""SELECT *, count(*) OVER () AS total_rows FROM read.venues WHERE {where}
            ORDER BY name, id LIMIT %(limit)s OFFSET %(offset)s""",
        params,
    )
    total = (
        rows[0]["total_rows"] if rows else await _count(conn, f"SELECT count(*) FROM read.venues WHERE {where}", params)
    )
    return rows, total


async def venue(conn: Conn, venue_id: UUID) -> Row | None:
    return await _one(conn, "SELECT * FROM read.venues WHERE id = %s", (venue_id,))


async def _count(conn: Conn, sql: str, params: Any) -> int:
    row = await _one(conn, sql, params)
    return int(row["count"]) if row else 0


# Events ----------------------------------------------------------------------------------


@dataclass
class EventFilters:
    q: str | None = None
    city: str | None = None
    venue_id: UUID | None = None
    segment_id: UUID | None = None
    genre_id: UUID | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    price_min: int | None = None
    price_max: int | None = None
    available: bool | None = None
    organizer_id: UUID | None = None
    featured: bool | None = None
    sort: str = "start_time"


SORTS = {
    "start_time": "start_time ASC, id",
    "-start_time": "start_time DESC, id",
    "price": "min_price ASC NULLS LAST, start_time, id",
    "-price": "max_price DESC NULLS LAST, start_time, id",
    "relevance": "rank DESC, start_time, id",
}


def tsquery_text(q: str) -> str:
    """Words of the search, each as a prefix match, all required ('ber' finds 'Berlin')."""
    words = ["".join(ch for ch in w if ch.isalnum()) for w in q.split()]
    return " & ".join(f"{w}:*" for w in words if w)


def _listing_where(f: EventFilters) -> tuple[str, dict[str, Any]]:
    """The WHERE clause of a listing search, its parameters, and the rank expression."""
    clauses = ["status = 'published'", "end_time >= now()"]
    params: dict[str, Any] = {k: v for k, v in vars(f).items() if k != "q"}
    if f.q and tsquery_text(f.q):
        params["q"] = tsquery_text(f.q)
        clauses.append("search @@ to_tsquery('simple', %(q)s)")
    filters: list[tuple[Any, str]] = [
        (f.city, "lower(city) = lower(%(city)s)"),
        (f.venue_id, "venue_id = %(venue_id)s"),
        (f.segment_id, "segment_id = %(segment_id)s"),
        (f.genre_id, "genre_id = %(genre_id)s"),
        (f.date_from, "end_time >= %(date_from)s"),
        (f.date_to, "start_time <= %(date_to)s"),
        (f.price_min, "max_price >= %(price_min)s"),
        (f.price_max, "min_price <= %(price_max)s"),
        (f.organizer_id, "organizer_id = %(organizer_id)s"),
    ]
    clauses.extend(clause for value, clause in filters if value is not None)
    if f.available:
        clauses.append("available > 0")
    if f.featured is not None:
        clauses.append("featured = %(featured)s")
    return " AND ".join(clauses), params


async def search_events(conn: Conn, f: EventFilters, page: int, page_size: int) -> list[Row]:
    """One page of a listing search. The total is counted separately (`count_events`): a window
    count would make Postgres read and sort every match just to return twenty; this way the
    page walks an index and stops."""
    where, params = _listing_where(f)
    rank = "ts_rank(search, to_tsquery('simple', %(q)s))" if "q" in params else "0"
    order = SORTS.get(f.sort, SORTS["start_time"]) if f.sort != "relevance" or "q" in params else SORTS["start_time"]
    return await _all(
        conn,
        f"""SELECT *, {rank} AS rank FROM read.events
            WHERE {where} ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s""",
        {**params, "limit": page_size, "offset": (page - 1) * page_size},
    )


async def count_events(conn: Conn, f: EventFilters) -> int:
    where, params = _listing_where(f)
    return await _count(conn, f"SELECT count(*) FROM read.events WHERE {where}", params)


async def listing_position(conn: Conn, app_name: str) -> int:
    """How far the catalog read model (the listing) has got: a listing read now shows at least this."""
    row = await _one(conn, "SELECT notification_id FROM read.catalog_tracking WHERE application_name = %s", (app_name,))
    return int(row["notification_id"]) if row else 0


async def organizer_events(conn: Conn, organizer_id: UUID | None, page: int, page_size: int) -> tuple[list[Row], int]:
    where = "organizer_id = %(org)s" if organizer_id else "true"
    params = {"org": organizer_id, "limit": page_size, "offset": (page - 1) * page_size}
    rows = await _all(
        conn,
        f"""SELECT *, count(*) OVER () AS total_rows FROM read.events WHERE {where}
            ORDER BY start_time, id LIMIT %(limit)s OFFSET %(offset)s""",
        params,
    )
    total = (
        rows[0]["total_rows"] if rows else await _count(conn, f"SELECT count(*) FROM read.events WHERE {where}", params)
    )
    return rows, total


async def event(conn: Conn, event_id: UUID) -> Row | None:
    return await _one(conn, "SELECT * FROM read.events WHERE id = %s", (event_id,))


async def tiers(conn: Conn, event_id: UUID) -> list[Row]:
    return await _all(conn, "SELECT * FROM read.tiers WHERE event_id = %s ORDER BY created_at, id", (event_id,))


async def tier(conn: Conn, tier_id: UUID) -> Row | None:
    return await _one(conn, "SELECT * FROM read.tiers WHERE id = %s", (tier_id,))


async def offers(conn: Conn, event_id: UUID) -> list[Row]:
    return await _all(conn, f"{OFFER_SELECT} WHERE o.event_id = %s ORDER BY o.price, o.created_at, o.id", (event_id,))


async def offers_page(conn: Conn, event_id: UUID, page: int, page_size: int) -> tuple[list[Row], int]:
    rows = await _all(
        conn,
        f"""{OFFER_SELECT} WHERE o.event_id = %s ORDER BY o.price, o.created_at, o.id LIMIT %s OFFSET %s""",
        (event_id, page_size, (page - 1) * page_size),
    )
    total = await _count(conn, "SELECT count(*) FROM read.offers WHERE event_id = %s", (event_id,))
    return rows, total


async def offer(conn: Conn, offer_id: UUID) -> Row | None:
    return await _one(conn, f"{OFFER_SELECT} WHERE o.id = %s", (offer_id,))


async def seat_map_version(conn: Conn, event_id: UUID) -> Row | None:
    return await _one(
        conn,
        """SELECT id, status, organizer_id, seats_version AS version, layout_version
           FROM read.events WHERE id = %s""",
        (event_id,),
    )


ZERO_DECIMAL_SQL = "('JPY', 'KRW', 'VND', 'CLP', 'ISK', 'HUF')"

# One row per seat in seat-map order: sections by name and day, rows front to back, seats
# left to right; each seat with the cheapest offer of its tier and that offer's price as text.
SEAT_MAP_SQL = f"""WITH best AS (
      SELECT DISTINCT ON (tier_id) tier_id, id, price, currency
      FROM read.offers WHERE event_id = %(event)s ORDER BY tier_id, price, id)
    SELECT s.id, s.section_id, s.section, s.day, s.row_label, s.label, s.x, s.y, s.status, s.accessible,
           b.id AS offer_id,
           CASE WHEN b.id IS NULL THEN NULL
                WHEN b.currency IN {ZERO_DECIMAL_SQL} THEN b.price::text
                ELSE to_char(b.price / 100.0, 'FM999999999990.00') END AS price,
           (SELECT min(currency) FROM best) AS currency
    FROM read.seats s LEFT JOIN best b ON b.tier_id = s.tier_id
    WHERE s.event_id = %(event)s
    ORDER BY s.section COLLATE "C", s.day, s.section_id,
             min(s.y) OVER (PARTITION BY s.section_id, s.section, s.day, s.row_label),
             s.row_label COLLATE "C", s.x, s.y, s.label COLLATE "C"
"""


async def seat_map_seats(conn: Conn, event_id: UUID) -> tuple[str | None, list[tuple[Any, ...]]]:
    """The map's currency and every seat of a show in seat-map order (see SEAT_MAP_SQL)."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(SEAT_MAP_SQL, {"event": event_id})
        seats = await cur.fetchall()
        if seats:
            return seats[0][-1], seats
        await cur.execute("SELECT min(currency) FROM read.offers WHERE event_id = %s", (event_id,))
        row = await cur.fetchone()
        return (row[0] if row else None), []


async def seat_changes(conn: Conn, event_id: UUID, since: int) -> list[tuple[UUID, str]]:
    """Seats of a show whose status changed after position `since`."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            "SELECT id, status FROM read.seats WHERE event_id = %s AND changed_at > %s", (event_id, since)
        )
        return [(r[0], r[1]) for r in await cur.fetchall()]


async def seats_in_row(conn: Conn, event_id: UUID, section: str, row_label: str) -> list[Row]:
    """The seats of one row of a show (id, label, status), by their labels as printed."""
    return await _all(
        conn,
        "SELECT id, label, status FROM read.seats WHERE event_id = %s AND section = %s AND row_label = %s",
        (event_id, section, row_label),
    )


async def blocked_seats(conn: Conn, event_id: UUID, limit: int = 500) -> list[Row]:
    """A show's blocked seats (section, row, label), in seat-map order; at most `limit`."""
    return await _all(
        conn,
        """SELECT section, row_label, label FROM read.seats WHERE event_id = %s AND status = 'blocked'
           ORDER BY section COLLATE "C", row_label COLLATE "C", x, label COLLATE "C" LIMIT %s""",
        (event_id, limit),
    )


# Orders ----------------------------------------------------------------------------------


async def orders_of(
    conn: Conn,
    buyer_id: UUID | None,
    status: str | None,
    page: int,
    page_size: int,
    event_id: UUID | None = None,
    *,
    number: str | None = None,
) -> tuple[list[Row], int]:
    """Orders newest first: one buyer's (or everyone's, `buyer_id` None), by status, show and
    human order number."""
    clauses, params = ["true"], {"buyer": buyer_id, "status": status, "event": event_id, "number": number,
                                 "limit": page_size, "offset": (page - 1) * page_size}  # fmt: skip
    if buyer_id is not None:
        clauses.append("buyer_id = %(buyer)s")
    if status:
        clauses.append("status = %(status)s")
    if event_id is not None:
        clauses.append("event_id = %(event)s")
    if number is not None:
        clauses.append("number = %(number)s")
    where = " AND ".join(clauses)
    rows = await _all(
        conn,
        f"""SELECT *, count(*) OVER () AS total_rows FROM read.orders WHERE {where}
            ORDER BY placed_at DESC, id LIMIT %(limit)s OFFSET %(offset)s""",
        params,
    )
    total = (
        rows[0]["total_rows"] if rows else await _count(conn, f"SELECT count(*) FROM read.orders WHERE {where}", params)
    )
    return rows, total


async def show_parts(conn: Conn, event_id: UUID) -> tuple[list[UUID], list[UUID]]:
    """The ids of a show's offers and of its seats (the audit trail reads their stored events)."""
    offers = await _all(conn, "SELECT id FROM read.offers WHERE event_id = %s ORDER BY id", (event_id,))
    seats = await _all(conn, "SELECT id FROM read.seats WHERE event_id = %s", (event_id,))
    return [r["id"] for r in offers], [r["id"] for r in seats]


async def order(conn: Conn, order_id: UUID) -> Row | None:
    return await _one(conn, "SELECT * FROM read.orders WHERE id = %s", (order_id,))


async def stored_position(conn: Conn, aggregate_id: UUID) -> int | None:
    """The store position of an aggregate's latest event, None if the store holds none: how far
    the read models must get to show it (the store's primary key finds it)."""
    row = await _one(
        conn,
        "SELECT max(notification_id) AS position FROM public.boxoffice_events WHERE originator_id = %s",
        (aggregate_id,),
    )
    return int(row["position"]) if row and row["position"] is not None else None


async def offer_names(conn: Conn, offer_ids: list[UUID]) -> dict[UUID, Row]:
    rows = await _all(
        conn,
        """SELECT o.id, o.name, t.name AS tier_name
           FROM read.offers o JOIN read.tiers t ON t.id = o.tier_id WHERE o.id = ANY(%s)""",
        (offer_ids,),
    )
    return {r["id"]: r for r in rows}


# Tickets ---------------------------------------------------------------------------------

TICKET_SQL = """SELECT t.*, e.title AS event_title, e.start_time AS event_start_time, e.timezone,
       e.venue_name, tr.name AS tier_name, tr.day AS tier_day, s.section, s.row_label, s.label AS seat,
       n.attendee_name, o.number AS order_number
    FROM read.tickets t
    JOIN read.events e ON e.id = t.event_id
    LEFT JOIN read.orders o ON o.id = t.order_id
    LEFT JOIN read.tiers tr ON tr.id = t.tier_id
    LEFT JOIN read.seats s ON s.id = t.seat_id
    LEFT JOIN read.attendee_names n ON n.ticket_id = t.id"""


async def tickets_of_owner(
    conn: Conn, owner_id: UUID, page: int, page_size: int, event_id: UUID | None = None
) -> tuple[list[Row], int]:
    params = {"owner": owner_id, "event": event_id, "limit": page_size, "offset": (page - 1) * page_size}
    where = "t.owner_id = %(owner)s" + (" AND t.event_id = %(event)s" if event_id else "")
    rows = await _all(
        conn,
        f"""{TICKET_SQL} WHERE {where}
            ORDER BY e.start_time, t.issued_at, t.id LIMIT %(limit)s OFFSET %(offset)s""",
        params,
    )
    total = await _count(conn, f"SELECT count(*) FROM read.tickets t WHERE {where}", params)
    return rows, total


async def tickets_of_orders(conn: Conn, order_ids: list[UUID]) -> list[Row]:
    return await _all(conn, f"{TICKET_SQL} WHERE t.order_id = ANY(%s) ORDER BY t.id", (order_ids,))


async def tickets_by_ids(conn: Conn, ticket_ids: list[UUID]) -> list[Row]:
    if not ticket_ids:
        return []
    return await _all(conn, "SELECT id, order_id, event_id FROM read.tickets WHERE id = ANY(%s)", (ticket_ids,))


async def ticket(conn: Conn, ticket_id: UUID) -> Row | None:
    return await _one(conn, f"{TICKET_SQL} WHERE t.id = %s", (ticket_id,))


# Categories and lineup -------------------------------------------------------------------


async def categories(
    conn: Conn, level: str, parent_id: UUID | None, page: int = 1, page_size: int = 100
) -> tuple[list[Row], int]:
    """One level of the tree (under `parent_id`), by name, a page of it and the total."""
    where = "level = %(level)s AND parent_id IS NOT DISTINCT FROM %(parent)s"
    params = {"level": level, "parent": parent_id, "limit": page_size, "offset": (page - 1) * page_size}
    rows = await _all(
        conn,
        f"SELECT * FROM read.categories WHERE {where} ORDER BY name, id LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    return rows, await _count(conn, f"SELECT count(*) FROM read.categories WHERE {where}", params)


async def category(conn: Conn, category_id: UUID) -> Row | None:
    return await _one(conn, "SELECT * FROM read.categories WHERE id = %s", (category_id,))


async def category_tree(conn: Conn, limit: int = 2000) -> list[Row]:
    """Every category (up to `limit`), parents before children, by name."""
    return await _all(
        conn,
        "SELECT * FROM read.categories ORDER BY array_position(%s, level), name, id LIMIT %s",
        (["segment", "genre", "sub_genre"], limit),
    )


async def category_by_slug(conn: Conn, slug: str) -> Row | None:
    """The category with this slug (the highest level first when a segment and a genre share one)."""
    return await _one(
        conn,
        "SELECT * FROM read.categories WHERE slug = %s ORDER BY array_position(%s, level), created_at, id LIMIT 1",
        (slug, ["segment", "genre", "sub_genre"]),
    )


async def sibling_with_slug(conn: Conn, category_id: UUID | None, parent_id: UUID | None, slug: str) -> bool:
    """Whether another category (than `category_id`) under the same parent has this slug."""
    row = await _one(
        conn,
        """SELECT 1 AS x FROM read.categories
           WHERE slug = %s AND parent_id IS NOT DISTINCT FROM %s AND id IS DISTINCT FROM %s""",
        (slug, parent_id, category_id),
    )
    return row is not None


async def category_in_use(conn: Conn, category_id: UUID) -> bool:
    """Whether a category has children or an event filed under it."""
    row = await _one(
        conn,
        """SELECT EXISTS (SELECT 1 FROM read.categories WHERE parent_id = %(id)s)
               OR EXISTS (SELECT 1 FROM read.events
                          WHERE segment_id = %(id)s OR genre_id = %(id)s OR sub_genre_id = %(id)s) AS used""",
        {"id": category_id},
    )
    return bool(row and row["used"])


async def attractions(conn: Conn, event_id: UUID) -> list[Row]:
    return await _all(conn, "SELECT * FROM read.attractions WHERE event_id = %s ORDER BY created_at, id", (event_id,))


async def scanners(conn: Conn, event_id: UUID) -> list[Row]:
    return await _all(conn, "SELECT * FROM read.scanners WHERE event_id = %s ORDER BY granted_at", (event_id,))


async def scanners_page(conn: Conn, event_id: UUID, page: int, page_size: int) -> tuple[list[Row], int]:
    params = {"event": event_id, "limit": page_size, "offset": (page - 1) * page_size}
    rows = await _all(
        conn,
        """SELECT *, count(*) OVER () AS total_rows FROM read.scanners WHERE event_id = %(event)s
           ORDER BY granted_at, account_id LIMIT %(limit)s OFFSET %(offset)s""",
        params,
    )
    total = (
        rows[0]["total_rows"]
        if rows
        else await _count(conn, "SELECT count(*) FROM read.scanners WHERE event_id = %(event)s", params)
    )
    return rows, total


async def is_scanner(conn: Conn, event_id: UUID, account_id: UUID) -> bool:
    row = await _one(
        conn, "SELECT 1 AS yes FROM read.scanners WHERE event_id = %s AND account_id = %s", (event_id, account_id)
    )
    return row is not None


async def door_tickets(conn: Conn, event_id: UUID, after: UUID | None, limit: int) -> list[Row]:
    """A show's tickets in id order after `after` (keyset paging: a ticket issued meanwhile never
    shifts a page), with what a scanner shows: tier, day, seat, attendee name, check-in."""
    where = "t.event_id = %(event)s" + (" AND t.id > %(after)s" if after else "")
    return await _all(
        conn,
        f"{TICKET_SQL} WHERE {where} ORDER BY t.id LIMIT %(limit)s",
        {"event": event_id, "after": after, "limit": limit},
    )


async def count_event_tickets(conn: Conn, event_id: UUID) -> int:
    return await _count(conn, "SELECT count(*) FROM read.tickets WHERE event_id = %s", (event_id,))


async def event_attendees(
    conn: Conn, event_id: UUID, page: int, page_size: int, status: str | None = None
) -> tuple[list[Row], int]:
    """A show's tickets for the organizer's attendee list: by attendee name, then seat."""
    clauses = ["t.event_id = %(event)s"]
    if status == "valid":
        clauses.append("t.status = 'valid' AND t.checked_in_at IS NULL")
    elif status == "checked_in":
        clauses.append("t.status = 'valid' AND t.checked_in_at IS NOT NULL")
    elif status == "voided":
        clauses.append("t.status = 'voided'")
    where = " AND ".join(clauses)
    params = {"event": event_id, "limit": page_size, "offset": (page - 1) * page_size}
    rows = await _all(
        conn,
        f"""{TICKET_SQL} WHERE {where}
            ORDER BY n.attendee_name NULLS LAST, s.section, s.row_label, s.label, t.issued_at, t.id
            LIMIT %(limit)s OFFSET %(offset)s""",
        params,
    )
    total = await _count(conn, f"SELECT count(*) FROM read.tickets t WHERE {where}", params)
    return rows, total


async def sales(conn: Conn, event_id: UUID) -> list[Row]:
    """Per offer: held and sold counts, valid tickets, revenue (valid tickets' value) and check-ins."""
    return await _all(
        conn,
        """SELECT o.id AS offer_id, o.name AS offer_name, o.tier_id, t.name AS tier_name, t.kind, t.day,
                  o.currency, o.price, o.quantity_for_sale, o.held, o.sold,
                  coalesce(k.valid, 0) AS valid_tickets, coalesce(k.revenue, 0) AS revenue,
                  coalesce(k.checked_in, 0) AS checked_in, coalesce(k.voided, 0) AS voided,
                  CASE WHEN t.kind = 'seated' AND o.quantity_for_sale IS NULL
                    THEN (SELECT count(*) FROM read.seats s WHERE s.tier_id = t.id AND s.status = 'held')
                    ELSE o.held END AS held_now
           FROM read.offers o JOIN read.tiers t ON t.id = o.tier_id
           LEFT JOIN (
             SELECT offer_id,
                    count(*) FILTER (WHERE status = 'valid') AS valid,
                    sum(price) FILTER (WHERE status = 'valid') AS revenue,
                    count(*) FILTER (WHERE status = 'valid' AND checked_in_at IS NOT NULL) AS checked_in,
                    count(*) FILTER (WHERE status = 'voided') AS voided
             FROM read.tickets WHERE event_id = %(id)s GROUP BY offer_id) k ON k.offer_id = o.id
           WHERE o.event_id = %(id)s ORDER BY t.day NULLS FIRST, t.name, o.price""",
        {"id": event_id},
    )
