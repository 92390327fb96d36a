"""Pages read one or two ahead of their consumer, in a thread of their own.

A report's whole-store replay alternates between waiting for Postgres to find the next page and
decoding the last one in Python. psycopg waits for the server without holding the GIL, so a
thread that fetches the next page while the caller decodes lets the two overlap on two cores.
Only the fetching moves to the thread: decoding stays with the caller (decoding in a second
thread was tried for the rebuild and gained nothing, both need the GIL).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_END: Any = object()


def ahead(items: Iterator[T], depth: int = 2) -> Generator[T, None, None]:
    """`items`, produced by a thread up to `depth` ahead of the caller, in the same order; an
    error the producer raises is raised here. When the caller stops early (closes this
    generator), the producer stops before its next item and the thread ends."""
    handoff: queue.Queue[tuple[Any, Exception | None]] = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                handoff.put((item, None))
            handoff.put((_END, None))
        except Exception as error:  # noqa: BLE001 - handed to the caller, raised there
            handoff.put((_END, error))

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = handoff.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # take what it still puts, so no put() blocks it for ever
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.05)
        thread.join()
