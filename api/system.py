"""Liveness, readiness (database, redis, projection lag) and Prometheus metrics.

`/health` and the verdict of `/ready` are public (load balancers, orchestrators); the metrics and
the detail of `/ready` (store positions, set-aside events) only for METRICS_TOKEN or an admin
(`api/security.py: is_operator`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get

from api.observability import METRICS_CONTENT_TYPE, exposition
from api.security import is_operator, operators_only
from api.services import Services


class Health(msgspec.Struct):
    status: str


class SetAside(msgspec.Struct):
    """An event a read model could not apply (see `ticketing projections errors`)."""

    model: str
    position: int
    topic: str
    originator_id: UUID
    error: str
    attempts: int
    last_failed_at: datetime


class Readiness(msgspec.Struct, omit_defaults=True):
    """`status` for everyone; the rest only for operators (METRICS_TOKEN or an admin)."""

    status: str
    database: bool | None = None
    redis: bool | None = None
    event_store_position: int | None = None
    read_model_position: int | None = None
    projection_lag: int | None = None
    # Events set aside by read models: the API and the other models carry on, an operator
    # fixes the cause and runs `ticketing projections retry` (or rebuilds the model).
    projection_errors: int | None = None
    projection_error_list: list[SetAside] | None = None


class Metrics(Controller):
    """The Prometheus exposition of the whole deployment (every process's metrics added up, see
    `api/observability.py: exposition`), for METRICS_TOKEN or an admin only."""

    path = "/metrics"
    tags = ["System"]
    guards = [operators_only]

    @get(operation_id="MetricsGet", sync_to_thread=True)  # the id it had as Litestar's PrometheusController
    def metrics(self) -> Response[bytes]:
        """Prometheus metrics of every process of the deployment (text exposition format)."""
        # In a thread: the multiprocess collector reads one file per process and metric type.
        return Response(exposition(), media_type=METRICS_CONTENT_TYPE)


class SystemController(Controller):
    path = "/"
    tags = ["System"]
    include_in_schema = True

    @get("/health", operation_id="health", exclude_from_auth=True)
    async def health(self) -> Health:
        """The process is alive."""
        return Health(status="ok")

    @get("/ready", operation_id="ready", exclude_from_auth=True)
    async def ready(self, services: Services, request: Request[Any, Any, Any]) -> Response[Readiness]:
        """Database and Redis answer, and the read models are not far behind the event store
        (200 `ok`, else 503 `degraded`); the detail with METRICS_TOKEN or an admin's token."""
        database = redis_ok = False
        head = errors = 0
        set_aside: list[SetAside] = []
        try:
            async with services.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT coalesce(max(notification_id), 0) AS head FROM public.boxoffice_events"
                )
                row: Any = await cur.fetchone()
                head = int(row["head"])
                cur = await conn.execute(
                    "SELECT model, notification_id, topic, originator_id, error, attempts, last_failed_at, "
                    "count(*) OVER () AS total FROM read.projection_errors ORDER BY notification_id LIMIT 20"
                )
                rows = await cur.fetchall()
                errors = int(rows[0]["total"]) if rows else 0
                set_aside = [
                    SetAside(r["model"], r["notification_id"], r["topic"], r["originator_id"], r["error"],
                             r["attempts"], r["last_failed_at"])
                    for r in rows
                ]  # fmt: skip
                database = True
        except Exception:  # noqa: BLE001 - readiness reports failures, it does not raise them
            database = False
        try:
            redis_ok = bool(await services.redis.ping())
        except Exception:  # noqa: BLE001
            redis_ok = False
        position = services.watcher.position
        lag = max(0, head - position)
        ok = database and redis_ok and lag < 10_000
        if not is_operator(request):
            return Response(Readiness(status="ok" if ok else "degraded"), status_code=200 if ok else 503)
        body = Readiness(
            status="ok" if ok else "degraded",
            database=database,
            redis=redis_ok,
            event_store_position=head,
            read_model_position=position,
            projection_lag=lag,
            projection_errors=errors,
            projection_error_list=set_aside,
        )
        return Response(body, status_code=200 if ok else 503)
