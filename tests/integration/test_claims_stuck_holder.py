"""A writer stuck while holding the claim writers' lock is cut off, so the others go on.

Seen once in `.ci/run` (the frozen claims service test): the claims service, stopped by SIGSTOP,
kept the lock for the whole 5 s freeze although its transaction sets
`idle_in_transaction_session_timeout`. Postgres arms that timeout only when it tells the client it
is ready for the next query; a writer stopped inside a pipeline (the insert's LOCK TABLE, NOTIFY
and INSERT are sent before their Sync) leaves its session "active", waiting for the rest, with no
timeout at all. Here such a session is made by hand: the lock taken in a pipeline never synced.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from commands.claim_writer import IDLE_IN_CLAIM, LOCK_PATIENCE, TAKE_TURN
from commands.claims import ClaimRequest, Placed
from commands.metrics import STUCK_WRITERS_ENDED
from commands.recorder import CLAIMS_LOCK
from domain.offer import Offer
from domain.placement import ItemRequest
from tests.integration.conftest import put_on_sale
from ticketing import Settings, open_boxoffice


@pytest.mark.parametrize("lock", ["the claim writers' lock", "the events table's lock"])
def test_a_writer_stuck_in_a_pipeline_holding_a_writers_lock_is_cut_off(settings: Settings, lock: str) -> None:
    setup = open_boxoffice(settings)
    sale = put_on_sale(setup, ga_quantity=10, seats=1)
    app = open_boxoffice(settings)
    stuck = stuck_holder(settings) if lock.startswith("the claim") else stuck_table_holder(settings, app)
    counted = STUCK_WRITERS_ENDED.labels("claims" if lock.startswith("the claim") else "events_table")
    before = counted._value.get()
    try:
        with stuck as pid:
            request = ClaimRequest(uuid4(), uuid4(), [ItemRequest(sale.ga_offer, 1)], False, future=Future())
            started = time.monotonic()
            app.writer.submit(request)
            assert request.future is not None
            placed = request.future.result(timeout=20)
            waited = time.monotonic() - started
            assert isinstance(placed, Placed) and placed.created
            assert waited < 3, f"the order waited {waited:.1f} s behind a stuck writer"
            assert session_ended(settings, pid)  # ended, not merely outlived
        assert app.writer.cut_off == 1
        assert counted._value.get() == before + 1  # /metrics shows it
        assert setup.load(sale.ga_offer, "offer", Offer).held == 1
    finally:
        app.close()
        setup.close()


def test_a_payment_taking_turns_with_the_writers_cuts_off_a_stuck_holder_too(settings: Settings) -> None:
    """A payment applied one by one loads and saves its offers in the writers' turn: with no
    order coming in to do it, the payment itself ends the stuck session."""
    app = open_boxoffice(settings)
    sale = put_on_sale(app, ga_quantity=10, seats=1)
    try:
        order, _ = app.place_order(uuid4(), [ItemRequest(sale.ga_offer, 2)])
        # The stuck session ends first on the way out: a payment still waiting then finishes.
        with ThreadPoolExecutor(1) as pool, stuck_holder(settings) as pid:
            started = time.monotonic()
            paid = pool.submit(app.capture_payment, order.id, None, order.total)
            assert paid.result(timeout=10) == "paid"
            waited = time.monotonic() - started
            assert waited < 3, f"the payment waited {waited:.1f} s behind a stuck writer"
            assert session_ended(settings, pid)
        assert app.get_order(order.id).status == "paid"
        assert app.load(sale.ga_offer, "offer", Offer).sold == 2
    finally:
        app.close()


def test_a_holder_idle_between_its_statements_is_waited_for(settings: Settings) -> None:
    """A payment's turn holds the lock on one connection and idles there by design while it loads
    and saves on others (no idle timeout is set on it): it is waited for, never cut off."""
    setup = open_boxoffice(settings)
    sale = put_on_sale(setup, ga_quantity=10, seats=1)
    app = open_boxoffice(settings)
    try:
        with psycopg.connect(settings.database_url) as holder:
            pid = holder.info.backend_pid
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIMS_LOCK,))  # idle in transaction
            request = ClaimRequest(uuid4(), uuid4(), [ItemRequest(sale.ga_offer, 1)], False, future=Future())
            app.writer.submit(request)
            assert request.future is not None
            time.sleep(2)  # twice STUCK_AFTER, eight waits of LOCK_PATIENCE
            assert not request.future.done()
            assert not session_ended(settings, pid)
            holder.commit()
            placed = request.future.result(timeout=10)
        assert isinstance(placed, Placed) and placed.created
        assert app.writer.cut_off == 0
    finally:
        app.close()
        setup.close()


def test_taking_the_turn_leaves_the_sessions_own_lock_timeout_for_the_rest(settings: Settings) -> None:
    """LOCK_PATIENCE bounds the wait for the writers' lock only: the transaction's later locks
    (the event table's) wait as the session is configured to."""
    with psycopg.connect(settings.database_url) as conn:
        conn.execute("SET lock_timeout = '7s'")
        with conn.transaction():
            conn.execute(TAKE_TURN, (IDLE_IN_CLAIM, LOCK_PATIENCE, CLAIMS_LOCK))
            row = conn.execute(
                "SELECT current_setting('lock_timeout'), current_setting('idle_in_transaction_session_timeout')"
            ).fetchone()
        assert row == ("7s", IDLE_IN_CLAIM)


@contextmanager
def stuck_holder(settings: Settings) -> Iterator[int]:
    """A session holding the claim writers' lock inside a pipeline never synced ("active", no
    timeout applies); yields its pid once the lock is held."""
    stuck = psycopg.connect(settings.database_url, autocommit=False)
    try:
        pid = stuck.info.backend_pid
        stuck.execute("SELECT 1")  # BEGIN: a transaction is open
        pgconn = stuck.pgconn
        pgconn.enter_pipeline_mode()
        pgconn.send_query_params(b"SELECT pg_advisory_xact_lock($1)", [str(CLAIMS_LOCK).encode()])
        pgconn.flush()
        with psycopg.connect(settings.database_url, autocommit=True) as observer:
            deadline = time.monotonic() + 10
            while not observer.execute(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = %s AND pid = %s",
                (CLAIMS_LOCK, pid),
            ).fetchone():
                assert time.monotonic() < deadline, "the stuck session never took the lock"
                time.sleep(0.01)
            state = observer.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            assert state is not None and state[0] == "active"  # no idle timeout applies to it
        yield pid
    finally:
        stuck.close()


def session_ended(settings: Settings, pid: int) -> bool:
    with psycopg.connect(settings.database_url, autocommit=True) as observer:
        return observer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is None


# The event table's lock -------------------------------------------------------------------------
# Every writer of the store takes the events table's lock for its insert (the library's LOCK TABLE,
# which keeps notification ids in commit order) and commits at once. A writer frozen while holding
# it (inside its pipeline, or between its insert and its COMMIT) stops every other writer: the
# claims, the payments, the catalog. Its session is cut off as the claim writers' lock's is.


@pytest.mark.parametrize("stuck", ["in its pipeline", "idle before its commit"])
def test_any_write_goes_on_past_a_writer_stuck_holding_the_event_table(settings: Settings, stuck: str) -> None:
    """A write that is not a claim (here a new venue) cuts the stuck session off itself."""
    app = open_boxoffice(settings)
    try:
        with stuck_table_holder(settings, app, idle=stuck.startswith("idle")) as pid, ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            saved = pool.submit(app.create_venue, name="Hall", address="", city="Berlin", country="DE", capacity=0)
            venue = saved.result(timeout=30)
            waited = time.monotonic() - started
            assert waited < 3, f"the write waited {waited:.1f} s behind a stuck writer"
            assert session_ended(settings, pid)
        assert app.get_venue(venue.id).name == "Hall"
    finally:
        app.close()


def test_a_holder_of_the_event_table_busy_in_postgres_is_waited_for(settings: Settings) -> None:
    """A long insert (here a sleep after the lock) is work, not a stuck client: never cut off."""
    app = open_boxoffice(settings)
    try:
        with psycopg.connect(settings.database_url) as holder, ThreadPoolExecutor(1) as pool:
            pid = holder.info.backend_pid
            holder.execute(lock_table_statement(app))

            def insert_slowly() -> None:
                holder.execute("SELECT pg_sleep(2.5)")
                holder.commit()

            slow = pool.submit(insert_slowly)
            time.sleep(0.2)
            started = time.monotonic()
            venue = app.create_venue(name="Hall", address="", city="Berlin", country="DE", capacity=0)
            waited = time.monotonic() - started
            slow.result(timeout=10)  # committed: its session was not ended
            assert not session_ended(settings, pid)
        assert waited > 1.5, f"the write went on after {waited:.1f} s, before the busy holder committed"
        assert app.get_venue(venue.id).name == "Hall"
    finally:
        app.close()


def lock_table_statement(app: Any) -> str:
    recorder = app.recorder
    return f'LOCK TABLE "{recorder.datastore.schema}"."{recorder.events_table_name}" IN EXCLUSIVE MODE'


@contextmanager
def stuck_table_holder(settings: Settings, app: Any, *, idle: bool = False) -> Iterator[int]:
    """A session holding the events table's lock: inside a pipeline never synced ("active",
    waiting for its client), or idle in its transaction; yields its pid once the lock is held."""
    stuck = psycopg.connect(settings.database_url, autocommit=False)
    try:
        pid = stuck.info.backend_pid
        if idle:
            stuck.execute(lock_table_statement(app))
        else:
            stuck.execute("SELECT 1")  # BEGIN: a transaction is open
            pgconn = stuck.pgconn
            pgconn.enter_pipeline_mode()
            pgconn.send_query_params(lock_table_statement(app).encode(), None)
            pgconn.flush()
        with psycopg.connect(settings.database_url, autocommit=True) as observer:
            deadline = time.monotonic() + 10
            while not observer.execute(
                "SELECT 1 FROM pg_locks WHERE locktype = 'relation' AND granted AND mode = 'ExclusiveLock'"
                " AND pid = %s",
                (pid,),
            ).fetchone():
                assert time.monotonic() < deadline, "the stuck session never took the lock"
                time.sleep(0.01)
            state = observer.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            assert state is not None and state[0] == ("idle in transaction" if idle else "active")
        yield pid
    finally:
        stuck.close()
