"""The claims service process (`ticketing claims`): the one claim writer of the deployment.

See `commands/claims_client.py` for why and for the wire. It listens on CLAIMS_ADDRESS, hands
every order the API processes send to its `ClaimWriter`, and answers each connection with the
outcomes of its requests, a batch's outcomes in one frame. The writer's `after_commit` hook
(set by the composition root) schedules the expiry of the holds it placed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from functools import partial

import msgspec

from commands.claim_writer import ClaimWriter
from commands.claims import ClaimRequest, Placed
from commands.claims_client import WireOutcome, WireRequest, error_of, frame, parse_address, read_frame
from domain.placement import ItemRequest

log = logging.getLogger("claims")


class ClaimServer:
    """Feeds the requests of every connected API process to the writer and answers them."""

    def __init__(self, writer: ClaimWriter) -> None:
        self.writer = writer
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
        finally:
            writer.close()


def run_claims_service(writer: ClaimWriter, address: str) -> None:
    """Serve `writer` on `address` until SIGTERM or SIGINT."""
    import uvloop

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await ClaimServer(writer).serve(address, stop)

    uvloop.run(serve())
    log.info("claims service stopped after %d batches", writer.batches)
