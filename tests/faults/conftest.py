"""A stack of its own for fault tests: its own Postgres cluster, Redis, localstripe and mail sink,
and its own service processes, so stopping Redis or restarting Postgres here never disturbs the
other tests. Module-scoped: each fault module starts from a healthy stack."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from tests.conftest import start_service
from tests.e2e.conftest import stateless_client
from ticketing import ROOT, Settings, migrate
from workers.embedded import EmbeddedServices
from workers.localstripe import STRIPE_WEBHOOK_PATH, register_localstripe_webhook
from workers.supervisor import Liveness, ServiceProcesses

FAULT_DATA = Path(os.environ.get("TICKETING_TEST_DATA") or ROOT / ".data" / "test") / "faults"
# What the embedded services stand in for: none of it may leak in from the developer's shell.
SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "STRIPE_API_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET",
                     "SMTP_HOST", "SMTP_PORT")  # fmt: skip


@dataclass
class FaultStack:
    services: EmbeddedServices
    processes: ServiceProcesses
    env: dict[str, str]
    settings: Settings
    client: httpx.Client

    @property
    def base_url(self) -> str:
        return self.processes.base_url


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultStack]:
    with fault_stack() as stack:
        yield stack


@contextlib.contextmanager
def fault_stack(
    supervise: Callable[[str], None] | None = None,
    extra_env: Mapping[str, str] | None = None,
    liveness: Liveness | None = None,
) -> Iterator[FaultStack]:
    """A fresh stack; with `supervise`, its processes are restarted when they exit or (the claims
    service) stop answering their liveness probe, as `make run` does, and what the supervisor says
    goes there."""
    FAULT_DATA.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    services = EmbeddedServices(FAULT_DATA, base, fresh=True)
    with services as overrides:
        env = {
            **base,
            **overrides,
            "DATA_DIR": str(FAULT_DATA),
            "JWT_SECRET": "faults-" + "y" * 40,
            "RATE_LIMITS_ENABLED": "true",
            "RATE_LIMIT_LOGIN": "100000/minute",
            "RATE_LIMIT_REGISTER": "100000/minute",
            "RATE_LIMIT_ORDERS": "100000/minute",
            "SWEEP_INTERVAL_SECONDS": "1",
            "PROJECTION_WAIT_SECONDS": "2",
            **(extra_env or {}),
        }
        settings = Settings.from_env(env)
        migrate(settings)
        processes = start_service(env, "faults", web_workers=2)
        processes.supervise = supervise
        processes.liveness = liveness or processes.liveness
        with processes, stateless_client(processes.base_url) as client:
            register_localstripe_webhook(
                overrides["STRIPE_API_BASE"],
                url=processes.base_url + STRIPE_WEBHOOK_PATH,
                secret=overrides["STRIPE_WEBHOOK_SECRET"],
            )
            yield FaultStack(services, processes, env, settings, client)


def eventually(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(every)


def verified_buyer(stack: FaultStack, role: str = "attendee") -> str:
    """A new account of this stack with a verified address; its access token."""
    from uuid import UUID, uuid4

    from tests.e2e.conftest import PASSWORD
    from ticketing import open_accounts

    email = f"{role}-{uuid4().hex[:10]}@example.com"
    r = stack.client.post("/auth/register", json={"email": email, "username": email[:20], "password": PASSWORD,
                                                  "role": role})  # fmt: skip
    assert r.status_code == 201, r.text
    accounts = open_accounts(stack.settings)
    try:
        accounts.mark_verified(UUID(r.json()["user"]["id"]))
    finally:
        accounts.close()
    login = stack.client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    token: str = login.json()["access_token"]
    return token


def admin(stack: FaultStack) -> str:
    from uuid import uuid4

    from tests.e2e.conftest import PASSWORD
    from ticketing import create_admin

    email = f"admin-{uuid4().hex[:8]}@example.com"
    create_admin(stack.settings, email=email, password=PASSWORD, username="admin")
    r = stack.client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def stored_orders(stack: FaultStack, offer_id: str) -> set[UUID]:
    """The orders of this offer the event store holds (their `Order.Placed`), read from the table."""
    with psycopg.connect(stack.settings.database_url) as conn:
        rows = conn.execute(
            "SELECT originator_id FROM public.boxoffice_events WHERE originator_version = 1 "
            "AND topic LIKE %s AND convert_from(state, 'UTF8') LIKE %s",
            ("%Order.Placed", f"%{UUID(offer_id).hex}%"),
        ).fetchall()
    return {r[0] for r in rows}


def offer_claims(stack: FaultStack, offer_id: str) -> int:
    """Units of the offer held or sold, as the event store's offer says."""
    from ticketing import open_boxoffice

    app = open_boxoffice(stack.settings)
    try:
        offer = app.get_offer(UUID(offer_id))
        return int(offer.held + offer.sold)
    finally:
        app.close()
