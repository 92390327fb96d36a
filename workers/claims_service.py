"""The claims service process (`ticketing claims`): the one claim writer of the deployment.

See `commands/claims_client.py` for why and for the wire. It listens on CLAIMS_ADDRESS, admits
the peers that prove the claims secret (CLAIMS_SECRET; required over TCP), hands every order
they send to its `ClaimWriter`, and answers each connection with the outcomes of its requests, a
batch's outcomes in one frame. The writer's `after_commit` hook
(set by the composition root) schedules the expiry of the holds it placed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import signal
from functools import partial

import msgspec

from commands.claim_writer import ClaimWriter
from commands.claims import ClaimRequest, Placed
from commands.claims_client import (
    OK,
    WireOutcome,
    WireRequest,
    error_of,
    frame,
    parse_address,
    proof,
    read_frame,
    require_secret,
)
from domain.placement import ItemRequest

log = logging.getLogger("claims")


class ClaimServer:
    """Feeds the requests of every connected API process to the writer and answers them."""

    def __init__(self, writer: ClaimWriter, secret: str = "", *, handshake_seconds: float = 5.0) -> None:
        self.writer = writer
        self.secret = secret.encode()
        self.handshake_seconds = handshake_seconds
        self.refused = 0  # peers that did not prove the secret
        self._decode = msgspec.msgpack.Decoder(list[WireRequest]).decode
        self._encode = msgspec.msgpack.Encoder(uuid_format="bytes").encode

    async def serve(self, address: str, stop: asyncio.Event) -> None:
        where = parse_address(address)
        require_secret(where, self.secret.decode())
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

    async def _admit(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Challenge the peer; True once it answered with the HMAC of the challenge under the
        claims secret (a fresh challenge per connection: a recorded answer is worth nothing).
        A peer that hangs up first (a client whose own deadline passed) is not counted."""
        peer = _peer(writer)
        if self.writer.stalled():
            # Its orders would wait for ever: the API processes place theirs with their own
            # writers meanwhile, and the liveness probe, unanswered, gets this process restarted.
            log.error("the claim writer is stuck in one try for over %.0f s; turning %s away",
                      self.writer.stalled_after, peer)  # fmt: skip
            return False
        challenge = secrets.token_bytes(32)
        writer.write(frame(challenge))
        try:
            answer = await asyncio.wait_for(read_frame(reader, limit=64), self.handshake_seconds)
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
            return False
        except (ConnectionError, TimeoutError):  # an oversized frame, or no answer in time
            answer = b""
        if not hmac.compare_digest(answer, proof(self.secret, challenge)):
            self.refused += 1
            log.warning("refused a peer that did not prove the claims secret: %s", peer)
            return False
        writer.write(frame(OK))
        log.info("admitted %s", peer)
        return True

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve_connection(reader, writer)
        except asyncio.CancelledError:
            pass  # the service is stopping
        finally:
            writer.close()

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not await self._admit(reader, writer):
            return
        loop = asyncio.get_running_loop()
        outbox: list[WireOutcome] = []

        def flush() -> None:
            if outbox and not writer.is_closing():
                writer.write(frame(self._encode(outbox)))
            outbox.clear()

        def answer(ref: int, waiter: asyncio.Future[Placed]) -> None:
            if waiter.cancelled():
                return
            error = waiter.exception()
            if error is not None:
                outcome = WireOutcome(ref, error=error_of(error))
            else:
                placed = waiter.result()
                outcome = WireOutcome(ref, placed.order, placed.created, placed.position, placed.names)
            outbox.append(outcome)
            if len(outbox) == 1:  # the writer settles a batch at once: one frame for all of it
                loop.call_soon(flush)

        try:
            while True:
                requests = self._decode(await read_frame(reader))
                for r in requests:
                    waiter: asyncio.Future[Placed] = loop.create_future()
                    waiter.add_done_callback(partial(answer, r.ref))
                    items = [ItemRequest(i.offer_id, i.quantity, i.seat_id) for i in r.items]
                    self.writer.submit(ClaimRequest(r.buyer_id, r.order_id, items, r.idempotent, waiter=waiter))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the API process went away (its outcomes have nobody to go to)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.exception("unreadable frame from an API process; closing its connection")


def _peer(writer: asyncio.StreamWriter) -> str:
    """Who is at the other end, for the log (a Unix socket's peer has no name)."""
    try:
        name = writer.get_extra_info("peername")
    except (AttributeError, OSError):  # uvloop, once the peer has gone
        name = None
    return str(name) if name else "a peer on the socket"


def run_claims_service(writer: ClaimWriter, address: str, secret: str = "") -> None:
    """Serve `writer` on `address` until SIGTERM or SIGINT."""
    import uvloop

    try:
        require_secret(parse_address(address), secret)
    except ValueError as error:
        raise SystemExit(str(error)) from None

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await ClaimServer(writer, secret).serve(address, stop)

    uvloop.run(serve())
    log.info("claims service stopped after %d batches", writer.batches)
