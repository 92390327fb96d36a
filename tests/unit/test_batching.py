"""Group commit across threads (workers/batching.py), with real threads."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from workers.batching import GroupCommit


def test_items_handed_in_while_a_batch_runs_go_together_into_the_next() -> None:
    batches: list[list[int]] = []

    def apply(items: list[int]) -> list[int]:
        batches.append(items)
        time.sleep(0.05)  # long enough for the other threads to arrive
        return [i * 10 for i in items]

    commit = GroupCommit(apply)
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(commit.commit, range(20)))
    assert results == [i * 10 for i in range(20)]
    assert sorted(i for batch in batches for i in batch) == list(range(20))  # each item once
    assert len(batches) < 20 and max(len(b) for b in batches) > 1


def test_an_item_alone_runs_at_once() -> None:
    commit: GroupCommit[str, str] = GroupCommit(lambda items: [s.upper() for s in items])
    assert commit.commit("a") == "A"
    assert commit.commit("b") == "B"


def test_a_batch_that_fails_fails_each_of_its_callers_and_the_next_batch_runs() -> None:
    first_running = threading.Event()
    release = threading.Event()
    calls: list[list[int]] = []

    def apply(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            first_running.set()
            release.wait(5)
            return items
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return items

    commit = GroupCommit(apply)
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(commit.commit, 0)
        assert first_running.wait(5)
        waiting = [pool.submit(commit.commit, i) for i in (1, 2)]
        time.sleep(0.1)  # both are waiting for the running batch
        release.set()
        assert first.result(5) == 0
        for future in waiting:
            with pytest.raises(RuntimeError, match="went away"):
                future.result(5)
    assert calls[1] == [1, 2]
    assert commit.commit(3) == 3


def test_a_batch_holds_at_most_limit_items() -> None:
    sizes: list[int] = []
    gate = threading.Event()

    def apply(items: list[int]) -> list[int]:
        sizes.append(len(items))
        gate.wait(5)
        return items

    commit = GroupCommit(apply, limit=3)
    with ThreadPoolExecutor(max_workers=10) as pool:
        futures = [pool.submit(commit.commit, i) for i in range(10)]
        time.sleep(0.2)
        gate.set()
        assert sorted(f.result(5) for f in futures) == list(range(10))
    assert max(sizes) <= 3 and sum(sizes) == 10
