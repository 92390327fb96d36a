"""The claims service's client: the other adapter of the claims port (`commands/claims.py`),
and the wire both ends speak.

Why a service: with a claim writer in every API process, the writers take turns on a hot show
through an advisory lock, and each one first fast-forwards the seats and offers the other one
has just changed; each also shares its process's GIL with that process's HTTP event loop. The
claims service (`ticketing claims`, `workers/claims_service.py`) runs the one `ClaimWriter` of
the deployment in a process of its own: its aggregates are always current (it wrote them),
nobody waits for a turn, and the API processes only parse, authenticate and answer.

The wire: a Unix socket (or TCP inside a private network) carrying length-prefixed msgpack
frames (UUIDs as 16 bytes). Each frame carries every request (or outcome) that queued up during
one turn of the sender's event loop, so a batch of orders costs a few writes, not one per order.
An outcome carries the `PlacedOrder`, whether it is new, the store position the read models must
reach, and the offer names; a refusal carries its error family, message, code and field, and is
raised again on the API side as the same family.

If the service cannot be reached, or the connection drops with orders in flight, those orders
get `Busy` (503, "retry"): an order in flight may or may not have been placed, which is what an
`Idempotency-Key` is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
from typing import NamedTuple
from uuid import UUID

import msgspec

from commands.base import Busy
from commands.claims import ClaimRequest, Placed, PlacedOrder
from domain.errors import Conflict, DomainError, Forbidden, Gone, Invalid, NotFound

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


class WireError(msgspec.Struct, array_like=True, frozen=True):
    family: str  # a FAMILIES key, or "internal" for anything that is not a domain refusal
    message: str
    code: str
    field: str | None


class WireOutcome(msgspec.Struct, array_like=True, frozen=True):
    ref: int
    order: PlacedOrder | None = None
    created: bool = False
    position: int | None = None
    names: dict[UUID, tuple[str, str]] = {}
    error: WireError | None = None


def frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes:
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


def error_of(error: BaseException) -> WireError:
    if isinstance(error, DomainError):
        family = next(c.__name__ for c in type(error).__mro__ if c.__name__ in FAMILIES)
        return WireError(family, error.message, error.code, error.field)
    return WireError("internal", f"{type(error).__name__}: {error}", "internal_error", None)


def raise_from(error: WireError | None) -> BaseException:
    family = FAMILIES.get(error.family) if error is not None else None
    if error is None or family is None:
        return RuntimeError(f"the claims service failed: {error.message if error else 'no outcome'}")
    return family(error.message, code=error.code, field=error.field)


class ClaimClient:
    """An API process's connection to the claims service (opened on first use, reopened after
    a failure): the `Claims` port. Each outcome, the `Placed` order or the refusal, arrives in
    the request's `waiter` (requests come from an event loop here, never from threads)."""

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
        self._writer.write(frame(payload))

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
                for outcome in self._decode(await read_frame(reader)):
                    waiter = self._pending.pop(outcome.ref, None)
                    if waiter is None or waiter.done():
                        continue
                    if outcome.order is not None:
                        waiter.set_result(Placed(outcome.order, outcome.created, outcome.position, outcome.names))
                    else:
                        waiter.set_exception(raise_from(outcome.error or WireError("internal", "no outcome", "", None)))
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
