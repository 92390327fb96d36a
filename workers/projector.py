"""The read models' processes: the live runner (`ticketing projections run`), rebuilds
(`ticketing projections rebuild`), and the operator's view of events set aside.

Everything takes the event store's settings as an `eventsourcing` env dict (`env`), which the
composition root derives from DATABASE_URL; the read models are opened by name
(`projections.models`).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from eventsourcing.persistence import Notification

from commands.boxoffice import BoxOffice
from projections.apply import TRANSIENT, apply_batch, errors_of, record_skipped_positions, retry_set_aside
from projections.base import ReadModel
from projections.models import READ_MODELS, open_projection, open_view
from projections.replay import replay
from workers import heap
from workers.metrics import Sampler, sample_read_models
from workers.processes import Backoff, StopSignal

log = logging.getLogger("projections")
BATCH_SIZE = 2000


class Runner:
    """Follows the BoxOffice notification log and applies it to read models in batches.

    A reader thread iterates the library's LISTEN/NOTIFY subscription into a queue; the
    applying thread drains whatever has arrived (up to BATCH_SIZE) into one transaction for all
    its read models, decoding each event once. Models that are behind (say, after one was
    rebuilt) are caught up from the earliest position among them.
    """

    def __init__(self, app: BoxOffice, projections: list[ReadModel[Any]]) -> None:
        self.app = app
        self.projections = projections
        self.name = "+".join(p.name for p in projections)
        self.queue: queue.Queue[Notification | None] = queue.Queue(maxsize=BATCH_SIZE * 4)
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        start = min((p.view.max_tracking_id(app.name) or 0) for p in projections)
        self.subscription = app.recorder.subscribe(gt=start)
        self.threads = [
            threading.Thread(target=self._read, name=f"{self.name}-read", daemon=True),
            threading.Thread(target=self._apply, name=f"{self.name}-apply", daemon=True),
        ]

    def start(self) -> None:
        self.subscription.__enter__()
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.subscription.stop()
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=10)

    def drop_broken_connections(self) -> None:
        """Test the pooled connections and drop the broken ones: a restarted Postgres cuts them
        all, and the next runner would otherwise fail again on the first stale one it takes."""
        datastores = [getattr(self.app.recorder, "datastore", None)] + [p.view.datastore for p in self.projections]
        for datastore in {id(d): d for d in datastores if d is not None}.values():
            with contextlib.suppress(Exception):  # down again: the next runner finds out
                datastore.pool.check()

    def _read(self) -> None:
        try:
            for notification in self.subscription:
                self.queue.put(notification)
        except BaseException as error:  # noqa: BLE001 - reported by the supervising loop
            self.error = error
        finally:
            self.stopping.set()
            self.queue.put(None)

    def _apply(self) -> None:
        # Models that may skip batches with nothing for them (the notifier) have what they skipped
        # recorded once no event has come for as long as they may wait.
        idle = [p for p in self.projections if p.view.idle_position_seconds is not None]
        wait = min((p.view.idle_position_seconds or 0 for p in idle), default=None)
        try:
            while not self.stopping.is_set() or not self.queue.empty():
                try:
                    first = self.queue.get(timeout=wait)
                except queue.Empty:
                    record_skipped_positions(idle)
                    continue
                if first is None:
                    break  # what was skipped is read again after a restart, and does nothing
                batch = [first]
                while len(batch) < BATCH_SIZE:
                    try:
                        item = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        self.stopping.set()
                        break
                    batch.append(item)
                apply_batch(self.projections, self.app, batch)
        except BaseException as error:  # noqa: BLE001 - reported by the supervising loop
            self.error = error
            self.stopping.set()


def run_forever(env: dict[str, str]) -> None:
    """Run every read model until SIGTERM/SIGINT.

    Events a model cannot apply are set aside by `apply_batch` and never stop it; if the runner
    itself fails (Postgres restarting, the connection lost), it is started again from the
    positions the models recorded, after a pause that grows up to 30 s while failures repeat.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    projections = [open_projection(env, name) for name in READ_MODELS]

    def opened(app: BoxOffice) -> None:
        heap.settle()  # what the process keeps for its lifetime is built
        Sampler("read-models", sample_read_models(app, projections)).start()  # lag, holds: workers/metrics.py

    app = OpenOnce(env, on_open=opened)
    # One runner for all read models: one subscription, one decode and one transaction per batch.
    run_until_stopped(lambda: Runner(app(), projections), "read models")
    app.close()


