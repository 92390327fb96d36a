"""Processes that crash or lose their connections mid-sale, on a stack supervised as `make run`
supervises it: a crashed process is started again (and says so) while the others run on; the
long-running processes outlive a Postgres restart and a Redis outage. Afterwards, read from the
event store: every 201 stored and every stored order answered 201, nothing oversold, holds still
expire, every payment applied once."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx
import psycopg
import pytest
import stripe
from psycopg.conninfo import conninfo_to_dict

from domain.ids import order_id_for_idempotency_key
from tests.e2e.conftest import Show, bearer, publish_show
from tests.faults.conftest import (
    FaultStack,
    admin,
    eventually,
    fault_stack,
    offer_claims,
    stored_orders,
    verified_buyer,
)
from tests.faults.test_claims_failover import _buying, _check_answers, _check_stored, _listening, _returned, _sale
from tests.faults.test_redis_outage import _applications, _stored_deliveries
from ticketing import open_boxoffice
from workers.processes import free_port, spawn, stop_process
from workers.projector import list_positions
from workers.supervisor import Liveness

LONG_RUNNING = ("projector", "notifier", "worker", "mailer", "scheduler")


class Said:
    """What the supervisor said, as `make run` prints it on the console."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        print("supervisor:", line)
        with self.lock:
            self.lines.append(line)

    def about(self, name: str, since: int = 0) -> list[str]:
        with self.lock:
            return [line for line in self.lines[since:] if line.startswith(f"{name} ")]


@pytest.fixture(scope="module")
def supervised() -> Iterator[tuple[FaultStack, Said]]:
    said = Said()
    # Holds lapse quickly here, so that the expiry of holds queued before a crash is seen.
    # A hung claims service is killed after 3 unanswered probes, one a second (make run: one every 5 s).
    liveness = Liveness(every=1.0, timeout=1.0, failures=3, grace=60.0)
    with fault_stack(supervise=said, extra_env={"HOLD_SECONDS": "6"}, liveness=liveness) as stack:
        yield stack, said


