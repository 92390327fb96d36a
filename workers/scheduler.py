"""Periodic jobs: enqueue the hold sweep every SWEEP_INTERVAL_SECONDS."""

from __future__ import annotations

import logging
import signal
import threading
from typing import TYPE_CHECKING

from workers.tasks import build_broker, declare_actors, make_runtime

if TYPE_CHECKING:
    from ticketing import Settings

log = logging.getLogger("scheduler")


def run_scheduler(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    broker = build_broker(settings)
    actors = declare_actors(broker, make_runtime(settings))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("scheduler started: hold sweep every %ss", settings.sweep_interval_seconds)
    while not stop.is_set():
        actors.sweep_holds.send()
        stop.wait(settings.sweep_interval_seconds)
    broker.close()