class OpenOnce:
    """The BoxOffice application of a runner, opened on first use: with Postgres down when the
    process starts, opening it fails (after its pool's 30 s wait) with a TRANSIENT error, and
    `run_until_stopped` tries again after its pause instead of the process exiting."""

    def __init__(self, env: dict[str, str], *, on_open: Callable[[BoxOffice], None] = lambda app: None) -> None:
        self.env = env
        self.on_open = on_open
        self.app: BoxOffice | None = None

    def __call__(self) -> BoxOffice:
        if self.app is None:
            self.app = BoxOffice(env=self.env)
            self.on_open(self.app)
        return self.app

    def close(self) -> None:
        if self.app is not None:
            self.app.close()


def run_until_stopped(make_runner: Callable[[], Runner], what: str) -> None:
    """Run what `make_runner` makes until SIGTERM/SIGINT, starting it again after a failure
    (Postgres restarting, the connection lost) from the positions its models recorded, after a
    pause that grows up to 30 s while failures repeat (`Backoff`). It never gives up: a store
    that is down for minutes is waited for, not a reason to exit."""
    done = StopSignal()
    backoff = Backoff()
    while not done.received:
        try:
            runner = make_runner()
        except TRANSIENT as error:
            pause = backoff.failed()
            log.warning("%s cannot start yet (%r); trying again in %.1f s", what, error, pause)
            done.wait(pause)
            continue
        runner.start()
        log.info("%s started", what)
        started = time.monotonic()
        # `stopping` is set by the runner's threads when they end, with or without an error.
        while not done.wait(0.5) and not runner.stopping.is_set():
            pass
        runner.stop()
        runner.join()
        if done.received:
            break
        failure = runner.error or RuntimeError("the subscription to the event store ended")
        pause = backoff.failed(time.monotonic() - started)
        log.error("%s stopped (%r); starting again in %.1f s", what, failure, pause, exc_info=failure)
        done.wait(pause)
        runner.drop_broken_connections()


def list_errors(env: dict[str, str]) -> list[dict[str, Any]]:
    """The events read models have set aside, oldest first."""
    view = open_view(env, next(iter(READ_MODELS.values())))
    try:
        with view.datastore.transaction() as curs:
            return [dict(row) for row in errors_of(curs)]
    finally:
        view.datastore.close()


def retry_errors(env: dict[str, str], name: str | None = None) -> dict[str, tuple[int, int]]:
    """Apply again the events set aside by one read model or all; per model (applied, still failing)."""
    names = [name] if name else list(READ_MODELS)
    unknown = [n for n in names if n not in READ_MODELS]
    if unknown:
        raise SystemExit(f"unknown read model {unknown[0]!r}; known: {', '.join(READ_MODELS)}")
    app = BoxOffice(env=env)
    try:
        out: dict[str, tuple[int, int]] = {}
        for model in names:
            projection = open_projection(env, model)
            try:
                out[model] = retry_set_aside(projection, app)
            finally:
                projection.view.datastore.close()
        return out
    finally:
        app.close()


# Read models rebuilt side by side, one process per group, so a rebuild uses two cores: the
# catalog follows the show, offer and seat events; the others the order events.
GROUPS: tuple[tuple[str, ...], ...] = (("catalog",), ("orders", "holds", "tickets"))


def rebuild(
    env: dict[str, str],
    name: str | None = None,
    *,
    page: int = 5000,
    parallel: bool = True,
    progress: Callable[[int, int], None] = lambda position, last: None,
) -> dict[str, int]:
    """Drop and rebuild read models from the event store; returns events applied per model.

    Each group of models (GROUPS) is rebuilt in one pass over its events (each event read and
    decoded once), in one transaction holding the group's locks: the live runner pauses,
    readers keep seeing the old tables until the new ones commit. With several groups, the
    first is rebuilt here and the others in child processes, all up to the same position; they
    commit only once every group has finished (if one fails, none commits; only a failure of
    COMMIT itself could leave one group rebuilt and another not, each still consistent).
    `progress` is told the store position this process's pass has reached, and the last one.
    """
    names = [name] if name else list(READ_MODELS)
    unknown = [n for n in names if n not in READ_MODELS]
    if unknown:
        raise SystemExit(f"unknown read model {unknown[0]!r}; known: {', '.join(READ_MODELS)}")
    groups = [[n for n in group if n in names] for group in GROUPS]
    groups = [group for group in groups if group] or [[]]
    groups[0] += [n for n in names if not any(n in group for group in GROUPS)]  # models of no group
    if not parallel:
        groups = [names]
    app = BoxOffice(env=env)
    projections = [open_projection(env, model) for model in groups[0]]
    try:
        max_id = app.recorder.max_notification_id() or 0
        with Siblings(env, groups[1:], page, max_id) as siblings, heap.bulk():
            applied = replay(
                app,
                projections,
                page,
                max_id,
                locked=siblings.start,
                before_commit=siblings.finish,
                read_up_to=lambda position: progress(position, max_id),
            )
        applied.update(siblings.applied)
        return {n: applied[n] for n in names}
    finally:
        for projection in projections:
            projection.view.datastore.close()
        app.close()


