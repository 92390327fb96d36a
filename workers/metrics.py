"""Metrics of the background processes, and the directory every process of a stack writes its
metrics to.

Several processes serve one deployment (API workers, claims service, worker, projector), so the
metrics use prometheus_client's multiprocess mode: with `PROMETHEUS_MULTIPROC_DIR` set before a
process imports prometheus_client, each process keeps its values in files there, and the API's
`/metrics` adds them up. `fresh_multiprocess_dir` makes that directory for a stack, empty (files of
an earlier run would otherwise be added to this one's counters).

What is a level rather than a count (projection lag, holds, backlogs) is measured by a sampling
thread every few seconds with a query, and exported as a gauge in `mostrecent` mode: whichever
process sampled last is right, and a sampler that died and came back simply takes over.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge

from commands.metrics import process_id

if TYPE_CHECKING:
    from commands.boxoffice import BoxOffice
    from projections.base import ReadModel

log = logging.getLogger("metrics")

PROJECTION_LAG = Gauge(
    "ticketing_projection_lag_events",
    "Events stored but not yet applied by a read model (event store head minus its position)",
    ["model"],
    multiprocess_mode="mostrecent",
)
PROJECTION_POSITION = Gauge(
    "ticketing_projection_position",
    "Last event store position a read model applied",
    ["model"],
    multiprocess_mode="mostrecent",
)
EVENT_STORE_HEAD = Gauge(
    "ticketing_event_store_position", "Position of the last stored event", multiprocess_mode="mostrecent"
)
ACTIVE_HOLDS = Gauge(
    "ticketing_active_holds", "Orders holding inventory, not yet paid or released", multiprocess_mode="mostrecent"
)
WEBHOOK_BACKLOG = Gauge(
    "ticketing_webhook_backlog",
    "Stripe events stored by the API and not yet applied by a worker",
    multiprocess_mode="mostrecent",
)
MAIL_BACKLOG = Gauge("ticketing_mail_backlog", "Mails in the outbox not yet sent", multiprocess_mode="mostrecent")


def fresh_multiprocess_dir(env: Mapping[str, str], data_dir: Path, name: str) -> str:
    """The `PROMETHEUS_MULTIPROC_DIR` for a stack's processes: the environment's own if it names
    one (the operator's choice, left as it is), else `<data_dir>/metrics/<name>`, emptied."""
    if env.get("PROMETHEUS_MULTIPROC_DIR"):
        return env["PROMETHEUS_MULTIPROC_DIR"]
    path = data_dir / "metrics" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return str(path)


def forget_process(pid: int) -> None:
    """A child exited: drop its files of `live*` gauges (requests in progress), as
    prometheus_client asks of whoever supervises the processes."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(process_id(pid))  # type: ignore[no-untyped-call]


class Sampler:
    """Calls `sample` every `interval` seconds on a daemon thread; a failure (the database
    restarting) is logged and the next round tries again."""

    def __init__(self, name: str, sample: Callable[[], None], interval: float = 5.0) -> None:
        self.sample = sample
        self.interval = interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"metrics-{name}", daemon=True)

    def start(self) -> Sampler:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()

    def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception as error:  # noqa: BLE001 - a metric is never worth a crash
                log.warning("sampling metrics failed: %r", error)
            if self.stopping.wait(self.interval):
                return


def sample_read_models(app: BoxOffice, projections: Sequence[ReadModel[Any]]) -> Callable[[], None]:
    """The projector's sample: each read model's position and lag, and the holds it lists."""

    def sample() -> None:
        head = app.recorder.max_notification_id() or 0
        EVENT_STORE_HEAD.set(head)
        for projection in projections:
            position = projection.view.max_tracking_id(app.name) or 0
            PROJECTION_POSITION.labels(projection.name).set(position)
            PROJECTION_LAG.labels(projection.name).set(max(0, head - position))
        datastore: Any = projections[0].view.datastore
        with datastore.get_connection() as conn:
            row = conn.execute("SELECT count(*) AS n FROM read.holds").fetchone()
        ACTIVE_HOLDS.set(row["n"])

    return sample


def sample_backlogs(dsn: str, inbox_table: str = "public.inbox_events") -> Callable[[], None]:
    """The worker's sample: Stripe events without an outcome (a delivery's outcome is its second
    event) and unsent mails (a partial index covers them)."""
    import psycopg

    def sample() -> None:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            row = conn.execute(
                f"SELECT count(*) FILTER (WHERE originator_version = 1) - "
                f"count(*) FILTER (WHERE originator_version = 2) FROM {inbox_table}"
            ).fetchone()
            WEBHOOK_BACKLOG.set(row[0] if row else 0)
            row = conn.execute("SELECT count(*) FROM read.mail_outbox WHERE sent_at IS NULL").fetchone()
            MAIL_BACKLOG.set(row[0] if row else 0)

    return sample
