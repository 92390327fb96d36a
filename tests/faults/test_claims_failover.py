"""The claims service is killed (-9), or frozen, in the middle of an on-sale, then back.

Buyers keep buying throughout. Afterwards, read from the event store: nothing oversold, every
201 stored (once: an order's id is its Idempotency-Key's), nothing stored that was not answered
as placed or is not recoverable with its key; within 2 s of the fault the API processes place
orders with their own writers, and once the service is back it places orders again.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import httpx

from domain.ids import order_id_for_idempotency_key
from tests.e2e.conftest import Show, bearer, publish_show
from tests.faults.conftest import FaultStack, admin, eventually, offer_claims, stored_orders, verified_buyer

STOCK = 20_000  # never sold out here: every refusal would be the fault's


@dataclass(frozen=True)
class Answer:
    token: str
    key: str
    status: int  # 0: no HTTP answer
    sent: float  # monotonic
    answered: float


@dataclass
class Sale:
    stack: FaultStack
    show: Show
    ids: dict[str, UUID]  # buyer token -> buyer id
    answers: list[Answer] = field(default_factory=list)

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> Counter[int]:
        return Counter(a.status for a in self.answers if since <= a.sent < until)

    def first_placed_after(self, moment: float) -> float:
        """Seconds from `moment` to the first 201 of a request sent after it."""
        first = min((a.answered for a in self.answers if a.status == 201 and a.sent >= moment), default=None)
        assert first is not None, "no order was placed after the fault"
        return first - moment


def _sale(stack: FaultStack) -> Sale:
    show = publish_show(stack.client, admin(stack), ga_quantity=STOCK, seats=2, max_per_order=2,
                        organizer=verified_buyer(stack, "organizer"))  # fmt: skip
    buyers = [verified_buyer(stack) for _ in range(12)]
    ids = {token: UUID(stack.client.get("/auth/me", headers=bearer(token)).json()["id"]) for token in buyers}
    return Sale(stack, show, ids)


@contextmanager
def _buying(sale: Sale) -> Iterator[None]:
    """Every buyer orders one ticket after the other (each with a new key) until the block ends."""
    stop = threading.Event()

    def buy(token: str) -> None:
        with httpx.Client(base_url=f"{sale.stack.base_url}/api/v1", timeout=60) as client:
            n = 0
            while not stop.is_set():
                key = f"k-{n}"
                n += 1
                sent = time.monotonic()
                try:
                    r = client.post("/orders", headers={**bearer(token), "Idempotency-Key": key},
                                    json={"items": [{"offer_id": sale.show.ga_offer, "quantity": 1}]})  # fmt: skip
                    status = r.status_code
                except httpx.TransportError:
                    status = 0
                sale.answers.append(Answer(token, key, status, sent, time.monotonic()))

    with ThreadPoolExecutor(len(sale.ids)) as pool:
        for token in sale.ids:
            pool.submit(buy, token)
        try:
            yield
        finally:
            stop.set()


def _logs(stack: FaultStack, name: str) -> str:
    return (Path(stack.processes.log_dir) / f"{name}.log").read_text()


def _returned(stack: FaultStack) -> int:
    """How often an API process went back to the claims service after failing over."""
    return _logs(stack, "api").count("orders go to it again")


def _listening(stack: FaultStack) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(stack.processes.env["CLAIMS_ADDRESS"].removeprefix("unix:"))
        except OSError:
            return False
    return True


def test_killing_the_claims_service_mid_burst_loses_and_duplicates_nothing(faults: FaultStack) -> None:
    stack = faults
    sale = _sale(stack)
    returned = _returned(stack)
    with _buying(sale):
        time.sleep(2)
        stack.processes.child("claims").kill()  # SIGKILL: no goodbye, orders in flight
        killed = time.monotonic()
        time.sleep(4)
        stack.processes.restart("claims")
        restarted = time.monotonic()
        eventually(lambda: _listening(stack), timeout=60)  # its socket file was left behind: connect
        listening = time.monotonic()
        eventually(lambda: _returned(stack) >= returned + 2, timeout=10)  # both API processes
        time.sleep(3)
    # The restarted service placed orders: stopped (SIGTERM) now, it says how many batches.
    stack.processes.restart("claims")
    batches = [int(n) for n in re.findall(r"claims service stopped after (\d+) batches", _logs(stack, "claims"))]

    print("kill -9: answers by status, whole run:", dict(sale.statuses()),
          "| sent while the service was dead:", dict(sale.statuses(killed, listening)),
          f"| first order placed {sale.first_placed_after(killed):.2f} s after the kill",
          f"| the restarted service listened after {listening - restarted:.1f} s and placed",
          batches[-1:], "batches")  # fmt: skip
    _check_answers(sale, fault=killed, back=restarted)
    assert batches and batches[-1] > 0, batches  # once restarted, the service took orders again
    _check_store(sale)


def test_a_frozen_claims_service_is_passed_by_and_returned_to(faults: FaultStack) -> None:
    """SIGSTOP: the service accepts connections (the kernel does) but answers nothing, and may
    hold the writers' lock in an open transaction. The API processes' deadline passes them to
    their own writers; Postgres ends the frozen writer's idle transaction, freeing the lock."""
    stack = faults
    eventually(lambda: _listening(stack), timeout=60)
    sale = _sale(stack)
    claims = stack.processes.child("claims")
    with _buying(sale):
        eventually(lambda: sale.statuses()[201] > 100, timeout=30)
        returned = _returned(stack)
        os.kill(claims.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            time.sleep(5)
        finally:
            os.kill(claims.pid, signal.SIGCONT)
        thawed = time.monotonic()
        eventually(lambda: _returned(stack) >= returned + 2, timeout=10)  # both API processes
        time.sleep(2)
    print("SIGSTOP: answers by status, whole run:", dict(sale.statuses()),
          "| sent while the service was frozen:", dict(sale.statuses(frozen, thawed)),
          f"| first order placed {sale.first_placed_after(frozen):.2f} s after the freeze")  # fmt: skip
    _check_answers(sale, fault=frozen, back=thawed)
    _check_store(sale)


def _check_answers(sale: Sale, *, fault: float, back: float) -> None:
    statuses = sale.statuses()
    assert statuses[500] == 0 and statuses[0] == 0, statuses
    assert statuses[409] == 0, statuses  # never sold out: an order in flight refused as its own rival would be
    # Within 2 s of the fault, orders are placed again (by the API processes' own writers)...
    assert sale.first_placed_after(fault) < 2
    # ...and every order sent after that while the service was away is placed.
    late = sale.statuses(fault + 2, back)
    assert late and set(late) == {201}, late


def _check_store(sale: Sale) -> None:
    """From the event store: every 201 stored, nothing stored that its buyer was not told of or
    cannot recover with the key, the offer's claims exactly the stored orders' (one unit each:
    nothing claimed twice, nothing oversold)."""
    stored = _check_stored(sale)
    assert offer_claims(sale.stack, sale.show.ga_offer) == len(stored) <= STOCK


def _check_stored(sale: Sale) -> set[UUID]:
    """Every 201 stored, nothing stored that its buyer was not told of or cannot recover with the
    key; the stored orders."""
    stored = stored_orders(sale.stack, sale.show.ga_offer)
    placed = {order_id_for_idempotency_key(sale.ids[a.token], a.key) for a in sale.answers if a.status in (200, 201)}
    assert placed <= stored, "an order answered 201 is not stored"
    retryable = {order_id_for_idempotency_key(sale.ids[a.token], a.key) for a in sale.answers if a.status == 503}
    assert stored - placed <= retryable, "an order stored that its buyer was not told of, nor can recover"
    return stored
