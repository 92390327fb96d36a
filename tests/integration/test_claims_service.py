"""The claims service: orders sent over its socket are placed by its writer, answered with the
same order, refused with the same error family, code and field, and never oversold."""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import NamedTuple
from uuid import UUID, uuid4

import pytest

from commands.base import Busy
from commands.boxoffice import BoxOffice
from commands.claim_writer import ClaimWriter
from commands.claims import ClaimRequest, Placed, PlacedOrder
from commands.claims_client import OK, ClaimClient, answers_challenge, frame, read_frame
from domain.errors import Conflict, DomainError, Invalid, NotFound
from domain.ids import order_id_for_idempotency_key
from domain.offer import Offer
from domain.placement import ItemRequest
from tests.integration.conftest import OnSale, put_on_sale
from ticketing import Settings, open_boxoffice
from workers.claims_service import ClaimServer


class Served(NamedTuple):
    address: str
    writer: ClaimWriter


@pytest.fixture
def service(served: Served) -> str:
    return served.address


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    """A claims service (its own BoxOffice, as in its own process) on a fresh Unix socket."""
    app = open_boxoffice(settings)
    folder = tempfile.mkdtemp(prefix="claims-test-")
    address = f"unix:{folder}/claims.sock"
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()

    async def serve() -> None:
        serving = asyncio.ensure_future(ClaimServer(app.writer).serve(address, stop))
        while not Path(folder, "claims.sock").exists():
            await asyncio.sleep(0.01)
        ready.set()
        await serving

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield Served(address, app.writer)
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()
    app.close()


def place(client: ClaimClient, buyer: UUID, items: list[ItemRequest], key: str | None = None) -> asyncio.Future[Placed]:
    order_id = order_id_for_idempotency_key(buyer, key) if key else uuid4()
    waiter: asyncio.Future[Placed] = asyncio.get_running_loop().create_future()
    client.submit(ClaimRequest(buyer, order_id, items, key is not None, waiter=waiter))
    return waiter


def test_orders_placed_through_the_service_are_the_orders_its_writer_placed(
    service: str, boxoffice: BoxOffice, on_sale: OnSale
) -> None:
    async def scenario() -> None:
        client = ClaimClient(service)
        buyer = uuid4()
        ga, seated, again = await asyncio.gather(
            place(client, buyer, [ItemRequest(on_sale.ga_offer, 2)], key="k-1"),
            place(client, buyer, [ItemRequest(on_sale.seat_offer, 1, on_sale.seats[0])]),
            place(client, buyer, [ItemRequest(on_sale.ga_offer, 2)], key="k-1"),
        )
        for placed in (ga, seated):
            assert isinstance(placed.order, PlacedOrder) and placed.position is not None
            stored = boxoffice.get_order(placed.order.id)
            assert placed.order == PlacedOrder.of(stored)
            assert stored.status == "held" and stored.buyer_id == buyer
        # The same Idempotency-Key in the same batch: one order, the repeat not created.
        assert {ga.created, again.created} == {True, False}
        assert again.order.id == ga.order.id
        assert ga.names[on_sale.ga_offer] == ("GA", "GA")
        assert seated.order.items[0]["seat_id"] == on_sale.seats[0]
        await client.close()

    asyncio.run(scenario())


def test_refusals_keep_their_family_code_and_field(service: str, on_sale: OnSale) -> None:
    async def scenario() -> None:
        client = ClaimClient(service)
        await place(client, uuid4(), [ItemRequest(on_sale.seat_offer, 1, on_sale.seats[1])])
        cases: list[tuple[list[ItemRequest], type[DomainError], str]] = [
            ([ItemRequest(on_sale.seat_offer, 1, on_sale.seats[1])], Conflict, "seat_taken"),
            ([ItemRequest(on_sale.ga_offer, 11)], Invalid, "order_limit"),
            ([ItemRequest(uuid4(), 1)], NotFound, "offer_not_found"),
            ([ItemRequest(on_sale.ga_offer, 1, on_sale.seats[2])], Invalid, "invalid"),
        ]
        outcomes = await asyncio.gather(
            *(place(client, uuid4(), items) for items, _, _ in cases), return_exceptions=True
        )
        for (_, family, code), outcome in zip(cases, outcomes, strict=True):
            assert type(outcome) is family, outcome
            assert isinstance(outcome, DomainError) and outcome.code == code and outcome.message
        assert isinstance(outcomes[3], DomainError) and outcomes[3].field == "items"
        await client.close()

    asyncio.run(scenario())


