"""Group commit across the threads of a worker process.

A dramatiq worker runs each message in one of its threads. Messages that change the same
aggregate (the payments of one hot show all sell from its offer) would each load, change and
save it, colliding with each other. Handed to a `GroupCommit` instead, the first thread to
arrive runs its item; whatever the other threads hand in meanwhile waits, and the next thread
to get its turn runs all of it in one batch. Nobody waits for a timer: a batch is what queued
up during the previous one, so at low load each item runs alone, at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """`commit(item)` runs `apply` on a batch holding the item and returns the item's result;
    `apply` gets the batch's items (at most `limit`, in the order handed in) and returns one
    result per item. If `apply` raises, every caller of that batch gets the exception."""

    def __init__(self, apply: Callable[[list[Item]], list[Result]], *, limit: int = 200) -> None:
        self.apply = apply
        self.limit = limit
        self._waiting: list[tuple[Item, Future[Result]]] = []
        self._guard = threading.Lock()  # the waiting list
        self._turn = threading.Lock()  # one batch at a time

    def commit(self, item: Item) -> Result:
        future: Future[Result] = Future()
        with self._guard:
            self._waiting.append((item, future))
        while not future.done():
            with self._turn:
                if future.done():
                    break
                with self._guard:
                    batch, self._waiting = self._waiting[: self.limit], self._waiting[self.limit :]
                self._run(batch)
        return future.result()

    def _run(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        try:
            results = self.apply([item for item, _ in batch])
        except Exception as error:  # noqa: BLE001 - handed to every caller of the batch
            for _, future in batch:
                future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
