"""Periodic jobs, every SWEEP_INTERVAL_SECONDS: the hold sweep, the payment reconciler, the
sweep of cancelled shows and the waitlist sweep; each is the safety net of a message that may
have been lost."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import dramatiq
from redis.exceptions import RedisError

from workers.processes import StopSignal

if TYPE_CHECKING:
    from workers.tasks import Actors

log = logging.getLogger("scheduler")


def run_scheduler(actors: Actors, interval: float) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = StopSignal()
    log.info(
        "scheduler started: hold sweep, payment reconciler, cancelled-show, waitlist and mail sweeps every %ss",
        interval,
    )
    periodic = (
        actors.sweep_holds,
        actors.reconcile_payments,
        actors.sweep_cancelled_events,
        actors.sweep_waitlists,
        actors.sweep_mail,
    )
    while not stop.received:
        for actor in periodic:
            try:
                actor.send()
            except (RedisError, dramatiq.errors.BrokerConnectionError) as error:
                # The queue is down: nothing to hand work to; try again next period.
                log.warning("could not queue %s: %r", actor.actor_name, error)
                break
        stop.wait(interval)
