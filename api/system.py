"""Liveness, readiness (database, redis, projection lag) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Response, get

from api.services import Services


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    database: bool
    redis: bool
    event_store_position: int
    read_model_position: int
    projection_lag: int


class SystemController(Controller):
    path = "/"
    tags = ["System"]
    include_in_schema = True

    @get("/health", operation_id="health", exclude_from_auth=True)
    async def health(self) -> Health:
        """The process is alive."""
        return Health(status="ok")

    @get("/ready", operation_id="ready", exclude_from_auth=True)
    async def ready(self, services: Services) -> Response[Readiness]:
        """Database and Redis answer, and the read models are not far behind the event store."""
        database = redis_ok = False
        head = 0
        try:
            async with services.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT coalesce(max(notification_id), 0) AS head FROM public.boxoffice_events"
                )
                row: Any = await cur.fetchone()
                head = int(row["head"])
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
        body = Readiness(
            status="ok" if ok else "degraded",
            database=database,
            redis=redis_ok,
            event_store_position=head,
            read_model_position=position,
            projection_lag=lag,
        )
        return Response(body, status_code=200 if ok else 503)
