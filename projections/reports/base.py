"""What every report shares: the replay contract, the show's catalog, the time window.

A report is a projection held in memory: `feed` is called with each domain event of the replay
(only the classes it handles, see `on`), then `rows()` (tables) or `series()` (charts) is read
once. Events come per aggregate, each aggregate's in version order: the show first, then its
offers and waitlists, then its orders, then the accounts the report asked for (`accounts`).
Reports therefore never depend on the order of events across aggregates, only on their times.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.account import Account
from domain.event import Event
from domain.offer import Offer
from domain.privacy import ERASED_PERSON

Handler = Callable[[Any, Any], None]


def on(*event_classes: type) -> Callable[[Handler], Handler]:
    """Mark a method as the handler of these domain event classes (exact classes)."""

    def mark(method: Handler) -> Handler:
        method.__dict__.setdefault("_report_handles", []).extend(event_classes)
        return method

    return mark


@dataclass(frozen=True)
class Window:
    """`--from`/`--to`: events after `end` are not replayed (the report as it stood then); rows
    whose own time is before `start` are left out."""

    start: datetime | None = None
    end: datetime | None = None

    def admits(self, at: datetime | None) -> bool:
        if at is None:
            return self.start is None and self.end is None
        return (self.start is None or at >= self.start) and (self.end is None or at <= self.end)


@dataclass
class OfferInfo:
    event_id: UUID
    tier_id: UUID
    name: str
    price: int
    currency: str
    quantity: int | None


@dataclass
class ShowInfo:
    title: str
    timezone: str
    organizer_id: UUID


@dataclass
class Series:
    label: str
    xs: list[datetime]
    ys: list[float]
    kind: str = "line"  # line | step | bar
    axis: str = "left"  # left | right


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    series: list[Series]
    y2_label: str = ""
    currency: str = ""  # formats the right axis as money
    bar_width_minutes: float = 0.0


class Report:
    """Base of every report. Subclasses set `name`, `title`, `formats` and either `columns`
    with `rows()` (a table: csv, json) or `series()` (a chart: png, svg, json)."""

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str] = ""
    formats: ClassVar[tuple[str, ...]] = ("csv", "json")
    columns: ClassVar[tuple[str, ...]] = ()
    # Rows that each depend on one order only: a show's replay streams them (`Source.rows`).
    per_order: ClassVar[bool] = False
    _handlers: ClassVar[dict[type, list[str]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[type, list[str]] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                for event_class in getattr(value, "_report_handles", ()):
                    names = table.setdefault(event_class, [])
                    if attr not in names:
                        names.append(attr)
        cls._handlers = table

    def __init__(
        self,
        window: Window | None = None,
        options: dict[str, str] | None = None,
        *,
        ticket_code: Callable[[UUID], str] = str,
    ) -> None:
        self.window = window or Window()
        self.options = options or {}
        # The printed code of a ticket (the composition root hands over the signer's `human_code`).
        self.ticket_code = ticket_code
        self.shows: dict[UUID, ShowInfo] = {}
        self.tiers: dict[UUID, str] = {}
        self.tier_days: dict[UUID, str | None] = {}
        self.offers: dict[UUID, OfferInfo] = {}
        self.people: dict[UUID, tuple[str, str]] = {}  # account id -> (name, e-mail)
        self.skipped = 0  # events that could not be decoded (logged)
        self._bound: dict[type, list[Callable[[Any], None]]] = {
            cls: [getattr(self, n) for n in names] for cls, names in self._handlers.items()
        }

    @classmethod
    def handled_topics(cls) -> list[str]:
        return sorted(get_topic(c) for c in cls._handlers)

    def feed(self, event: Any) -> None:
        for handler in self._bound.get(type(event), ()):
            handler(event)

    def accounts(self) -> set[UUID]:
        """Accounts whose events the report needs after the show's (names, e-mail addresses)."""
        return set()

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """The table, one tuple per row in `columns` order (a generator: large reports stream)."""
        raise NotImplementedError

    def forget(self) -> None:
        """Drop the orders whose rows were handed on (`per_order` reports)."""

    def chart(self) -> Chart:
        """What png/svg draw (reports whose `formats` include them)."""
        raise NotImplementedError

    def document(self) -> dict[str, Any] | None:
        """A JSON object instead of a list of rows (summaries); None: rows as objects."""
        return None

    # The show's catalog, which every report names things from ------------------------------

    @on(Event.Created)
    def _show_created(self, e: Event.Created) -> None:
        self.shows[e.originator_id] = ShowInfo(e.title, e.timezone, e.organizer_id)

    @on(Event.Retitled)
    def _show_retitled(self, e: Event.Retitled) -> None:
        if e.originator_id in self.shows:
            self.shows[e.originator_id].title = e.title

    @on(Event.TierAdded, Event.TierUpdated)
    def _tier(self, e: Any) -> None:
        self.tiers[e.tier_id] = e.name
        self.tier_days[e.tier_id] = e.day

    @on(Offer.Created)
    def _offer_created(self, e: Offer.Created) -> None:
        self.offers[e.originator_id] = OfferInfo(
            e.event_id, e.tier_id, e.name, e.price, e.currency, e.quantity_for_sale
        )

    @on(Offer.Renamed)
    def _offer_renamed(self, e: Any) -> None:
        if e.originator_id in self.offers:
            self.offers[e.originator_id].name = e.name

    @on(Offer.QuantityChanged)
    def _offer_quantity(self, e: Any) -> None:
        if e.originator_id in self.offers:
            self.offers[e.originator_id].quantity = e.quantity_for_sale

    def show_title(self, event_id: UUID) -> str:
        show = self.shows.get(event_id)
        return show.title if show else ""

    def offer_name(self, offer_id: UUID) -> str:
        offer = self.offers.get(offer_id)
        return offer.name if offer else ""


class PeopleReport(Report):
    """A report that names people: replays the accounts it asks for (name and e-mail)."""

    @on(Account.Registered)
    def _registered(self, e: Account.Registered) -> None:
        name = " ".join(p for p in (e.first_name, e.last_name) if p)
        self.people[e.originator_id] = (name, e.email)

    @on(Account.ProfileUpdated)
    def _profile(self, e: Account.ProfileUpdated) -> None:
        email = self.people.get(e.originator_id, ("", ""))[1]
        self.people[e.originator_id] = (" ".join(p for p in (e.first_name, e.last_name) if p), email)

    @on(Account.Erased)
    def _erased(self, e: Account.Erased) -> None:
        self.people[e.originator_id] = (ERASED_PERSON, "")


def money(minor: int, currency: str) -> str:
    """Minor units as a decimal string (two places; zero-decimal currencies have none)."""
    if currency.upper() in ZERO_DECIMAL:
        return str(minor)
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), 100)
    return f"{sign}{units}.{cents:02d}"


ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND",
                          "VUV", "XAF", "XOF", "XPF"})  # fmt: skip


def iso(at: datetime | None) -> str:
    return "" if at is None else at.isoformat().replace("+00:00", "Z")
