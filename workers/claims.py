"""The claims service process (`ticketing claims`): the one claim writer of the deployment.

See `commands/claims_remote.py` for why and how. It listens on CLAIMS_ADDRESS, places every
order the API processes send through its `ClaimWriter`, and schedules the expiry of the holds
it placed (one delayed dramatiq message per batch), as the API processes do with their own
writers when no claims service is configured.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING

from commands import heap
from commands.claims_remote import ClaimServer
from commands.setup import open_boxoffice
from workers.tasks import build_broker, declare_actors, make_runtime

if TYPE_CHECKING:
    from ticketing import Settings

log = logging.getLogger("claims")


def run_claims_service(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not settings.claims_address:
        raise SystemExit("CLAIMS_ADDRESS is not set: say where the claims service listens (unix:/path or host:port)")
    import uvloop

    boxoffice = open_boxoffice(settings)
    broker = build_broker(settings)
    actors = declare_actors(broker, make_runtime(settings))
    boxoffice.claims.after_commit = actors.schedule_expiries
    heap.settle()

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await ClaimServer(boxoffice).serve(settings.claims_address, stop)

    try:
        uvloop.run(serve())
    finally:
        log.info("claims service stopped after %d batches", boxoffice.claims.batches)
        boxoffice.close()
        broker.close()