def test_concurrent_buyers_through_the_service_never_oversell(service: str, boxoffice: BoxOffice) -> None:
    sale = put_on_sale(boxoffice, ga_quantity=50, seats=1)

    async def scenario() -> list[Placed | BaseException]:
        clients = [ClaimClient(service) for _ in range(2)]  # two API processes
        attempts = [place(clients[n % 2], uuid4(), [ItemRequest(sale.ga_offer, 1)]) for n in range(200)]
        outcomes = await asyncio.gather(*attempts, return_exceptions=True)
        for client in clients:
            await client.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    placed = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(placed) == 50
    assert all(isinstance(e, Conflict) and e.code == "sold_out" for e in refused)
    offer = boxoffice.load(sale.ga_offer, "offer", Offer)
    assert offer.held == 50
    for p in placed:
        assert boxoffice.get_order(p.order.id).status == "held"


def test_an_unreachable_service_or_a_lost_connection_is_busy(tmp_path: Path, on_sale: OnSale) -> None:
    async def scenario() -> None:
        missing = ClaimClient(f"unix:{tmp_path}/nobody.sock")
        with pytest.raises(Busy):
            await place(missing, uuid4(), [ItemRequest(on_sale.ga_offer, 1)])

        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(frame(b"c" * 32))  # admits the client (no secret on a Unix socket)
            await read_frame(reader)
            writer.write(frame(OK))
            await read_frame(reader)  # takes the order, then goes away without answering
            writer.close()

        server = await asyncio.start_unix_server(hang_up, path=str(tmp_path / "rude.sock"))
        async with server:
            rude = ClaimClient(f"unix:{tmp_path}/rude.sock")
            with pytest.raises(Busy, match="went away"):
                await asyncio.wait_for(place(rude, uuid4(), [ItemRequest(on_sale.ga_offer, 1)]), 5)

    asyncio.run(scenario())


def test_a_service_whose_writer_is_stuck_fails_its_liveness_probe_until_the_writer_moves_again(
    served: Served, boxoffice: BoxOffice, on_sale: OnSale, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe proves more than a running event loop: a writer stuck in one try (a deadlock,
    a call that never returns) turns new connections away, so the supervisor restarts the
    service and the API processes' clients stay with their own writers meanwhile."""
    service, writer = served
    writer.stalled_after = 0.5
    stuck, release = threading.Event(), threading.Event()
    really_attempt = writer._attempt

    def attempt_after_release(*args: object) -> object:
        stuck.set()
        release.wait(30)
        return really_attempt(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "_attempt", attempt_after_release)
    assert answers_challenge(service, 1.0)  # idle: alive
    placed: Future[Placed] = Future()
    writer.submit(ClaimRequest.new(uuid4(), [ItemRequest(on_sale.ga_offer, 1)], future=placed))
    assert stuck.wait(10)
    assert answers_challenge(service, 1.0)  # a try under way, not yet too long
    time.sleep(0.7)
    assert not answers_challenge(service, 1.0)
    assert not answers_challenge(service, 1.0)  # it stays turned away while stuck

    async def turned_away() -> None:  # an API process's client places with its own writer
        fallback = boxoffice.writer
        client = ClaimClient(service, fallback=fallback)
        waiter = asyncio.get_running_loop().create_future()
        client.submit(ClaimRequest.new(uuid4(), [ItemRequest(on_sale.ga_offer, 1)], waiter=waiter))
        outcome = await asyncio.wait_for(waiter, 10)
        assert outcome.created and not client.serving
        await client.close()

    asyncio.run(turned_away())
    release.set()
    assert placed.result(10).created  # the stuck order was placed once the writer moved
    assert answers_challenge(service, 1.0)
