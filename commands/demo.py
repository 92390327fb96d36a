"""A demo data set: accounts, a venue with a seat map, and a published event on sale."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, uuid5

from commands.accounts import Accounts
from domain.account import Account, EmailTaken

if TYPE_CHECKING:
    from commands.boxoffice import BoxOffice

ADMIN = ("admin@example.com", "admin-pass-123")
ORGANIZER = ("organizer@example.com", "organizer-pass-123")
BUYER = ("buyer@example.com", "buyer-pass-123")
DEMO_VENUE = uuid5(NAMESPACE_URL, "ticketing:demo:venue")
DEMO_EVENT = uuid5(NAMESPACE_URL, "ticketing:demo:event")
DEMO_STEPS = 5  # how often `load_demo` calls `step` (a progress bar's total)


def demo_layout(sections: int = 3, rows: int = 10, seats: int = 20) -> list[dict[str, Any]]:
    """Sections side by side facing a stage at y=0; rows go back, seats go across."""
    out = []
    for s in range(sections):
        out.append(
            {
                "name": ["Left", "Centre", "Right", "Balcony"][s] if s < 4 else f"Section {s + 1}",
                "rows": [
                    {
                        "label": chr(ord("A") + r),
                        "seats": [
                            {
                                "label": str(n + 1),
                                "x": s * (seats + 2) + n,
                                "y": r + 1,
                                "accessible": r == 0 and n < 2,
                            }
                            for n in range(seats)
                        ],
                    }
                    for r in range(rows)
                ],
            }
        )
    return out


def _account(accounts: Accounts, credentials: tuple[str, str], role: str) -> Account:
    email, password = credentials
    try:
        return accounts.register(email=email, username=email.split("@")[0], password=password, role=role)
    except EmailTaken:
        found = accounts.lookup(email)
        assert found is not None
        return accounts.get_account(found)


def load_demo(boxoffice: BoxOffice, accounts: Accounts, step: Callable[[str], None] = lambda done: None) -> list[str]:
    """Load the demo data once (skipped when the demo event exists); returns lines to print.
    `step` is called after each of its `DEMO_STEPS` steps with what comes next."""
    lines = [
        f"admin      {ADMIN[0]} / {ADMIN[1]}",
        f"organizer  {ORGANIZER[0]} / {ORGANIZER[1]}",
        f"buyer      {BUYER[0]} / {BUYER[1]}",
    ]
    if boxoffice.exists(DEMO_EVENT):
        for _ in range(DEMO_STEPS):
            step("already loaded")
        return ["demo data already loaded", *lines]
    accounts.ensure_admin(email=ADMIN[0], password=ADMIN[1], username="admin")
    organizer = _account(accounts, ORGANIZER, "organizer")
    buyer = _account(accounts, BUYER, "attendee")
    for account in (organizer, buyer):  # demo addresses cannot receive the verification mail
        accounts.mark_verified(account.id)
    step("venue and seat map")

    if not boxoffice.exists(DEMO_VENUE):
        boxoffice.create_venue(
        venue_id=DEMO_VENUE,
        name="Demo Arena", address="1 Example Street", city="Berlin", country="DE", capacity=1600,
        latitude=52.52, longitude=13.405, timezone="Europe/Berlin",
    )  # fmt: skip
    venue = boxoffice.set_venue_layout(DEMO_VENUE, demo_layout())
    step("the show")
    day = (datetime.now(UTC) + timedelta(days=30)).date()
    start = datetime.combine(day, time(19, 0), tzinfo=UTC)
    show = boxoffice.create_event(
        organizer_id=organizer.id,
        venue_id=venue.id,
        title="The Demo Band — Live",
        description="An evening of loud music. Standing floor plus numbered seats.",
        start_time=start,
        end_time=start + timedelta(hours=3),
        timezone="Europe/Berlin",
        event_id=DEMO_EVENT,
    )
    step("tiers and offers")
    floor = boxoffice.add_tier(show.id, name="Standing floor", kind="general", section_ids=[])
    seated = boxoffice.add_tier(
        show.id,
        name="Numbered seats",
        kind="seated",
        section_ids=[s["id"] for s in venue.sections],
    )
    ga = boxoffice.add_offer(show.id, floor, name="Standing", price=4500, currency="EUR",
                             quantity_for_sale=1000, max_per_order=8)  # fmt: skip
    seat_offer = boxoffice.add_offer(show.id, seated, name="Seat", price=7950, currency="EUR",
                                     quantity_for_sale=None, max_per_order=8)  # fmt: skip
    step("publishing (creates the seats)")
    boxoffice.publish_event(show.id)
    step("done")
    lines += [
        f"venue      {venue.name} ({venue.seat_count} seats)  id {venue.id}",
        f"event      {show.title}  id {show.id}",
        f"offers     GA {ga.id}  seated {seat_offer.id}",
    ]
    return lines
