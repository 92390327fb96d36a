"""How the long-running processes use Python's cyclic garbage collector.

CPython's collector scans its oldest generation in a full pass whenever the objects promoted
there since the last pass reach a quarter of what lives there. A serving process promotes every
object that is alive across a few young collections (each request in flight is, for the ~150 ms
it waits in an on-sale), so the full pass came round every second or two. Each pass walked
everything the process had built at start-up (modules, the app, its routes and schemas: ~150,000
objects in an API process) and, in the claims service, every seat it had cached. Measured with
`gc.callbacks` during `hot-seats`: 7-15 full passes per process, each 60-270 ms of wall time
(the claims process spent 1.9 s of a 12 s run in them), each one stalling every request in
flight in that process.

So a serving process, once started (`settle`), freezes what it built so far (it lives as long
as the process, so no pass needs to look at it again), collects its young generations ten
times less often (the cost of a young pass grows with what survived, not with how often it
runs, so this mostly saves the fixed cost per pass), and has the full pass run only after a
hundred middle-generation passes instead of ten. Cyclic garbage is still collected, only later.
What is frozen is what start-up built and keeps; if a little of it became cyclic garbage later
it would stay (a bounded amount: freezing happens once).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

SERVING_THRESHOLDS = (7_000, 10, 100)
BULK_THRESHOLDS = (10_000, 20, 20)


def settle() -> None:
    """Call once a serving process has built what it keeps for its lifetime."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_THRESHOLDS)


@contextlib.contextmanager
def bulk() -> Iterator[None]:
    """For a replay, which allocates millions of short-lived objects: the collector's passes
    over the interpreter's long-lived objects (modules, classes, the libraries' tables) cost
    about a fifth of its CPU. Those are frozen out of collection, and the young generations
    collected less often, until it ends; then everything is as before (a settled process is
    settled again)."""
    thresholds = gc.get_threshold()
    was_settled = gc.get_freeze_count() > 0
    gc.freeze()
    gc.set_threshold(*BULK_THRESHOLDS)
    try:
        yield
    finally:
        gc.unfreeze()
        if was_settled:
            settle()
        gc.set_threshold(*thresholds)


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """For a report's replay into memory (`ticketing report`), which keeps hundreds of thousands
    of small objects (orders, their lines and tickets) and makes no reference cycles: even with
    `bulk`'s thresholds the collector's passes over what the report keeps cost about a quarter of
    a whole-store replay (measured: 0.69 -> 0.51 s on a 63,000-event store), so it does not run
    at all until the replay ends. Whatever cyclic garbage there is is collected afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
