"""One claim writer for all API processes: the claims service and its client.

With a claim writer in every API process (`commands/claims.py`), the writers take turns on a
hot show through an advisory lock, and each one first fast-forwards the seats and offers the
other one has just changed; each also shares its process's GIL with that process's HTTP event
loop. The claims service (`ticketing claims`, `workers/claims.py`) runs the one `ClaimWriter`
of the deployment in a process of its own: its aggregates are always current (it wrote them),
nobody waits for a turn, and the API processes only parse, authenticate and answer.

The API processes reach it over a Unix socket (or TCP inside a private network) with
length-prefixed msgpack frames (UUIDs as 16 bytes). Each frame carries every request (or
outcome) that queued up during one turn of the sender's event loop, so a batch of orders costs a
few writes, not one per order. Outcomes carry what the API answers with: the order's fields, whether it is new, the
store position the read models must reach, and the offer names; a refusal carries its error
family, message, code and field, and is raised again on the API side as the same family.

If the service cannot be reached, or the connection drops with orders in flight, those orders
get `Busy` (503, "retry"): an order in flight may or may not have been placed, which is what an
`Idempotency-Key` is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import struct
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, NamedTuple
from uuid import UUID

import msgspec

from commands.base import Busy
from commands.claims import ClaimRequest, ItemRequest, Placed
from domain.errors import Conflict, DomainError, Forbidden, Gone, Invalid, NotFound
from domain.order import Order, OrderItem

if TYPE_CHECKING:
    from commands.sales import SalesCommands

log = logging.getLogger("claims")

_LENGTH = struct.Struct("!I")
MAX_FRAME = 64 * 1024 * 1024
# The refusal families the API maps to statuses, by name (most specific first).
FAMILIES: dict[str, type[DomainError]] = {
    cls.__name__: cls for cls in (Busy, Invalid, Conflict, Gone, NotFound, Forbidden, DomainError)
}


class WireItem(msgspec.Struct, array_like=True, frozen=True):
    offer_id: UUID
    quantity: int
    seat_id: UUID | None


class WireRequest(msgspec.Struct, array_like=True, frozen=True):
    ref: int
    buyer_id: UUID
    order_id: UUID
    idempotent: bool
    items: list[WireItem]


class WireOrder(msgspec.Struct, array_like=True, frozen=True):
    """The fields of a placed order that its answer shows (`api.orders.placed_order`)."""

    id: UUID
    status: str
    payment_status: str
    event_id: UUID
    buyer_id: UUID
    items: list[OrderItem]
    currency: str
    ticket_count: int
    placed_at: datetime
    hold_expires_at: datetime | None
    closed_at: datetime | None
    payment_intent_id: str | None
    paid_at: datetime | None
    last_payment_error: str | None
    subtotal: int
    fees: int
    total: int
    amount_paid: int
    amount_refunded: int

    @classmethod
    def of(cls, order: Order) -> WireOrder:
        return cls(**{name: getattr(order, name) for name in cls.__struct_fields__})


class WireError(msgspec.Struct, array_like=True, frozen=True):
    family: str  # a FAMILIES key, or "internal" for anything that is not a domain refusal
    message: str
    code: str
    field: str | None


class WireOutcome(msgspec.Struct, array_like=True, frozen=True):
    ref: int
    order: WireOrder | None = None
    created: bool = False
    position: int | None = None
    names: dict[UUID, tuple[str, str]] = {}
    error: WireError | None = None


def _frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > MAX_FRAME:
        raise ConnectionError(f"frame of {length} bytes refused")
    return await reader.readexactly(length)


class Address(NamedTuple):
    path: str | None  # a Unix socket, or None for TCP
    host: str
    port: int


def parse_address(address: str) -> Address:
    """`unix:/path/to.sock` or `host:port`."""
    if address.startswith("unix:"):
        return Address(address[5:], "", 0)
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"CLAIMS_ADDRESS must be unix:/path or host:port, not {address!r}")
    return Address(None, host.strip("[]"), int(port))


def _error_of(error: BaseException) -> WireError:
    if isinstance(error, DomainError):
        family = next(c.__name__ for c in type(error).__mro__ if c.__name__ in FAMILIES)
        return WireError(family, error.message, error.code, error.field)
    return WireError("internal", f"{type(error).__name__}: {error}", "internal_error", None)


def _raise_from(error: WireError | None) -> BaseException:
    family = FAMILIES.get(error.family) if error is not None else None
    if error is None or family is None:
        return RuntimeError(f"the claims service failed: {error.message if error else 'no outcome'}")
    return family(error.message, code=error.code, field=error.field)


# -- the service side ---------------------------------------------------------------------------


class ClaimServer:
    """Feeds the requests of every connected API process to `app.claims` and answers them."""

    def __init__(self, app: SalesCommands) -> None:
        self.app = app
        self._decode = msgspec.msgpack.Decoder(list[WireRequest]).decode
        self._encode = msgspec.msgpack.Encoder(uuid_format="bytes").encode

    async def serve(self, address: str, stop: asyncio.Event) -> None:
        where = parse_address(address)
        if where.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(where.path)  # a socket left behind by a process that was killed
            server = await asyncio.start_unix_server(self._connection, path=where.path)
            os.chmod(where.path, 0o600)
        else:
            server = await asyncio.start_server(self._connection, host=where.host, port=where.port)
        log.info("claims service listening on %s", address)
        async with server:
            await stop.wait()
        if where.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(where.path)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        outbox: list[WireOutcome] = []

        def flush() -> None:
            if outbox and not writer.is_closing():
                writer.write(_frame(self._encode(outbox)))
            outbox.clear()

        def answer(ref: int, waiter: asyncio.Future[Placed]) -> None:
            if waiter.cancelled():
                return
            error = waiter.exception()
            if error is not None:
                outcome = WireOutcome(ref, error=_error_of(error))
            else:
                placed = waiter.result()
                order = placed.order if isinstance(placed.order, Order) else None
                outcome = WireOutcome(
                    ref, WireOrder.of(order) if order else None, placed.created, placed.position, placed.names
                )
            outbox.append(outcome)
            if len(outbox) == 1:  # the writer settles a batch at once: one frame for all of it
                loop.call_soon(flush)

        try:
            while True:
                requests = self._decode(await _read_frame(reader))
                for r in requests:
                    waiter: asyncio.Future[Placed] = loop.create_future()
                    waiter.add_done_callback(partial(answer, r.ref))
                    items = [ItemRequest(i.offer_id, i.quantity, i.seat_id) for i in r.items]
                    self.app.claims.submit(
                        ClaimRequest(r.buyer_id, r.order_id, items, r.idempotent, None, waiter=waiter)
                    )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the API process went away (its outcomes have nobody to go to)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.exception("unreadable frame from an API process; closing its connection")
        finally:
            writer.close()


# -- the API side -------------------------------------------------------------------------------


class ClaimClient:
    """An API process's connection to the claims service (opened on first use, reopened after
    a failure). It takes `ClaimRequest`s as a `ClaimWriter` does; each outcome, the `Placed`
    order (its `order` a `WireOrder`) or the refusal, arrives in the request's `waiter`."""

    def __init__(self, address: str, *, connect_timeout: float = 5.0) -> None:
        self.where = parse_address(address)
        self.connect_timeout = connect_timeout
        self._refs = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Placed]] = {}
        self._outbox: list[WireRequest] = []
        self._writer: asyncio.StreamWriter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._encode = msgspec.msgpack.Encoder(uuid_format="bytes").encode
        self._decode = msgspec.msgpack.Decoder(list[WireOutcome]).decode

    def submit(self, request: ClaimRequest) -> None:
        """Send a request from the running event loop (its `waiter` belongs to that loop)."""
        waiter = request.waiter
        if waiter is None:
            raise ValueError("the claims service answers requests from an event loop (a waiter)")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new event loop (tests): start afresh
            self._reset(Busy("the claims connection was reset, please retry"))
            self._loop = loop
        ref = next(self._refs)
        self._pending[ref] = waiter
        wire_items = [WireItem(i.offer_id, i.quantity, i.seat_id) for i in request.items]
        self._outbox.append(WireRequest(ref, request.buyer_id, request.order_id, request.idempotent, wire_items))
        if len(self._outbox) == 1:
            if self._writer is not None and not self._writer.is_closing():
                loop.call_soon(self._flush)
            elif self._connecting is None:
                self._connecting = loop.create_task(self._connect())

    def _flush(self) -> None:
        if not self._outbox or self._writer is None:
            return
        payload = self._encode(self._outbox)
        self._outbox = []
        self._writer.write(_frame(payload))

    async def _connect(self) -> None:
        try:
            if self.where.path is not None:
                opening = asyncio.open_unix_connection(self.where.path)
            else:
                opening = asyncio.open_connection(self.where.host, self.where.port)
            reader, writer = await asyncio.wait_for(opening, self.connect_timeout)
        except (OSError, TimeoutError) as error:
            log.warning("claims service not reachable at %s: %s", self.where, error)
            self._reset(Busy("the order service is not reachable, please retry"))
            return
        finally:
            self._connecting = None
        self._writer = writer
        asyncio.get_running_loop().create_task(self._read(reader, writer))
        self._flush()

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                for outcome in self._decode(await _read_frame(reader)):
                    waiter = self._pending.pop(outcome.ref, None)
                    if waiter is None or waiter.done():
                        continue
                    if outcome.order is not None:
                        waiter.set_result(Placed(outcome.order, outcome.created, outcome.position, outcome.names))
                    else:
                        waiter.set_exception(
                            _raise_from(outcome.error or WireError("internal", "no outcome", "", None))
                        )
        except (asyncio.IncompleteReadError, ConnectionError, msgspec.DecodeError, msgspec.ValidationError) as error:
            log.warning("lost the claims service connection: %r", error)
        finally:
            if self._writer is writer:
                # In flight: placed or not, nobody can tell from here; the client may retry
                # with its Idempotency-Key.
                self._reset(Busy("the order service went away while placing the order, please retry"))
            writer.close()

    def _reset(self, error: DomainError) -> None:
        waiters = list(self._pending.values())
        self._pending = {}
        self._outbox = []
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for waiter in waiters:
            if not waiter.done():
                with contextlib.suppress(RuntimeError):  # its event loop is closed (tests)
                    waiter.set_exception(error)

    async def close(self) -> None:
        self._reset(Busy("the service is shutting down"))
