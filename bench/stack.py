"""The service under test: embedded services plus the API, worker, projector and scheduler.

Started the way `make run` starts them (`workers/supervisor.py`), but always fresh under `.data/bench`,
always with the embedded Postgres/Redis/Stripe stand-in/mail sink (whatever the caller's
environment points at is ignored, so a benchmark never writes into a real database), and
configured as in production.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bench.cpu import CpuMeter, psutil
from ticketing import ROOT, Settings
from workers.embedded import EmbeddedServices
from workers.supervisor import ServiceProcesses

DATA_DIR = ROOT / ".data" / "bench"
# A fixed key: every process of the stack and the benchmark agree on it, and nothing it signs
# outlives the run.
JWT_SECRET = "bench-only-signing-key-" + "0" * 40
# Opens the detail of /ready (read-model positions), which the benchmark polls.
METRICS_TOKEN = "bench-only-metrics-token-" + "0" * 20
# Holds outlast the whole run, so no expiry traffic lands in a later scenario at a random moment.
HOLD_SECONDS = 3600
# Variables that would point the stack at services other than the embedded ones.
EXTERNAL = ("DATABASE_URL", "REDIS_URL", "STRIPE_API_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET", "SMTP_HOST")


# Log lines worth counting, by a substring that identifies them.
LOG_KINDS = (
    # The optimistic-concurrency conflicts the service retries (two writers, one version).
    ("duplicate key value violates unique constraint", "version_conflicts_retried"),
    ("lock timeout", "lock_timeouts"),
    ("deadlock detected", "deadlocks"),
    ("duration: ", "slow_statements"),  # log_min_duration_statement
    ("Traceback (most recent call last)", "tracebacks"),
    ("too many connections", "too_many_connections"),
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log(message: str) -> None:
    """Progress for the person at the terminal (stdout carries the JSON summaries)."""
    with contextlib.suppress(OSError):
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)  # noqa: T201


class BenchStack:
    """Fresh embedded services and a migrated database; the app's processes on demand.

    Enter from the main thread (the embedded services die with the thread that started them).
    """

    def __init__(self, *, web_workers: int, data_dir: Path = DATA_DIR) -> None:
        self.data_dir = data_dir
        self.web_workers = web_workers
        self.port = free_port()
        self._exit = contextlib.ExitStack()
        self._processes: ServiceProcesses | None = None
        self._app_stack: contextlib.ExitStack | None = None
        self.env: dict[str, str] = {}
        self.settings = Settings()
        self.started_s = 0.0
        self.meter = CpuMeter(self._cpu_roots)

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Self:
        started = time.monotonic()
        base = {k: v for k, v in os.environ.items() if k not in EXTERNAL}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            overrides = self._exit.enter_context(EmbeddedServices(self.data_dir, base, fresh=True))
            self.env = {
                **base,
                **overrides,
                "DATA_DIR": str(self.data_dir),
                "ENVIRONMENT": "production",
                "JWT_SECRET": JWT_SECRET,
                "METRICS_TOKEN": METRICS_TOKEN,
                "TICKET_SIGNING_KEY": JWT_SECRET + "-tickets",
                "PERSONAL_DATA_SECRET": JWT_SECRET + "-personal-data",
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
                "WEB_CONCURRENCY": str(self.web_workers),
                "HOLD_SECONDS": str(HOLD_SECONDS),
                # Rate limits exist for abuse, not for a load test from one address.
                "RATE_LIMITS_ENABLED": "false",
            }
            self.settings = Settings.from_env(self.env)
            from ticketing import migrate

            migrate(self.settings)
        except BaseException:
            self._exit.close()
            raise
        self.started_s = time.monotonic() - started
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_app()
        self._exit.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def config(self) -> dict[str, Any]:
        """What the service was told, for the results (secrets and paths left out)."""
        keys = ("ENVIRONMENT", "WEB_CONCURRENCY", "HOLD_SECONDS", "RATE_LIMITS_ENABLED", "PROJECTION_WAIT_SECONDS")
        return {
            "web_workers": self.web_workers,
            "env": {k: self.env[k] for k in keys if k in self.env},
            "projection_wait_seconds": self.settings.projection_wait_seconds,
            "processes": "uvicorn (uvloop, httptools, one write per response) x web_workers, claims service, "
            "dramatiq: payments and holds 1 process x 64 threads, mail 1 process x 4 threads (niced); "
            "projector, notifier, scheduler, embedded Postgres, redis-server",
        }

    def start_app(self) -> float:
        """Start the API, worker, projector and scheduler if not running; returns seconds taken."""
        if self._processes is not None:
            self._processes.check_alive()
            return 0.0
        started = time.monotonic()
        api_log = self.log_dir / "api.log"
        since = api_log.stat().st_size if api_log.exists() else 0
        stack = contextlib.ExitStack()
        try:
            self._processes = stack.enter_context(
                ServiceProcesses(
                    self.env,
                    host="127.0.0.1",
                    port=self.port,
                    web_workers=self.web_workers,
                    log_dir=self.log_dir,
                    startup_timeout=60,
                )
            )
            self._wait_workers_ready(since)
        except BaseException:
            self._processes = None
            stack.close()
            raise
        self._app_stack = stack
        return time.monotonic() - started

    def stop_app(self) -> None:
        stack, self._app_stack, self._processes = self._app_stack, None, None
        if stack is not None:
            stack.close()

    def check_alive(self) -> None:
        if self._processes is not None:
            self._processes.check_alive()

    def dead(self) -> dict[str, int]:
        """The app's processes that have exited, with their exit codes."""
        return self._processes.exited() if self._processes is not None else {}

    def _wait_workers_ready(self, since: int, timeout: float = 60) -> None:
        """/health answers once one API process is up; wait until every one has started."""
        deadline = time.monotonic() + timeout
        api_log = self.log_dir / "api.log"
        while True:
            self.check_alive()
            with open(api_log, "rb") as handle:
                handle.seek(since)
                started = handle.read().count(b"Application startup complete")
            if started >= self.web_workers:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {started} of {self.web_workers} API processes started")
            time.sleep(0.1)

    # -- talking to the API (set-up only; load comes from the generator process) ----------

    def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                raw = response.read()
                return int(response.status), json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                return int(error.code), json.loads(raw) if raw else None
            except ValueError:
                return int(error.code), raw.decode(errors="replace")

    def get_json(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def login(self, email: str, password: str) -> str:
        status, body = self.request("POST", "/api/v1/auth/login", {"email": email, "password": password})
        if status != 200:
            raise RuntimeError(f"login of {email} failed: {status} {body}")
        token: str = body["access_token"]
        return token

    def wait_caught_up(self, position: int, timeout: float = 900) -> dict[str, Any]:
        """Poll /ready until every read model has applied `position`; returns what it saw."""
        started = time.monotonic()
        polls = 0
        last: Any = None
        while True:
            self.check_alive()
            _, last = self.request("GET", "/ready", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            polls += 1
            if isinstance(last, dict) and last.get("read_model_position", 0) >= position:
                break
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"read models did not reach {position} in {timeout:.0f}s: {last}")
            time.sleep(0.1)
        return {"seconds": round(time.monotonic() - started, 3), "polls": polls, "ready": last}

    # -- CPU -----------------------------------------------------------------------------

    def _cpu_roots(self) -> Iterator[psutil.Process]:
        yield psutil.Process()
        pid = self.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                yield psutil.Process(pid)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "pg" / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def log_findings(self, since: Mapping[str, int]) -> dict[str, Any]:
        """What the stack logged since the offsets in `since`: known kinds counted, the rest sampled."""
        findings: dict[str, Any] = {}
        for path in sorted(self.log_dir.glob("*.log")):
            if path.name == "loadgen.log":
                continue
            try:
                with open(path, "rb") as handle:
                    handle.seek(since.get(path.name, 0))
                    text = handle.read().decode(errors="replace")
            except OSError:
                continue
            counts: dict[str, int] = {}
            samples: list[str] = []
            for line in text.splitlines():
                kind = next((k for needle, k in LOG_KINDS if needle in line), None)
                if kind is None and any(level in line for level in ("ERROR", "FATAL", "PANIC", "CRITICAL")):
                    kind = "other_errors"
                elif kind is None and "WARNING" in line:
                    kind = "warnings"
                if kind is None:
                    continue
                counts[kind] = counts.get(kind, 0) + 1
                if kind in ("other_errors", "warnings", "tracebacks", "slow_statements") and len(samples) < 5:
                    samples.append(line[:300])
            if counts:
                findings[path.name] = {**counts, "samples": samples} if samples else counts
        return findings

    def log_offsets(self) -> dict[str, int]:
        offsets: dict[str, int] = {}
        for path in self.log_dir.glob("*.log"):
            with contextlib.suppress(OSError):
                offsets[path.name] = path.stat().st_size
        return offsets