class Siblings:
    """Groups of read models rebuilt in child processes, committed together with ours.

    Protocol on each child's socket: we send (env, models, page, max_id); the child sends
    ("ready", applied) when only its commit is left, or ("error", text); we answer "commit" or
    "abort"; after committing it sends ("committed", None).
    """

    def __init__(self, env: dict[str, str], groups: list[list[str]], page: int, max_id: int) -> None:
        self.env = env
        self.groups = groups
        self.page = page
        self.max_id = max_id
        self.children: list[tuple[subprocess.Popen[bytes], Connection, str]] = []
        self.applied: dict[str, int] = {}

    def __enter__(self) -> Siblings:
        return self

    def start(self) -> None:
        """Start the children (after our locks are held: the live runner takes the locks in
        model order, the catalog first, so it never holds one of theirs while waiting for ours).

        A child is a fresh interpreter running `_rebuild_child` (not multiprocessing's spawn,
        which would re-run the caller's main module), talking over a socket pair."""
        for group in self.groups:
            ours, theirs = socket.socketpair()
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    "-c",
                    f"from workers.projector import _rebuild_child; _rebuild_child({theirs.fileno()})",
                ],
                pass_fds=[theirs.fileno()],
                cwd=Path(__file__).resolve().parent.parent,  # where `projections` is importable from
            )
            theirs.close()
            pipe = Connection(ours.detach())
            pipe.send((self.env, group, self.page, self.max_id))
            self.children.append((process, pipe, "+".join(group)))

    def finish(self, applied: dict[str, int]) -> None:
        """Wait until every child is ready, then have them commit; raise if one could not."""
        for process, pipe, name in self.children:
            kind, payload = _receive(process, pipe)
            if kind != "ready":
                raise RuntimeError(f"rebuilding {name} failed:\n{payload}")
            self.applied.update(payload)
        for _, pipe, _ in self.children:
            pipe.send("commit")
        for process, pipe, name in self.children:
            kind, payload = _receive(process, pipe)
            if kind != "committed":
                raise RuntimeError(f"committing {name} failed:\n{payload}")

    def __exit__(self, *exc: object) -> None:
        for process, pipe, _ in self.children:
            with contextlib.suppress(OSError):
                pipe.send("abort")  # ignored by a child that already committed
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            pipe.close()


def _receive(process: subprocess.Popen[bytes], pipe: Connection) -> tuple[str, Any]:
    try:
        message: tuple[str, Any] = pipe.recv()
    except EOFError:
        return "error", f"the process exited (code {process.wait(timeout=5)})"
    return message


def _rebuild_child(fd: int) -> None:
    """A child of `rebuild`: rebuild the models it is sent up to `max_id`, commit when told to."""
    pipe = Connection(fd)
    env, names, page, max_id = pipe.recv()

    def ready(applied: dict[str, int]) -> None:
        pipe.send(("ready", applied))
        if pipe.recv() != "commit":
            raise _Aborted

    app = BoxOffice(env=env)
    projections = [open_projection(env, model) for model in names]
    try:
        with heap.bulk():
            replay(app, projections, page, max_id, before_commit=ready)
        pipe.send(("committed", None))
    except _Aborted:
        pass
    except BaseException:
        with contextlib.suppress(OSError):
            pipe.send(("error", traceback.format_exc()))
        raise
    finally:
        for projection in projections:
            projection.view.datastore.close()
        app.close()


class _Aborted(Exception):
    """Another group failed: roll this one back."""


def list_positions(env: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for model, projection_class in READ_MODELS.items():
        view = open_view(env, projection_class)
        out[model] = view.max_tracking_id(BoxOffice.name) or 0
        view.datastore.close()
    return out
