"""Where a report's events come from: one show's aggregates only, or the whole store.

A show's events are those of its aggregates: the show itself, its offers and their waitlists
(`waitlist_id(offer)`), and its orders. Offers and orders are found through the read models
(`read.offers`, `read.orders`, indexed by show) up to their tracking positions, plus whatever
the store recorded after those positions (a short scan of the `Created`/`Placed` events past
them), so a report never misses an order the read models have not applied yet. Events are then
read by originator id through the store's primary key (originator, version), so a show's
report costs what the show holds, not what the store holds. Seats are not read: order items
carry their seat labels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.utils import get_topic
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from domain.offer import Offer
from domain.order import Order
from domain.waitlist import waitlist_id
from projections.readahead import ahead
from projections.replay import Stored, read_pages
from projections.reports.base import Report

log = logging.getLogger("reports")

CHUNK = 500  # originators per query: one short statement each, no transaction left open


class Progress(Protocol):
    def start(self, total: int, description: str) -> None: ...

    def advance(self, count: int) -> None: ...


class NoProgress:
    def start(self, total: int, description: str) -> None:
        pass

    def advance(self, count: int) -> None:
        pass


class Source:
    """Reads events for reports from the BoxOffice store (and the Accounts store for names)."""

    def __init__(
        self, boxoffice: Application[Any], accounts: Application[Any] | None = None, *, chunk: int = CHUNK
    ) -> None:
        self.boxoffice = boxoffice
        self.accounts = accounts
        self.chunk = chunk

    def rows(
        self, report: Report, event_id: UUID | None = None, progress: Progress | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """The report's rows. A report with `per_order` rows of one show streams: its orders are
        read a chunk at a time (in the order they were placed), each chunk's rows handed on and
        its orders forgotten, so memory stays flat however large the show. Otherwise the whole
        replay runs first."""
        if event_id is None or not report.per_order:
            self.run(report, event_id, progress)
            yield from report.rows()
            return
        for _ in self._replay_show(report, event_id, progress or NoProgress()):
            yield from report.rows()
            report.forget()

    def run(self, report: Report, event_id: UUID | None = None, progress: Progress | None = None) -> Report:
        """Replay the show's events (or, without `event_id`, the whole store's) into `report`."""
        progress = progress or NoProgress()
        if event_id is not None:
            for _ in self._replay_show(report, event_id, progress):
                pass
            return report
        max_id = self.boxoffice.recorder.max_notification_id() or 0
        progress.start(max_id, "replaying the store")
        last = 0
        for page in read_pages(self.boxoffice, report.handled_topics(), max_id, 5000, read_ahead=True):
            self._feed(report, page)
            progress.advance(page[-1][0].id - last)
            last = page[-1][0].id
        progress.advance(max_id - last)
        self._feed_accounts(report)
        return report

    def _replay_show(self, report: Report, event_id: UUID, progress: Progress) -> Iterator[None]:
        """Feed the show's own aggregates, then its orders a chunk at a time (with the accounts
        they name), pausing after each chunk."""
        topics = report.handled_topics()
        max_id = self.boxoffice.recorder.max_notification_id() or 0
        show, orders = self.originators(event_id, max_id)
        progress.start(self._count(self.boxoffice, [*show, *orders], topics, max_id), "replaying the show")
        for page in self._by_originator(self.boxoffice, show, topics, max_id):
            self._feed(report, page)
            progress.advance(len(page))
        # One page per chunk of orders, the next fetched while this one is decoded and fed.
        decode: Callable[[Any], Any] = self.boxoffice.mapper.to_domain_event
        for rows in ahead(self._fetch_by_originator(self.boxoffice, orders, topics, max_id)):
            page = [(n, _decoded(decode, n)) for n in rows]
            self._feed(report, page)
            progress.advance(len(page))
            self._feed_accounts(report)
            yield

    def _feed_accounts(self, report: Report) -> None:
        people = sorted(report.accounts() - report.people.keys())
        if people and self.accounts is not None:
            account_topics = [t for t in report.handled_topics() if t.startswith("domain.account:")]
            for page in self._by_originator(self.accounts, people, account_topics, None):
                self._feed(report, page)

    def has_show(self, event_id: UUID) -> bool:
        """Whether the store holds this show (a report of an unknown id is an error, not empty)."""
        recorder: Any = self.boxoffice.recorder
        return bool(recorder.select_events(event_id, limit=1))

    def originators(self, event_id: UUID, max_id: int) -> tuple[list[UUID], list[UUID]]:
        """The ids of the show's aggregates: [show, offers, waitlists] and [orders, as placed]."""
        with self._connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            # The positions before the rows (each statement sees its own snapshot): a row the
            # live projector writes in between is then read twice (in the rows and in the tail;
            # kept once), never missed, as it was with the rows read first.
            offers_at = _position(curs, "catalog")
            orders_at = _position(curs, "orders")
            curs.execute("SELECT id FROM read.offers WHERE event_id = %s", (event_id,))
            offers = {row[0] for row in curs.fetchall()}
            curs.execute("SELECT id FROM read.orders WHERE event_id = %s ORDER BY placed_at, id", (event_id,))
            orders = dict.fromkeys(row[0] for row in curs.fetchall())
        # What the store holds past the read models' positions (a few events when they are live).
        for created in self._recent(Offer.Created, offers_at, max_id):
            if created.event_id == event_id:
                offers.add(created.originator_id)
        for placed in self._recent(Order.Placed, orders_at, max_id):
            if placed.event_id == event_id:
                orders[placed.originator_id] = None
        show = [event_id, *sorted(offers), *sorted(waitlist_id(o) for o in offers)]
        return show, list(orders)

    def _recent(self, event_class: type, after: int, max_id: int) -> Iterator[Any]:
        if after >= max_id:
            return
        topic = get_topic(event_class)
        for page in read_pages(self.boxoffice, [topic], max_id, 5000, after=after):
            for _, decoded in page:
                if not isinstance(decoded, BaseException):
                    yield decoded

    def _connection(self) -> Any:
        return self.boxoffice.recorder.datastore.get_connection()  # type: ignore[attr-defined]

    def _by_originator(
        self, app: Application[Any], ids: list[UUID], topics: list[str], max_id: int | None
    ) -> Iterator[list[tuple[Stored, Any]]]:
        """`_fetch_by_originator`, decoded."""
        decode: Callable[[Any], Any] = app.mapper.to_domain_event
        for rows in self._fetch_by_originator(app, ids, topics, max_id):
            yield [(n, _decoded(decode, n)) for n in rows]

    def _fetch_by_originator(
        self, app: Application[Any], ids: list[UUID], topics: list[str], max_id: int | None
    ) -> Iterator[list[Stored]]:
        """Events of these aggregates, each aggregate's in version order, a chunk at a time,
        through the store's primary key. The bound on the position is written `notification_id
        + 0` so that it cannot be used as an index condition: it is almost never selective (it
        is the store's end when the report starts), but on a table without statistics (one just
        written in bulk) the planner took it for one and scanned the whole store through the
        position index for every chunk (61 ms instead of 6 ms for 500 orders in a 63,000-event
        store)."""
        recorder: Any = app.recorder
        query = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) AND topic = ANY(%s) AND notification_id + 0 <= %s "
            "ORDER BY originator_id, originator_version"
        ).format(schema=Identifier(recorder.datastore.schema), table=Identifier(recorder.events_table_name))
        upper = max_id if max_id is not None else 2**63 - 1
        for start in range(0, len(ids), self.chunk):
            chunk = ids[start : start + self.chunk]
            with recorder.datastore.get_connection() as conn, conn.cursor(binary=True, row_factory=tuple_row) as read:
                read.execute(query, (chunk, topics, upper))
                rows = [Stored(*row) for row in read.fetchall()]
            if rows:
                yield rows

    def _count(self, app: Application[Any], ids: list[UUID], topics: list[str], max_id: int) -> int:
        recorder: Any = app.recorder
        query = SQL(
            "SELECT count(*) FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) AND topic = ANY(%s) AND notification_id + 0 <= %s"
        ).format(schema=Identifier(recorder.datastore.schema), table=Identifier(recorder.events_table_name))
        with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(query, (ids, topics, max_id))
            row = curs.fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _feed(report: Report, page: Iterable[tuple[Stored, Any]]) -> None:
        end = report.window.end
        for stored, event in page:
            if isinstance(event, BaseException):
                report.skipped += 1
                log.warning("report %s: cannot decode the event at %d: %r", report.name, stored.id, event)
                continue
            if end is not None and event.timestamp > end:
                continue
            report.feed(event)


def _position(curs: Any, model: str) -> int:
    """How far a read model has applied the store (its tracking table)."""
    curs.execute(SQL("SELECT max(notification_id) FROM read.{}").format(Identifier(f"{model}_tracking")))
    row = curs.fetchone()
    return int(row[0] or 0) if row else 0


def _decoded(decode: Callable[[Any], Any], stored: Stored) -> Any:
    try:
        return decode(stored)
    except Exception as error:  # noqa: BLE001 - counted and skipped by the caller
        return error
