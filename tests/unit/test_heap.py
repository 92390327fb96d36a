"""The serving processes' collector settings (workers/heap.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from workers import heap


@pytest.fixture(autouse=True)
def restore_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settle_freezes_what_start_up_built_and_collects_less_often() -> None:
    built = [[n] for n in range(10)]  # something start-up built and keeps
    assert any(o is built for o in gc.get_objects())
    heap.settle()
    assert gc.get_threshold() == heap.SERVING_THRESHOLDS
    assert gc.get_freeze_count() > 0
    assert not any(o is built for o in gc.get_objects())  # no generation holds it: no pass walks it


def test_a_replay_in_a_settled_process_leaves_it_settled() -> None:
    heap.settle()
    with heap.bulk():
        assert gc.get_threshold() == heap.BULK_THRESHOLDS
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == heap.SERVING_THRESHOLDS


def test_a_replay_elsewhere_leaves_nothing_frozen() -> None:
    before = gc.get_threshold()
    with heap.bulk():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
