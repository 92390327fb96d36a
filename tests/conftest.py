"""Test set-up: the real stack (Postgres, Redis, localstripe, SMTP sink) for the session.

With DATABASE_URL / REDIS_URL / Stripe / SMTP settings in the environment those services are
used; otherwise the embedded defaults are started under .data/test (fresh for every run).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ticketing import ROOT, Settings
from workers.embedded import EmbeddedServices
from workers.localstripe import STRIPE_WEBHOOK_PATH, register_localstripe_webhook
from workers.supervisor import ServiceProcesses

# TICKETING_TEST_DATA lets two suites run side by side on one machine (each needs its own).
TEST_DATA = Path(os.environ.get("TICKETING_TEST_DATA") or ROOT / ".data" / "test")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Two orderings over the shared test database.

    The hold-expiry integration tests run first, before the e2e stack is started: they let
    thousands of holds lapse on purpose, and the stack's scheduler (sweeping the same store
    every 2 s) would expire them under the tests' feet (it did, in `.ci/run`).

    The browser tests run last: the slowest to set up, and their 20,000-seat house would add a
    minute to the one-event-per-batch rebuild of tests/integration/test_projections.py (a rebuild
    was once quadratic in such a house: see README, Rebuilding read models)."""

    def rank(item: pytest.Item) -> int:
        if "tests/integration/test_expiry.py" in item.nodeid:
            return 0
        return 2 if "tests/browser/" in item.nodeid else 1

    items.sort(key=rank)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test` runs two pytest-xdist workers (-n 2): on one, the tests that need no stack or
    bring their own (`tests/unit`; `tests/faults`, each module on a stack of its own, mostly
    waiting for processes to die, restart and catch up); on the other, everything on the session's
    shared stack, in the order above. Either alone leaves CPU idle: the suite takes about the
    time of the longer half.

    A scheduler of our own, since `--dist loadgroup` with `xdist_group` marks no longer groups on
    pytest 9.2 (pytest-xdist issue #1386). A test sent to the first worker that asked for the
    shared stack would fail to start it (its data directory is locked by the other), not pass."""
    from xdist.scheduler import LoadScopeScheduling

    class TwoStacks(LoadScopeScheduling):  # type: ignore[misc]  # xdist is untyped
        def _split_scope(self, nodeid: str) -> str:
            return "own-stacks" if nodeid.startswith(("tests/faults/", "tests/unit/")) else "shared-stack"

    return TwoStacks(config, log)


@pytest.fixture(autouse=True)
def access_log_in_the_test_output() -> Iterator[None]:
    """An app a test runs in-process (`create_api`) logs its requests as JSON lines from a thread
    of its own every 0.2 s: the last ones are written now, into the test's captured output, not
    between tests onto the terminal (as they were under pytest-xdist)."""
    yield
    for handler in logging.getLogger("api.access").handlers:
        handler.flush()


@pytest.fixture(scope="session")
def stack_env() -> Iterator[dict[str, str]]:
    TEST_DATA.mkdir(parents=True, exist_ok=True)
    with EmbeddedServices(TEST_DATA, os.environ, fresh=True) as overrides:
        # One signing key for every process the tests start (API, worker, projector).
        yield {
            **os.environ,
            **overrides,
            "DATA_DIR": str(TEST_DATA),
            "JWT_SECRET": "test-" + "x" * 40,
            "TICKET_SIGNING_KEY": "test-tickets-" + "t" * 40,
            # Deployments started with ENVIRONMENT=production (tests/e2e/test_security.py) share it.
            "PERSONAL_DATA_SECRET": "test-personal-data-" + "p" * 40,
            # Every test talks from 127.0.0.1 and registers, logs in and orders a lot (200 orders
            # at once in the concurrency test): limits far above that keep the limiter on the
            # path without tripping it. tests/e2e/test_security.py checks low limits separately.
            "RATE_LIMITS_ENABLED": "true",
            "RATE_LIMIT_LOGIN": "100000/minute",
            "RATE_LIMIT_REGISTER": "100000/minute",
            "RATE_LIMIT_FORGOT_PASSWORD": "100000/minute",
            "RATE_LIMIT_RESEND_VERIFICATION": "100000/minute",
            "RATE_LIMIT_ORDERS": "100000/minute",
            # The scheduler's periodic jobs (hold sweep, payment reconciler) every 2 s, so tests
            # that rely on them do not wait half a minute.
            "SWEEP_INTERVAL_SECONDS": "2",
        }


@pytest.fixture(scope="session")
def settings(stack_env: dict[str, str]) -> Settings:
    from ticketing import migrate

    settings = Settings.from_env(stack_env)
    migrate(settings)
    return settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_service(env: dict[str, str], name: str, web_workers: int = 2) -> ServiceProcesses:
    log_dir = Path(env["DATA_DIR"]) / "logs" / name
    # A shared, busy machine can take well over 30 s to start every process.
    return ServiceProcesses(
        env, host="127.0.0.1", port=free_port(), web_workers=web_workers, log_dir=log_dir, startup_timeout=90
    )


STRIPEJS_KEY = "pk_test_checkout123"


@pytest.fixture(scope="session")
def stripejs_deployment(stack_env: dict[str, str], settings: Settings, service: str) -> Iterator[str]:
    """A second deployment on the same stack, as in production with Stripe.js: a publishable key
    and a platform fee (localstripe still answers for Stripe). Started once for the e2e and the
    browser tests that need it (tests/e2e/test_checkout_stripejs.py, tests/browser/test_payouts.py)."""
    env = {
        **stack_env,
        "ENVIRONMENT": "production",
        "STRIPE_PUBLISHABLE_KEY": STRIPEJS_KEY,
        "PLATFORM_FEE_PERCENT": "2.5",
    }
    with start_service(env, "e2e-stripejs", web_workers=1) as processes:
        yield processes.base_url


@pytest.fixture(scope="session")
def service(stack_env: dict[str, str], settings: Settings) -> Iterator[str]:
    """The running service (2 API processes, worker, projector, scheduler); yields its base URL."""
    with start_service(stack_env, "e2e") as processes:
        # localstripe delivers real signed webhooks to this service.
        register_localstripe_webhook(
            stack_env["STRIPE_API_BASE"],
            url=processes.base_url + STRIPE_WEBHOOK_PATH,
            secret=stack_env["STRIPE_WEBHOOK_SECRET"],
        )
        yield processes.base_url
