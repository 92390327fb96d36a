"""The claims service is no single point of failure, and admits only its own peers.

- An API process whose service cannot be reached, goes away with orders in flight, or misses a
  deadline places those orders with its own writer (`fallback`), each exactly once: an order the
  service stored before it went away is found, not placed again; and once the service answers
  again, orders go to it again.
- Over TCP the service requires the claims secret and refuses a peer that does not prove it.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import msgspec
import psycopg
import pytest

from commands.base import Busy
from commands.boxoffice import BoxOffice
from commands.claims import ClaimRequest, Placed
from commands.claims_client import OK, ClaimClient, WireRequest, frame, proof, read_frame
from domain.ids import order_id_for_idempotency_key
from domain.offer import Offer
from domain.placement import ItemRequest
from tests.integration.conftest import OnSale, put_on_sale
from ticketing import Settings, open_boxoffice
from workers.claims_service import ClaimServer, run_claims_service


class Service:
    """A claims service in a thread of this process (its own BoxOffice, as in its own process)."""

    def __init__(self, settings: Settings, address: str, secret: str = "") -> None:
        self.app = open_boxoffice(settings)
        self.server = ClaimServer(self.app.writer, secret)
        self.address = address
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        serving = asyncio.ensure_future(self.server.serve(self.address, self._stop))
        await asyncio.sleep(0.2)
        self._listening.set()
        await serving
        others = asyncio.all_tasks() - {asyncio.current_task()}  # its connections
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def __enter__(self) -> Service:
        self._thread.start()
        assert self._listening.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()
        self.app.close()


@pytest.fixture
def socket_path() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="claims-failover-")
    yield f"{folder}/claims.sock"


def place(client: ClaimClient, buyer: UUID, items: list[ItemRequest], key: str) -> asyncio.Future[Placed]:
    waiter: asyncio.Future[Placed] = asyncio.get_running_loop().create_future()
    client.submit(ClaimRequest(buyer, order_id_for_idempotency_key(buyer, key), items, True, waiter=waiter))
    return waiter


def placed_events(settings: Settings, order_id: UUID) -> int:
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM public.boxoffice_events WHERE originator_id = %s AND originator_version = 1",
            (order_id,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_an_unreachable_service_fails_over_to_the_process_writer(
    socket_path: str, boxoffice: BoxOffice, on_sale: OnSale
) -> None:
    async def scenario() -> None:
        client = ClaimClient(f"unix:{socket_path}", fallback=boxoffice.writer, timeout=0.5)
        buyer = uuid4()
        started = time.monotonic()
        first = await place(client, buyer, [ItemRequest(on_sale.ga_offer, 1)], "k-1")
        assert time.monotonic() - started < 2
        assert first.created and boxoffice.get_order(first.order.id).status == "held"
        assert not client.serving and client.failovers == 1
        # While it is away, orders go straight to the writer (no wait for the service).
        started = time.monotonic()
        second = await place(client, buyer, [ItemRequest(on_sale.ga_offer, 1)], "k-2")
        assert second.created and time.monotonic() - started < 0.5
        await client.close()

    asyncio.run(scenario())


def test_an_order_in_flight_when_the_service_goes_away_is_placed_once(
    settings: Settings, socket_path: str, boxoffice: BoxOffice, on_sale: OnSale
) -> None:
    """The service stores the order, then dies before answering: the process's writer finds it
    stored (one `Order.Placed`), and the buyer is told it was placed (201), not refused."""
    service_app = open_boxoffice(settings)
    decode = msgspec.msgpack.Decoder(list[WireRequest]).decode

    async def stores_then_dies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        challenge = b"x" * 32
        writer.write(frame(challenge))
        assert await read_frame(reader) == proof(b"", challenge)
        writer.write(frame(OK))
        loop = asyncio.get_running_loop()
        for r in decode(await read_frame(reader)):
            waiter: asyncio.Future[Placed] = loop.create_future()
            items = [ItemRequest(i.offer_id, i.quantity, i.seat_id) for i in r.items]
            service_app.writer.submit(ClaimRequest(r.buyer_id, r.order_id, items, r.idempotent, waiter=waiter))
            assert (await waiter).created  # stored by the "service"...
        writer.transport.abort()  # ...which dies before it answers

    async def scenario() -> None:
        server = await asyncio.start_unix_server(stores_then_dies, path=socket_path)
        async with server:
            client = ClaimClient(f"unix:{socket_path}", fallback=boxoffice.writer, timeout=2)
            buyer = uuid4()
            placed = await place(client, buyer, [ItemRequest(on_sale.ga_offer, 2)], "k-flight")
            assert placed.created  # the buyer's order, new: 201
            assert client.resent == 1 and not client.serving
            assert placed_events(settings, placed.order.id) == 1
            offer = boxoffice.load(on_sale.ga_offer, "offer", Offer)
            assert offer.held == 2  # claimed once
            await client.close()

    try:
        asyncio.run(scenario())
    finally:
        service_app.close()


def test_a_hung_service_misses_its_deadline_and_the_client_returns_when_it_answers(
    settings: Settings, socket_path: str, boxoffice: BoxOffice, on_sale: OnSale
) -> None:
    async def hangs(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(b"h" * 32))
        await read_frame(reader)
        writer.write(frame(OK))
        await reader.read()  # reads, never answers

    async def scenario() -> None:
        client = ClaimClient(f"unix:{socket_path}", fallback=boxoffice.writer, timeout=0.5, retry_seconds=0.2)
        server = await asyncio.start_unix_server(hangs, path=socket_path)
        buyer = uuid4()
        async with server:
            started = time.monotonic()
            placed = await place(client, buyer, [ItemRequest(on_sale.ga_offer, 1)], "k-hung")
            waited = time.monotonic() - started
            assert placed.created and 0.5 <= waited < 2, waited
            assert not client.serving and client.resent == 1
        Path(socket_path).unlink(missing_ok=True)
        # The real service comes up on the same address: orders go to it again.
        with Service(settings, f"unix:{socket_path}") as service:
            deadline = time.monotonic() + 5
            n = 0
            while not client.serving:
                assert time.monotonic() < deadline, "the client never went back to the service"
                n += 1
                assert (await place(client, buyer, [ItemRequest(on_sale.ga_offer, 1)], f"k-{n}")).created
                await asyncio.sleep(0.1)
            before = service.app.writer.batches
            again = await place(client, buyer, [ItemRequest(on_sale.ga_offer, 1)], "k-back")
            assert again.created and service.app.writer.batches == before + 1
            await client.close()
        assert placed_events(settings, placed.order.id) == 1

    asyncio.run(scenario())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_over_tcp_a_peer_without_the_secret_is_refused(settings: Settings, boxoffice: BoxOffice) -> None:
    sale = put_on_sale(boxoffice, ga_quantity=5, seats=1)
    address = f"127.0.0.1:{free_port()}"
    secret = "s3cret-" + "z" * 30
    encode = msgspec.msgpack.Encoder(uuid_format="bytes").encode
    buyer = uuid4()
    forged = WireRequest(1, buyer, uuid4(), False, [])

    async def scenario(service: Service) -> None:
        host, port = address.split(":")
        # A peer that sends an order straight away (no proof): cut off, nothing placed.
        reader, writer = await asyncio.open_connection(host, int(port))
        await read_frame(reader)  # the challenge
        writer.write(frame(encode([forged])))
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await asyncio.wait_for(read_frame(reader), 5)
        writer.close()
        # A peer that answers the challenge with another secret: refused the same way.
        reader, writer = await asyncio.open_connection(host, int(port))
        challenge = await read_frame(reader)
        writer.write(frame(proof(b"guess", challenge)))
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await asyncio.wait_for(read_frame(reader), 5)
        writer.close()
        assert service.server.refused == 2
        # A client with the wrong secret (and no fallback) cannot place orders; with it, can.
        wrong = ClaimClient(address, secret="not-it", timeout=2)
        with pytest.raises(Busy):
            await place(wrong, buyer, [ItemRequest(sale.ga_offer, 1)], "k-wrong")
        right = ClaimClient(address, secret=secret, timeout=2)
        placed = await place(right, buyer, [ItemRequest(sale.ga_offer, 1)], "k-right")
        assert placed.created
        await right.close()

    with Service(settings, address, secret) as service:
        asyncio.run(scenario(service))
    assert boxoffice.load(sale.ga_offer, "offer", Offer).held == 1  # only the admitted client's order


def test_over_tcp_the_service_will_not_start_without_a_secret(boxoffice: BoxOffice) -> None:
    with pytest.raises(SystemExit, match="CLAIMS_SECRET"):
        run_claims_service(boxoffice.writer, f"127.0.0.1:{free_port()}", "")

    async def serve() -> None:
        await ClaimServer(boxoffice.writer).serve(f"127.0.0.1:{free_port()}", asyncio.Event())

    with pytest.raises(ValueError, match="CLAIMS_SECRET"):
        asyncio.run(serve())


def test_without_a_fallback_a_request_the_service_leaves_unanswered_is_busy_at_its_deadline(
    socket_path: str, on_sale: OnSale
) -> None:
    async def hangs(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(b"h" * 32))
        await read_frame(reader)
        writer.write(frame(OK))
        await reader.read()

    async def scenario() -> None:
        server = await asyncio.start_unix_server(hangs, path=socket_path)
        async with server:
            client = ClaimClient(f"unix:{socket_path}", timeout=0.3)
            started = time.monotonic()
            with pytest.raises(Busy, match="did not answer"):
                await asyncio.wait_for(place(client, uuid4(), [ItemRequest(on_sale.ga_offer, 1)], "k"), 5)
            assert time.monotonic() - started < 1.5
            await client.close()

    asyncio.run(scenario())
