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


def test_a_report_replay_pauses_the_collector_and_restores_it() -> None:
    assert gc.isenabled()
    with heap.paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with heap.paused():
            pass
        assert not gc.isenabled()  # one that was off stays off
    finally:
        gc.enable()


def test_a_paused_replay_ends_with_the_collector_on_after_an_error() -> None:
    with pytest.raises(RuntimeError), heap.paused():
        raise RuntimeError("the replay failed")
    assert gc.isenabled()
