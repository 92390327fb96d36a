"""One bad request fails alone, never its claim batch.

A batch is one transaction; a request that makes it fail (its new order's id already stored, out
of the writer's sight; an id the store cannot even load) used to fail every order with it (24
retries, then 503 for all). Now the culprit is found (by the store's own unique violation, or by
committing halves of the batch apart) and refused alone, and the good orders of that very batch
are placed.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from uuid import UUID, uuid4

import psycopg
import pytest

from commands.boxoffice import BoxOffice
from commands.claims import ClaimRequest, Placed
from domain.errors import Conflict
from domain.offer import Offer
from domain.placement import ItemRequest
from domain.privacy import Erasure
from tests.integration.conftest import put_on_sale
from ticketing import Settings, open_boxoffice


def one_batch(app: BoxOffice, requests: list[ClaimRequest]) -> None:
    """Queue every request, then start the writer's thread: it takes them all as one batch."""
    writer = app.writer
    assert writer._thread is None
    for request in requests:
        writer.queue.put(request)
    writer._thread = threading.Thread(target=writer._run, name="claim-writer", daemon=True)
    writer._thread.start()


def order(offer: UUID, order_id: UUID | None = None) -> ClaimRequest:
    return ClaimRequest(uuid4(), order_id or uuid4(), [ItemRequest(offer, 1)], False, future=Future())


def outcome(request: ClaimRequest) -> Placed | BaseException:
    assert request.future is not None
    error = request.future.exception(60)
    return error if error is not None else request.future.result()


def test_an_order_id_stored_behind_the_writers_back_is_refused_alone(settings: Settings) -> None:
    """Another process stores an aggregate under the culprit's order id after the writer looked
    the ids up and before it inserts (it holds the table lock meanwhile): the insert is refused
    by the store's unique key, the culprit alone is refused (409), the others placed."""
    setup = open_boxoffice(settings)
    sale = put_on_sale(setup, ga_quantity=50, seats=1)
    person = uuid4()
    culprit = order(sale.ga_offer, Erasure.create_id(person))
    good = [order(sale.ga_offer) for _ in range(6)]
    app = open_boxoffice(settings)
    other: BoxOffice = open_boxoffice(settings)
    try:
        datastore = other.recorder.datastore  # type: ignore[attr-defined]
        with datastore.get_connection() as conn, conn.transaction():
            other.save(Erasure(person_id=person), connection=conn)  # inserted, table locked, not committed
            one_batch(app, [*good[:3], culprit, *good[3:]])
            _wait_until_blocked_on_the_table(settings)
        # Committed: the writer's insert now meets the stored id.
        refused = outcome(culprit)
        assert isinstance(refused, Conflict) and refused.code == "idempotency_conflict", refused
        for request in good:
            placed = outcome(request)
            assert isinstance(placed, Placed) and placed.created, placed
        assert setup.load(sale.ga_offer, "offer", Offer).held == 6
        assert app.writer.batches == 1 and app.writer.splits == 0  # the good ones in one batch
    finally:
        for application in (app, other, setup):
            application.close()


def test_an_order_id_clashing_on_every_try_is_refused_alone(settings: Settings) -> None:
    """The poisoned request of issue 16: its order id is stored, but the writer's look-up does not
    see it (here: the look-up is made to miss it), so every insert of its batch is refused by the
    store. It used to fail the whole batch (24 tries, then 503 for every order); now the second
    clash refuses it alone and the rest of that batch is placed."""
    setup = open_boxoffice(settings)
    sale = put_on_sale(setup, ga_quantity=50, seats=1)
    person = uuid4()
    setup.save(Erasure(person_id=person))  # stored under the culprit's order id
    taken = Erasure.create_id(person)
    culprit = order(sale.ga_offer, taken)
    good = [order(sale.ga_offer) for _ in range(6)]
    app = open_boxoffice(settings)
    load_many = app.load_many
    app.load_many = lambda ids: {k: v for k, v in load_many(ids).items() if k != taken}  # type: ignore[method-assign]
    try:
        one_batch(app, [*good[:3], culprit, *good[3:]])
        refused = outcome(culprit)
        assert isinstance(refused, Conflict) and refused.code == "idempotency_conflict", refused
        for request in good:
            placed = outcome(request)
            assert isinstance(placed, Placed) and placed.created, placed
        assert setup.load(sale.ga_offer, "offer", Offer).held == 6
        assert app.writer.batches == 1 and app.writer.splits == 0 and app.writer.conflicts == 0
    finally:
        app.close()
        setup.close()


def test_an_id_the_store_cannot_load_fails_its_request_alone(settings: Settings) -> None:
    """A request whose order id hits a stored event nobody can decode: loading the batch fails
    on every try. The batch is committed in halves until the culprit is alone; every good order
    of it is placed, and only the culprit fails."""
    setup = open_boxoffice(settings)
    sale = put_on_sale(setup, ga_quantity=50, seats=1)
    poisoned = uuid4()
    culprit = order(sale.ga_offer, poisoned)
    good = [order(sale.ga_offer) for _ in range(9)]
    app = open_boxoffice(settings)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO public.boxoffice_events (originator_id, originator_version, topic, state) "
            "VALUES (%s, 1, 'nowhere.to.be:Found', '{}')",
            (poisoned,),
        )
        try:
            started = time.monotonic()
            one_batch(app, [*good[:4], culprit, *good[4:]])
            results = [outcome(request) for request in good]
            failed = outcome(culprit)
            took = time.monotonic() - started
        finally:
            conn.execute("DELETE FROM public.boxoffice_events WHERE originator_id = %s", (poisoned,))
    try:
        assert all(isinstance(r, Placed) and r.created for r in results), results
        assert isinstance(failed, BaseException) and not isinstance(failed, Conflict | Placed)
        assert setup.load(sale.ga_offer, "offer", Offer).held == 9
        assert app.writer.splits >= 1 and took < 10, (app.writer.splits, took)
    finally:
        app.close()
        setup.close()


def _wait_until_blocked_on_the_table(settings: Settings) -> None:
    deadline = time.monotonic() + 20
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'LOCK TABLE%%'"
            ).fetchone()
            if row is not None and row[0] > 0:
                return
            if time.monotonic() > deadline:
                pytest.fail("the claim writer never reached the event table's lock")
            time.sleep(0.02)
