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

Peers prove they hold the claims secret (CLAIMS_SECRET) before anything else: the service sends
a random challenge, the client answers with its HMAC under the secret, and a peer that cannot is
cut off. Over TCP the secret is required (`require_secret`); on the Unix socket (the default of
`make run`, mode 0600) it may be empty.

No single point of failure: if the service cannot be reached, drops the connection, or misses
a request's deadline (CLAIMS_TIMEOUT_SECONDS), the client fails over to its `fallback`, the API
process's own `ClaimWriter`, which takes turns with the service and the other processes' writers
through the advisory lock and fast-forwards what they changed. Orders in flight are handed over
too, marked `resent`: whichever writer comes second looks their ids up (under the lock) and finds
them stored, so an order is never placed twice (its id is fixed before it is first sent: derived
from the Idempotency-Key, or drawn once). While the service is down the client tries it again
every `retry_seconds`, and goes back to it once it has answered the handshake. Without a fallback
(tests), those orders get `Busy` (503, "retry").
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import logging
import socket
import struct
import time
from dataclasses import replace
from typing import NamedTuple
from uuid import UUID

import msgspec

from commands.base import Busy
from commands.claims import ClaimRequest, Claims, Placed, PlacedOrder
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


async def read_frame(reader: asyncio.StreamReader, limit: int = MAX_FRAME) -> bytes:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > limit:
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


def answers_challenge(address: str, timeout: float) -> bool:
    """A liveness probe: True when the service at `address` sends a new connection its
    challenge within `timeout` seconds: its event loop runs, and its writer is not stuck (a
    service whose writer is, `ClaimWriter.stalled`, turns every new connection away). The probe
    then hangs up, which the service takes as a peer that left, not as one that failed the secret."""
    where = parse_address(address)
    family = socket.AF_UNIX if where.path is not None else socket.AF_INET6 if ":" in where.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(where.path if where.path is not None else (where.host, where.port))
            header = probe.recv(_LENGTH.size, socket.MSG_WAITALL)
        except OSError:  # refused, unreachable, or no challenge in time (TimeoutError)
            return False
    return len(header) == _LENGTH.size


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


HELLO = b"ticketing-claims/1 "
# Deadlines a request waits at most while the service answers others (its writer answers in
# order, so that is a busy service: a slow store, a big batch). Past 20 s (with the default 1 s;
# the writer's own limit for an unreachable store is 15 s) it is passed on all the same.
MAX_WAITS = 20
OK = b"ok"


def proof(secret: bytes, challenge: bytes) -> bytes:
    """What a peer answers to the service's challenge: its HMAC under the claims secret."""
    return hmac.new(secret, HELLO + challenge, hashlib.sha256).digest()


def require_secret(where: Address, secret: str) -> None:
    """The one rule of who may listen how: over TCP only with a secret (a Unix socket is guarded
    by its file mode)."""
    if where.path is None and not secret:
        raise ValueError("the claims service listens on TCP: set CLAIMS_SECRET (the same in every process)")


