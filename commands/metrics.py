"""The business metrics the write side records: orders placed and refused, tickets issued, the
claim writer's batches.

They are prometheus_client metrics in the default registry. A deployment runs several processes
(API workers, the claims service, the worker); with `PROMETHEUS_MULTIPROC_DIR` set (`make run`,
the tests, compose) each process writes its values to files there and the API's `/metrics` adds
them up (`MultiProcessCollector`), so a counter is the deployment's total, whichever process
counted. Without it (a process on its own) they are the process's own, as usual.

Recording is a few dictionary lookups and an `inc`; nothing here talks to the network.

In multiprocess mode a process's files are named by `process_id()`, the host name and the pid,
not the pid alone: in compose each container has its own pid numbers (the API's and the worker's
are both 7) and they share the directory through a volume. Every module that defines metrics
imports this one first, so the naming is set before any metric exists.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Histogram, values

from domain.errors import DomainError

_HOST = socket.gethostname().replace("_", "-")  # `_` separates the parts of the files' names


def process_id(pid: int | None = None) -> str:
    """This process's name among the writers of the metrics directory. prometheus_client asks
    for it on every write (to notice a fork), so it costs a `getpid` and no more."""
    return f"{_HOST}-{os.getpid() if pid is None else pid}"


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    values.ValueClass = values.MultiProcessValue(process_id)  # type: ignore[no-untyped-call]

ORDERS_PLACED = Counter("ticketing_orders_placed_total", "Orders placed (holds created), by every claim writer")
ORDERS_REFUSED = Counter(
    "ticketing_orders_refused_total",
    "Orders the claim writer refused, by reason (the API error code: sold_out, seat_taken, busy, ...)",
    ["reason"],
)
TICKETS_ISSUED = Counter("ticketing_tickets_issued_total", "Tickets issued (orders paid, or confirmed when free)")
CLAIM_BATCH_SIZE = Histogram(
    "ticketing_claim_batch_size",
    "Orders decided and saved together in one claim batch (one transaction)",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 400),
)
STUCK_WRITERS_ENDED = Counter(
    "ticketing_stuck_writers_ended_total",
    "Sessions of writers stuck while holding a lock every writer waits for, ended so the others go on, by lock"
    " (claims: the claim writers' advisory lock; events_table: the event store's table lock)",
    ["lock"],
)
CLAIM_WAIT = Histogram(
    "ticketing_claim_wait_seconds",
    "From an order request reaching the claim writer's process to its answer (queue, decision, commit)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0),
)

_refused: dict[str, Any] = {}


def record_claim_batch(results: Iterable[tuple[Any, Any]]) -> None:
    """One answered claim batch: (request, outcome) pairs, the outcome a `Placed` or the exception
    the request is answered with. A request carries `queued` (its `time.monotonic()` on arrival)."""
    now = time.monotonic()
    size = placed = 0
    for request, outcome in results:
        size += 1
        CLAIM_WAIT.observe(now - request.queued)
        if isinstance(outcome, BaseException):
            reason = outcome.code if isinstance(outcome, DomainError) else "error"
            child = _refused.get(reason)
            if child is None:
                child = _refused[reason] = ORDERS_REFUSED.labels(reason)
            child.inc()
        elif outcome.created:
            placed += 1
    if size:
        CLAIM_BATCH_SIZE.observe(size)
    if placed:
        ORDERS_PLACED.inc(placed)


def record_tickets_issued(count: int) -> None:
    if count:
        TICKETS_ISSUED.inc(count)
