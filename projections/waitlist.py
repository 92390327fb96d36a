"""Waitlist read model: one row per entry (who, how many, status, the order offered), with the
place in line computed when read (a leaver moves everyone behind up without rewriting rows)."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from psycopg import AsyncConnection, Connection
from psycopg.rows import DictRow

from domain.waitlist import Waitlist
from projections.base import ReadModel, ReadModelView

Row = dict[str, Any]


class WaitlistView(ReadModelView):
    tables = ("waitlists", "waitlist_entries")
    ddl = (
        """CREATE TABLE IF NOT EXISTS read.waitlists (
            id uuid PRIMARY KEY, offer_id uuid NOT NULL, event_id uuid NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS read.waitlist_entries (
            id uuid PRIMARY KEY, waitlist_id uuid NOT NULL, offer_id uuid NOT NULL, event_id uuid NOT NULL,
            account_id uuid NOT NULL, quantity integer NOT NULL, seq integer NOT NULL, status text NOT NULL,
            order_id uuid, offer_expires_at timestamptz, joined_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS waitlist_entries_account ON read.waitlist_entries (account_id, joined_at DESC)",
        "CREATE INDEX IF NOT EXISTS waitlist_entries_line ON read.waitlist_entries (waitlist_id, status, seq)",
        "CREATE INDEX IF NOT EXISTS waitlist_entries_active ON read.waitlist_entries (offer_id) "
        "WHERE status IN ('waiting', 'offered')",
    )


class WaitlistProjection(ReadModel[WaitlistView]):
    name = "waitlist"
    view_class = WaitlistView

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Ignored events only advance the position."""

    @process_event.register
    def _(self, e: Waitlist.Opened, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                "INSERT INTO read.waitlists (id, offer_id, event_id) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (e.originator_id, e.offer_id, e.event_id),
            )

    @process_event.register
    def _(self, e: Waitlist.Joined, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                """INSERT INTO read.waitlist_entries (id, waitlist_id, offer_id, event_id, account_id, quantity, seq,
                                                      status, joined_at, updated_at)
                   SELECT %(id)s, w.id, w.offer_id, w.event_id, %(account)s, %(quantity)s, %(seq)s, 'waiting',
                          %(at)s, %(at)s
                   FROM read.waitlists w WHERE w.id = %(waitlist)s
                   ON CONFLICT (id) DO NOTHING""",
                {
                    "id": e.entry_id,
                    "waitlist": e.originator_id,
                    "account": e.account_id,
                    "quantity": e.quantity,
                    "seq": e.seq,
                    "at": e.at,
                },
            )

    @process_event.register
    def _(self, e: Waitlist.Offered, tracking: Tracking) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                """UPDATE read.waitlist_entries SET status = 'offered', order_id = %s, offer_expires_at = %s,
                          updated_at = %s WHERE id = %s""",
                (e.order_id, e.until, e.timestamp, e.entry_id),
            )

    @process_event.register
    def _(self, e: Waitlist.Converted, tracking: Tracking) -> None:
        self._status(e, tracking, "converted")

    @process_event.register
    def _(self, e: Waitlist.Lapsed, tracking: Tracking) -> None:
        self._status(e, tracking, "lapsed")

    @process_event.register
    def _(self, e: Waitlist.Left, tracking: Tracking) -> None:
        self._status(e, tracking, "left")

    def _status(self, e: Any, tracking: Tracking, status: str) -> None:
        with self.view.writing(tracking) as curs:
            curs.execute(
                "UPDATE read.waitlist_entries SET status = %s, updated_at = %s WHERE id = %s",
                (status, e.timestamp, e.entry_id),
            )


# Queries ----------------------------------------------------------------------------------

ENTRY_SQL = """SELECT x.*,
    CASE WHEN x.status = 'waiting' THEN (
        SELECT count(*) FROM read.waitlist_entries y
        WHERE y.waitlist_id = x.waitlist_id AND y.status = 'waiting' AND y.seq <= x.seq) END AS position
    FROM read.waitlist_entries x"""


async def entry(conn: AsyncConnection[DictRow], entry_id: UUID) -> Row | None:
    cur = await conn.execute(f"{ENTRY_SQL} WHERE x.id = %s", (entry_id,))
    return await cur.fetchone()


async def entries_of_account(
    conn: AsyncConnection[DictRow], account_id: UUID, page: int, page_size: int
) -> tuple[list[Row], int]:
    cur = await conn.execute(
        f"{ENTRY_SQL} WHERE x.account_id = %s ORDER BY x.joined_at DESC, x.id LIMIT %s OFFSET %s",
        (account_id, page_size, (page - 1) * page_size),
    )
    rows = list(await cur.fetchall())
    cur = await conn.execute("SELECT count(*) AS n FROM read.waitlist_entries WHERE account_id = %s", (account_id,))
    total = await cur.fetchone()
    return rows, int(total["n"]) if total else 0


async def waiting_by_offer(conn: AsyncConnection[DictRow], offer_ids: list[UUID]) -> dict[UUID, int]:
    """How many entries wait for each offer (offers nobody waits for are absent)."""
    cur = await conn.execute(
        """SELECT offer_id, count(*) AS n FROM read.waitlist_entries
           WHERE offer_id = ANY(%s) AND status = 'waiting' GROUP BY offer_id""",
        (offer_ids,),
    )
    return {row["offer_id"]: int(row["n"]) for row in await cur.fetchall()}


def active_offers(conn: Connection[DictRow]) -> list[UUID]:
    """Offers whose waitlist has someone waiting or an order out (read by the sweep)."""
    cur = conn.execute("SELECT DISTINCT offer_id FROM read.waitlist_entries WHERE status IN ('waiting', 'offered')")
    return [row["offer_id"] for row in cur.fetchall()]