class ClaimClient:
    """An API process's connection to the claims service (opened on first use, reopened after
    a failure): the `Claims` port, failing over to `fallback` (the process's own writer) while the
    service is away. Each outcome, the `Placed` order or the refusal, arrives in the request's
    `waiter` (requests come from an event loop here, never from threads)."""

    def __init__(
        self,
        address: str,
        *,
        fallback: Claims | None = None,
        secret: str = "",
        timeout: float = 1.0,
        retry_seconds: float = 0.5,
    ) -> None:
        self.where = parse_address(address)
        self.fallback = fallback
        self.secret = secret.encode()
        self.timeout = timeout  # for the handshake, and for every request's answer
        self.retry_seconds = retry_seconds
        self._refs = itertools.count(1)
        self._pending: dict[int, ClaimRequest] = {}  # sent or queued, by ref (oldest first)
        self._outbox: list[WireRequest] = []
        self._writer: asyncio.StreamWriter | None = None
        self._generation = 0  # of the connection: a deadline check outliving its connection is void
        self._heard = 0.0  # when the service last sent a frame (monotonic)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._down_since: float | None = None  # the service is away (with a fallback): since when
        self._tried = 0.0  # the last attempt to reach it
        self.failovers = 0  # times the service was found away
        self.resent = 0  # in-flight requests handed to the fallback
        self._encode = msgspec.msgpack.Encoder(uuid_format="bytes").encode
        self._decode = msgspec.msgpack.Decoder(list[WireOutcome]).decode

    @property
    def serving(self) -> bool:
        """Whether orders go to the service now (not to the fallback)."""
        return self._down_since is None

    def submit(self, request: ClaimRequest) -> None:
        """Send a request from the running event loop (its `waiter` belongs to that loop)."""
        waiter = request.waiter
        if waiter is None:
            raise ValueError("the claims service answers requests from an event loop (a waiter)")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new event loop (tests): start afresh
            self._drop(Busy("the claims connection was reset, please retry"))
            self._loop = loop
            self._connecting = None  # a task of the old loop never finishes
            self._down_since = None
        if self._down_since is not None and self.fallback is not None:
            self.fallback.submit(request)
            if self._connecting is None and time.monotonic() - self._tried >= self.retry_seconds:
                self._connecting = loop.create_task(self._connect())  # is it back?
            return
        ref = next(self._refs)
        self._pending[ref] = request
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
        last = self._outbox[-1].ref
        self._outbox = []
        self._writer.write(frame(payload))
        loop = asyncio.get_running_loop()
        loop.call_later(self.timeout, self._check_deadline, self._generation, last, False)

    def _check_deadline(self, generation: int, ref: int, confirming: bool, sent: float | None = None) -> None:
        """`ref`'s deadline has passed: if it (or an older request) is still unanswered and the
        service has been silent as long, the service is hung. Confirmed once more a moment later,
        so an answer already read off the socket but not yet handled is not taken for silence.
        A service that keeps answering others is busy, not hung, but only up to `MAX_WAITS`
        deadlines: past that the request is passed on all the same."""
        if generation != self._generation or not self._pending or next(iter(self._pending)) > ref:
            return
        now = time.monotonic()
        sent = now - self.timeout if sent is None else sent
        loop = asyncio.get_running_loop()
        if now - self._heard < self.timeout and now - sent < MAX_WAITS * self.timeout:
            loop.call_later(self.timeout, self._check_deadline, generation, ref, False, sent)
        elif not confirming:
            loop.call_later(0.05, self._check_deadline, generation, ref, True, sent)
        else:
            self._fail_over(f"did not answer within {now - sent:.1f} s")

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect, and prove the secret to the service (its challenge answered)."""
        if self.where.path is not None:
            reader, writer = await asyncio.open_unix_connection(self.where.path)
        else:
            reader, writer = await asyncio.open_connection(self.where.host, self.where.port)
        try:
            challenge = await read_frame(reader, limit=64)
            writer.write(frame(proof(self.secret, challenge)))
            if await read_frame(reader, limit=64) != OK:
                raise ConnectionError("the claims service did not accept this process")
        except BaseException:
            writer.close()
            raise
        return reader, writer

    async def _connect(self) -> None:
        self._tried = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(self._open(), self.timeout)
        except Exception as error:  # noqa: BLE001 - refused, timed out, turned away, anything: not there
            if self._down_since is None:
                log.warning("claims service not reachable at %s: %r", self.where, error)
            self._connecting = None
            self._fail_over("is not reachable")
            return
        self._connecting = None
        if self._down_since is not None:
            log.warning("claims service back after %.1f s; orders go to it again", time.monotonic() - self._down_since)
            self._down_since = None
        self._generation += 1
        self._writer = writer
        self._heard = time.monotonic()
        asyncio.get_running_loop().create_task(self._read(reader, writer))
        self._flush()

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                outcomes = self._decode(await read_frame(reader))
                self._heard = time.monotonic()
                for outcome in outcomes:
                    request = self._pending.pop(outcome.ref, None)
                    waiter = request.waiter if request is not None else None
                    if waiter is None or waiter.done():
                        continue
                    if outcome.order is not None:
                        waiter.set_result(Placed(outcome.order, outcome.created, outcome.position, outcome.names))
                    else:
                        waiter.set_exception(raise_from(outcome.error or WireError("internal", "no outcome", "", None)))
        except (asyncio.IncompleteReadError, ConnectionError, msgspec.DecodeError, msgspec.ValidationError) as error:
            if self._writer is writer:
                log.warning("lost the claims service connection: %r", error)
        finally:
            if self._writer is writer:
                self._fail_over("went away while placing the order")
            writer.close()

    def _fail_over(self, reason: str) -> None:
        """The service is away: hand every request waiting for it to the fallback, marked
        `resent` if it was sent (it may have been stored), and send new ones there until the
        service answers again. Without a fallback, they get `Busy` (retry with the key)."""
        if self.fallback is None:
            self._drop(Busy(f"the order service {reason}, please retry"))
            return
        unsent = {wire.ref for wire in self._outbox}
        requests = [(request, ref not in unsent) for ref, request in self._pending.items()]
        self._pending = {}
        self._outbox = []
        self._close_connection()
        if self._down_since is None:
            self._down_since = time.monotonic()
            self.failovers += 1
            log.warning("the claims service %s: %d orders in flight go to this process's writer", reason, len(requests))
        for request, sent in requests:
            self.resent += sent
            self.fallback.submit(replace(request, resent=sent) if sent else request)

    def _close_connection(self) -> None:
        self._generation += 1
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _drop(self, error: DomainError) -> None:
        waiters = [request.waiter for request in self._pending.values()]
        self._pending = {}
        self._outbox = []
        self._close_connection()
        for waiter in waiters:
            if waiter is not None and not waiter.done():
                with contextlib.suppress(RuntimeError):  # its event loop is closed (tests)
                    waiter.set_exception(error)

    async def close(self) -> None:
        self._drop(Busy("the service is shutting down"))
