"""The waitlist's commands on the real store: seats and GA quantity kept for the line, offered,
paid, lapsed, handed back; and its read model equals a rebuild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg
import pytest

from commands.boxoffice import BoxOffice
from domain.offer import Offer
from domain.placement import ItemRequest
from domain.seat import Seat
from domain.waitlist import NotSoldOut
from projections.models import READ_MODELS
from tests.integration.conftest import put_on_sale
from tests.integration.test_projections import catch_up, dump
from ticketing import Settings
from workers.projector import rebuild

LATER = datetime.now(UTC) + timedelta(days=1)


def entry_statuses(settings: Settings, offer_id: UUID) -> list[tuple[str, int | None]]:
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            """SELECT status, (SELECT count(*) FROM read.waitlist_entries y WHERE y.waitlist_id = x.waitlist_id
                               AND y.status = 'waiting' AND y.seq <= x.seq AND x.status = 'waiting')
               FROM read.waitlist_entries x WHERE offer_id = %s ORDER BY seq""",
            (offer_id,),
        ).fetchall()
    return [(status, n or None) for status, n in rows]


def test_a_seat_comes_back_to_the_line_and_goes_back_on_sale_when_the_line_leaves(
    settings: Settings, boxoffice: BoxOffice
) -> None:
    app = boxoffice
    sale = put_on_sale(app, seats=2)
    first, _ = app.place_order(uuid4(), [ItemRequest(sale.seat_offer, 1, sale.seats[0])])
    second, _ = app.place_order(uuid4(), [ItemRequest(sale.seat_offer, 1, sale.seats[1])])
    ann, bob = uuid4(), uuid4()
    ann_entry = app.join_waitlist(sale.seat_offer, ann, 1).entry_id
    bob_entry = app.join_waitlist(sale.seat_offer, bob, 2).entry_id

    app.cancel_order(first.id)
    assert app.load(sale.seats[0], "seat", Seat).status == "reserved"
    with pytest.raises(Exception, match="reserved"):
        app.place_order(uuid4(), [ItemRequest(sale.seat_offer, 1, sale.seats[0])])
    [offered] = app.promote_waitlist(sale.seat_offer)
    assert offered.buyer_id == ann and offered.seat_ids() == [sale.seats[0]]
    seat = app.load(sale.seats[0], "seat", Seat)
    assert (seat.status, seat.order_id) == ("held", offered.id)
    assert app.promote_waitlist(sale.seat_offer) == []  # idempotent
    app.capture_payment(offered.id, None, offered.total)
    assert app.promote_waitlist(sale.seat_offer) == []
    assert app.get_waitlist(sale.seat_offer).entries[ann_entry]["status"] == "converted"

    # Bob wants two; one comes back and is kept for him, until he leaves: then it is on sale again.
    app.cancel_order(second.id)
    assert app.promote_waitlist(sale.seat_offer) == []
    assert app.load(sale.seats[1], "seat", Seat).status == "reserved"
    app.leave_waitlist(sale.seat_offer, bob_entry, bob)
    assert app.load(sale.seats[1], "seat", Seat).status == "available"
    offer = app.load(sale.seat_offer, "offer", Offer)
    assert (offer.waiting, offer.reserved, offer.reserved_seats, offer.waitlist_orders) == (0, 0, (), ())
    with pytest.raises(NotSoldOut):
        app.join_waitlist(sale.seat_offer, uuid4(), 1)


def test_ga_stock_is_offered_in_order_lapses_and_goes_to_the_public_and_the_model_rebuilds(
    settings: Settings, boxoffice: BoxOffice
) -> None:
    app = boxoffice
    sale = put_on_sale(app, ga_quantity=2, seats=1)
    holder, _ = app.place_order(uuid4(), [ItemRequest(sale.ga_offer, 2)])
    with pytest.raises(NotSoldOut):
        app.join_waitlist(sale.seat_offer, uuid4(), 1)  # the seat is still free
    cat, dan, eve = uuid4(), uuid4(), uuid4()
    for person in (cat, dan, eve):
        app.join_waitlist(sale.ga_offer, person, 1)
    app.leave_waitlist(sale.ga_offer, app.get_waitlist(sale.ga_offer).active_entry_of(eve)["id"], eve)  # type: ignore[index]

    assert app.expire_hold(holder.id, at=LATER)
    offer = app.load(sale.ga_offer, "offer", Offer)
    assert (offer.available, offer.reserved, offer.waiting) == (0, 2, 2)
    cats, dans = app.promote_waitlist(sale.ga_offer)
    assert (cats.buyer_id, dans.buyer_id) == (cat, dan)
    assert app.expire_hold(cats.id, at=LATER)  # nobody else waits: back on sale
    app.capture_payment(dans.id, None, dans.total)
    assert app.promote_waitlist(sale.ga_offer) == []
    offer = app.load(sale.ga_offer, "offer", Offer)
    assert (offer.available, offer.held, offer.sold, offer.reserved, offer.waitlist_orders) == (1, 0, 1, 0, ())

    catch_up(settings, app)
    assert entry_statuses(settings, sale.ga_offer) == [("lapsed", None), ("converted", None), ("left", None)]
    live = dump(settings)
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT held, sold FROM read.offers WHERE id = %s", (sale.ga_offer,)).fetchone()
    assert row == (0, 1)
    counts = rebuild(settings.eventsourcing_env(), page=3)
    assert set(counts) == set(READ_MODELS)
    rebuilt = dump(settings)
    for table in ("waitlists", "waitlist_entries", "offers", "seats"):
        assert rebuilt[table] == live[table], table