def test_a_claims_service_that_stays_frozen_is_killed_started_again_and_returned_to(
    supervised: tuple[FaultStack, Said],
) -> None:
    """SIGSTOP and no SIGCONT: the service is alive but answers nothing. The API processes pass it
    by within 2 s (their own writers place the orders); the supervisor finds it answers no
    liveness probe, kills it and starts another, and the API processes go back to that one."""
    stack, said = supervised
    eventually(lambda: _listening(stack), timeout=60)
    sale = _sale(stack)
    frozen = stack.processes.child("claims")
    since = len(said.about("claims"))
    with _buying(sale):
        eventually(lambda: sale.statuses()[201] > 100, timeout=30)
        returned = _returned(stack)
        os.kill(frozen.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        eventually(lambda: "claims started again (restart 1)" in said.about("claims", since), timeout=60)
        restarted_at = time.monotonic()
        eventually(lambda: _returned(stack) >= returned + 2, timeout=30)  # both API processes
        back_at = time.monotonic()
        time.sleep(2)
    lines = said.about("claims", since)
    print("frozen claims service: answers by status, whole run:", dict(sale.statuses()),
          "| sent while it was frozen:", dict(sale.statuses(frozen_at, restarted_at)),
          f"| first order placed {sale.first_placed_after(frozen_at):.2f} s after the freeze",
          f"| killed and started again after {restarted_at - frozen_at:.1f} s, returned to after"
          f" {back_at - frozen_at:.1f} s | the supervisor said: {lines}")  # fmt: skip
    assert re.fullmatch(r"claims answered none of its last 3 liveness probes \(one every 1 s\): killing it \(log: .*\)",
                        lines[0]), lines  # fmt: skip
    assert re.fullmatch(r"claims was killed by SIGKILL, restarting in 0\.5 s \(log: .*\)", lines[1]), lines
    assert frozen.poll() is not None and stack.processes.child("claims").pid != frozen.pid
    _check_answers(sale, fault=frozen_at, back=restarted_at)
    # Holds lapse after 6 s here: once every stored order has expired (each released what it
    # claimed, once), the offer holds nothing. An order stored without its claim could not be
    # released (its expiry would fail), one claimed twice would leave a unit held.
    stored = _check_stored(sale)
    eventually(lambda: _expired(stack, stored) == stored, timeout=90, every=1.0)
    assert offer_claims(stack, sale.show.ga_offer) == 0


def _expired(stack: FaultStack, orders: set[UUID]) -> set[UUID]:
    with psycopg.connect(stack.settings.database_url) as conn:
        rows = conn.execute(
            "SELECT originator_id FROM public.boxoffice_events WHERE topic LIKE %s AND originator_id = ANY(%s)",
            ("%Order.Expired", list(orders)),
        ).fetchall()
    return {r[0] for r in rows}


def test_a_projector_killed_mid_sale_is_restarted_and_the_read_models_catch_up(
    supervised: tuple[FaultStack, Said],
) -> None:
    stack, said = supervised
    show = publish_show(stack.client, admin(stack), ga_quantity=20_000, seats=2, max_per_order=2,
                        organizer=verified_buyer(stack, "organizer"))  # fmt: skip
    buyers = [verified_buyer(stack) for _ in range(8)]
    ids = {token: UUID(stack.client.get("/auth/me", headers=bearer(token)).json()["id"]) for token in buyers}
    answers: dict[tuple[str, str], tuple[int, float]] = {}
    stop = threading.Event()

    def buy(token: str) -> None:
        with httpx.Client(base_url=f"{stack.base_url}/api/v1", timeout=60) as client:
            n = 0
            while not stop.is_set():
                key = f"k-{n}"
                n += 1
                sent = time.monotonic()
                try:
                    r = client.post("/orders", headers={**bearer(token), "Idempotency-Key": key},
                                    json={"items": [{"offer_id": show.ga_offer, "quantity": 1}]})  # fmt: skip
                    answers[(token, key)] = (r.status_code, sent)
                except httpx.TransportError:
                    answers[(token, key)] = (0, sent)

    killed = stack.processes.child("projector")
    log = stack.processes.log_dir / "projector.log"
    starts = log.read_text().count("read models started")
    with ThreadPoolExecutor(len(buyers)) as pool:
        running = [pool.submit(buy, token) for token in buyers]
        time.sleep(1.5)
        os.kill(killed.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        # Down until the new process follows the store again.
        eventually(lambda: log.read_text().count("read models started") > starts, timeout=60)
        up_at = time.monotonic()
        time.sleep(2)  # orders keep coming while it catches up
        stop.set()
        for future in running:
            future.result()

    statuses = Counter(status for status, _ in answers.values())
    meanwhile = Counter(status for status, sent in answers.values() if killed_at <= sent <= up_at)
    print(f"answers by status: {dict(statuses)}; to orders sent while the projector was down"
          f" ({up_at - killed_at:.1f} s): {dict(meanwhile)}")  # fmt: skip
    assert set(statuses) == {201}, statuses
    assert meanwhile[201] > 0, "no order was placed while the projector was down"
    assert said.about("projector")[1:] == ["projector started again (restart 1)"]
    assert re.fullmatch(r"projector was killed by SIGKILL, restarting in 0\.5 s \(log: .*projector\.log\)",
                        said.about("projector")[0])  # fmt: skip
    assert stack.processes.restarts("projector") == 1
    assert stack.processes.child("projector").pid != killed.pid and stack.processes.child("projector").poll() is None

    # Every 201 stored, every stored order answered 201: nothing lost, nothing invented.
    answered = {order_id_for_idempotency_key(ids[token], key) for token, key in answers}
    assert stored_orders(stack, show.ga_offer) == answered
    # The restarted projector caught up from its recorded position: every order visible again.
    _wait_for_read_models(stack)
    with httpx.Client(base_url=f"{stack.base_url}/api/v1", timeout=30) as client:
        for token, key in answers:
            order_id = order_id_for_idempotency_key(ids[token], key)
            r = client.get(f"/orders/{order_id}", headers=bearer(token))
            assert r.status_code == 200, (key, r.text)
    assert stack.processes.exited() == {}


def test_a_worker_killed_mid_message_loses_no_payment_and_no_expiry(supervised: tuple[FaultStack, Said]) -> None:
    stack, said = supervised
    sdk = stripe.StripeClient(stack.settings.stripe_api_key, base_addresses={"api": stack.settings.stripe_api_base})
    show = _show(stack, 60)
    buyers = [verified_buyer(stack) for _ in range(26)]
    deliveries_before = {d for d, _ in _stored_deliveries(stack)}
    # Holds that lapse 6 s after they are placed: their expiry is a delayed message the worker holds.
    lapsing = [_place(stack, token, show.ga_offer) for token in buyers[:10]]
    # Orders paid at Stripe (starting the payment extends the hold): each webhook is a message
    # the worker applies.
    paying = [_place(stack, token, show.ga_offer) for token in buyers[10:]]
    intents = [_start_payment(stack, token, order_id) for token, order_id in paying]
    for intent in intents:
        sdk.v1.payment_intents.update(intent, params={"payment_method": "pm_card_visa"})
        sdk.v1.payment_intents.confirm(intent)
    # Kill the process running the actors as soon as the first webhook is stored: the worker is
    # then applying it, and the others are on their way, prefetched or queued.
    eventually(lambda: {d for d, _ in _stored_deliveries(stack)} - deliveries_before, timeout=30, every=0.02)
    worker = _actor_process(stack.processes.child("worker").pid)
    os.kill(worker, signal.SIGKILL)
    paid_at_kill = sum(_status(stack, t, o) == "paid" for t, o in paying)
    print(f"killed the worker process {worker} with {paid_at_kill} of {len(paying)} payments applied")
    assert paid_at_kill < len(paying)

    eventually(lambda: said.about("worker")[1:], timeout=60)
    assert re.fullmatch(r"worker exited with \d+, restarting in [\d.]+ s \(log: .*worker\.log\)",
                        said.about("worker")[0])  # fmt: skip
    eventually(lambda: all(_status(stack, t, o) == "paid" for t, o in paying), timeout=90)
    eventually(lambda: all(_status(stack, t, o) == "expired" for t, o in lapsing), timeout=60)

    # From the event store: each payment applied once, tickets for each, the lapsed stock back.
    new = [d for d, _ in _stored_deliveries(stack) if d not in deliveries_before]
    assert len(new) >= len(paying)
    assert {d: _applications(stack, d) for d in new} == dict.fromkeys(new, 1)
    app = open_boxoffice(stack.settings)
    try:
        for _, order_id in paying:
            order = app.get_order(UUID(order_id))
            assert order.status == "paid" and len(order.tickets) == 1
        assert all(app.get_order(UUID(o)).status == "expired" for _, o in lapsing)
        offer = app.get_offer(UUID(show.ga_offer))
        assert (offer.sold, offer.held) == (len(paying), 0)
    finally:
        app.close()


def test_a_redis_outage_of_five_seconds_stops_no_process(supervised: tuple[FaultStack, Said]) -> None:
    stack, said = supervised
    show = _show(stack, 50)
    buyer = verified_buyer(stack)
    pids = {name: stack.processes.child(name).pid for name in LONG_RUNNING}
    since = len(said.lines)
    stack.services.stop_redis()
    try:
        time.sleep(5)
    finally:
        stack.services.start_redis()
    placed = eventually(lambda: _try_place(stack, buyer, show.ga_offer), timeout=30)
    # Expiry needs the worker and the scheduler, both back on Redis.
    eventually(lambda: _status(stack, buyer, placed) == "expired", timeout=60)
    assert {name: stack.processes.child(name).pid for name in LONG_RUNNING} == pids
    assert [line for line in said.lines[since:] if line.split()[0] in LONG_RUNNING] == []


def test_after_a_postgres_restart_the_long_running_processes_are_still_running_and_catch_up(
    supervised: tuple[FaultStack, Said],
) -> None:
    stack, said = supervised
    show = _show(stack, 50)
    buyer = verified_buyer(stack)
    pids = {name: stack.processes.child(name).pid for name in LONG_RUNNING}
    since = len(said.lines)
    projector_log = Path(stack.processes.log_dir / "projector.log")
    reconnects = projector_log.read_text().count("starting again")

    stack.services.restart_postgres()
    # A request that takes a pooled connection Postgres cut is answered 503.
    placed = eventually(lambda: _try_place(stack, buyer, show.ga_offer), timeout=30)
    _wait_for_read_models(stack)
    # Visible: the projector applied it (and it may have lapsed already).
    assert eventually(lambda: _status(stack, buyer, placed)) in ("held", "expired")
    reads = _until_steady(lambda: stack.client.get(f"/orders/{placed}", headers=bearer(buyer)).status_code, 200)
    stranger = {"email": "nobody@example.com", "password": "not-this-1"}
    logins = _until_steady(lambda: stack.client.post("/auth/login", json=stranger).status_code, 401)
    print(f"after the restart, until 20 in a row were answered normally: reads {dict(reads)}, logins {dict(logins)}")
    # The first database error has every pool check its connections (api/errors.py): at most one
    # 503 each, not one per pooled connection Postgres cut (3 logins answered 503 before that).
    assert reads[503] <= 1 and logins[503] <= 1, (reads, logins)

    # The same processes: none exited (the supervisor would have said so and started another).
    assert {name: stack.processes.child(name).pid for name in LONG_RUNNING} == pids
    assert [line for line in said.lines[since:] if line.split()[0] in LONG_RUNNING] == []
    assert projector_log.read_text().count("starting again") > reconnects  # it lost its connection and came back
    # ... and they keep working: the hold lapses (the worker and the scheduler on the new connections).
    eventually(lambda: _status(stack, buyer, placed) == "expired", timeout=60)


def test_a_projector_started_while_postgres_is_unreachable_waits_for_it_and_catches_up(
    supervised: tuple[FaultStack, Said], tmp_path: Path
) -> None:
    """Longer than its connection pool waits when opening (30 s by default, 5 s here through the
    library's POSTGRES_CONNECT_TIMEOUT): the process must not exit."""
    stack, _ = supervised
    with _LatePostgres(stack.settings.database_url) as late:
        log_path = tmp_path / "projector.log"
        argv = [sys.executable, "-m", "ticketing", "projections", "run"]
        env = {**stack.env, "DATABASE_URL": late.url, "POSTGRES_CONNECT_TIMEOUT": "5"}
        proc = spawn(argv, env=env, log_path=log_path)
        try:
            eventually(lambda: "cannot start yet" in log_path.read_text(), timeout=90, every=1)
            assert proc.poll() is None, log_path.read_text()
            late.open()
            eventually(lambda: "read models started" in log_path.read_text(), timeout=90)
            assert proc.poll() is None, log_path.read_text()
            _wait_for_read_models(stack)  # both projectors follow the store
        finally:
            stop_process(proc)
        assert proc.returncode == 0, log_path.read_text()


class _LatePostgres:
    """A TCP address for the stack's Postgres that refuses connections until `open`: a server
    that is not up yet."""

    def __init__(self, database_url: str) -> None:
        params = conninfo_to_dict(database_url)
        host, port = str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)
        self.target: tuple[int, str | tuple[str, int]] = (
            (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}") if host.startswith("/") else (socket.AF_INET, (host, port))
        )
        self.port = free_port()
        user, password = quote(str(params.get("user") or "")), quote(str(params.get("password") or ""))
        self.url = f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{params['dbname']}"
        self.listener: socket.socket | None = None
        self.sockets: list[socket.socket] = []

    def __enter__(self) -> _LatePostgres:
        return self

    def open(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                server = socket.socket(self.target[0], socket.SOCK_STREAM)
                server.connect(self.target[1])
                self.sockets += [client, server]
                for a, b in ((client, server), (server, client)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def __exit__(self, *exc: object) -> None:
        for sock in [self.listener, *self.sockets]:
            if sock is not None:
                sock.close()


def _show(stack: FaultStack, quantity: int) -> Show:
    return publish_show(
        stack.client, admin(stack), ga_quantity=quantity, seats=2, organizer=verified_buyer(stack, "organizer")
    )


def _place(stack: FaultStack, token: str, offer_id: str) -> tuple[str, str]:
    r = stack.client.post("/orders", headers=bearer(token), json={"items": [{"offer_id": offer_id, "quantity": 1}]})
    assert r.status_code == 201, r.text
    return token, str(r.json()["id"])


def _start_payment(stack: FaultStack, token: str, order_id: str) -> str:
    r = stack.client.post(f"/orders/{order_id}/payment", headers=bearer(token))
    assert r.status_code in (200, 201), r.text
    return str(r.json()["payment_intent_id"])


def _try_place(stack: FaultStack, token: str, offer_id: str) -> str | None:
    r = stack.client.post("/orders", headers=bearer(token), json={"items": [{"offer_id": offer_id, "quantity": 1}]})
    assert r.status_code in (201, 503), r.text
    return str(r.json()["id"]) if r.status_code == 201 else None


def _status(stack: FaultStack, token: str, order_id: str) -> Any:
    """The order's status; None if answered 503 (a backing service is unavailable)."""
    r = stack.client.get(f"/orders/{order_id}", headers=bearer(token))
    assert r.status_code in (200, 503), r.text
    return r.json()["status"] if r.status_code == 200 else None


def _until_steady(request: Callable[[], int], normal: int) -> Counter[int]:
    """Send the request until 20 in a row are answered `normal`; the answers by status (503
    meanwhile: a pooled connection Postgres had cut)."""
    answers: Counter[int] = Counter()
    in_a_row = 0
    deadline = time.monotonic() + 60
    while in_a_row < 20:
        assert time.monotonic() < deadline, answers
        status = request()
        answers[status] += 1
        in_a_row = in_a_row + 1 if status == normal else 0
    assert set(answers) <= {normal, 503}, answers
    return answers


def _wait_for_read_models(stack: FaultStack) -> None:
    """Until every read model has reached the position the store had when this was called."""
    app = open_boxoffice(stack.settings)
    try:
        head = app.recorder.max_notification_id() or 0
    finally:
        app.close()
    env = stack.settings.eventsourcing_env()
    eventually(lambda: min(list_positions(env).values()) >= head, timeout=60)


def _actor_process(dramatiq_pid: int) -> int:
    """The worker process `dramatiq` started (the one running the actors)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == dramatiq_pid and b"resource_tracker" not in cmdline:
            children.append(int(stat.parent.name))
    assert len(children) == 1, children
    return children[0]
