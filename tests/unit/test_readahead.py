"""Pages read ahead in a thread (projections/readahead.py): same items, same order, errors
raised to the caller, and no thread left behind when the caller stops early."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from projections.readahead import ahead


def _threads() -> int:
    return sum(t.name == "read-ahead" for t in threading.enumerate())


def test_items_arrive_in_order() -> None:
    assert list(ahead(iter(range(1000)))) == list(range(1000))
    assert list(ahead(iter([]))) == []
    assert _threads() == 0


def test_an_error_of_the_producer_is_raised_to_the_caller_after_what_came_before() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("the database went away")

    got = []
    with pytest.raises(RuntimeError, match="went away"):
        for item in ahead(pages()):
            got.append(item)
    assert got == [1, 2]
    assert _threads() == 0


def test_stopping_early_ends_the_thread_and_fetches_little_more() -> None:
    produced = []

    def pages() -> Iterator[int]:
        for n in range(10_000):
            produced.append(n)
            yield n

    items = ahead(pages(), depth=2)
    assert next(items) == 0
    time.sleep(0.05)
    items.close()
    assert _threads() == 0
    assert len(produced) <= 5  # the one taken, up to `depth` queued, one in hand
