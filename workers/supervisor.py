"""`ticketing run`: the whole service on one machine, for development, tests and benchmarks.

`ServiceProcesses` runs the application's processes (claims service, API, dramatiq worker,
projector, scheduler), each a child in its own session with its log in the data directory;
`run_service` starts the embedded services (`workers/embedded.py`) for whatever the environment
does not configure, prepares the database, starts the processes and stops everything in order on
Ctrl-C or SIGTERM. The commands the children run are the composition root's (`ticketing ...`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

from workers.embedded import EmbeddedServices
from workers.localstripe import STRIPE_WEBHOOK_PATH, register_localstripe_webhook
from workers.metrics import fresh_multiprocess_dir
from workers.processes import StackError, http_ok, spawn, stop_process, tail, wait_until

# Prepare a stack's database before its processes start: given the environment the processes
# will have, migrate (and load the demo data); returns variables to add to that environment and
# lines for the banner.
Prepare = Callable[[dict[str, str]], tuple[dict[str, str], list[str]]]


@dataclass
class _Child:
    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None


def _client_host(host: str) -> str:
    """Return the address that reaches a server bound to host (wildcards mean loopback)."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - compared, not bound
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class ServiceProcesses:
    """Run the claims service, the API, the dramatiq worker, the projection runner, the mail
    notifier and the scheduler.

    Each child gets `env` as its environment and appends its output to `<log_dir>/<name>.log`.
    `__enter__` returns once `GET /health` answers 200, and raises StackError with the tail of the
    logs if a child exits or the API is not healthy within `startup_timeout` seconds. `__exit__`
    stops them in reverse order of start (API first, so no new work arrives while workers drain).
    As with EmbeddedServices, enter it from a long-lived thread.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        host: str,
        port: int,
        web_workers: int = 1,
        log_dir: Path,
        startup_timeout: float = 90.0,
        stop_timeout: float = 15.0,
    ) -> None:
        self.env = {"PYTHONUNBUFFERED": "1", **env}
        # Every child writes its metrics there, the API's /metrics adds them up (workers/metrics.py).
        self.env["PROMETHEUS_MULTIPROC_DIR"] = fresh_multiprocess_dir(
            self.env, Path(self.env.get("DATA_DIR") or log_dir), str(port)
        )
        # One claims service (the claim writer of every API process) on a private Unix socket,
        # unless CLAIMS_ADDRESS names one already.
        self._socket_dir: str | None = None
        if not self.env.get("CLAIMS_ADDRESS"):
            # A short path of its own (Unix socket paths are limited to ~107 bytes).
            self._socket_dir = tempfile.mkdtemp(prefix="ticketing-claims-")
            self.env["CLAIMS_ADDRESS"] = f"unix:{self._socket_dir}/claims.sock"
        self.host = host
        self.port = port
        self.log_dir = Path(log_dir)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        python = sys.executable
        uvicorn = [python, "-m", "uvicorn", "ticketing:create_api", "--factory"]
        uvicorn += ["--host", host, "--port", str(port), "--workers", str(web_workers)]
        uvicorn += ["--no-access-log", "--loop", "uvloop", "--http", "api.http:HttpProtocol"]
        uvicorn += proxy_options(self.env.get("TRUSTED_PROXIES", ""))
        dramatiq = [python, "-m", "dramatiq", "ticketing:worker", "--processes", "1"]
        commands = {
            "claims": [python, "-m", "ticketing", "claims"],
            "projector": [python, "-m", "ticketing", "projections", "run"],
            "notifier": [python, "-m", "ticketing", "notifier"],
            # Payments and holds in one process, mail in another: rendering a ticket PDF costs tens
            # of milliseconds of CPU under the GIL, and must not hold back the next payment.
            # Payments that arrive together are applied together (workers/batching.py): a batch is
            # what the other threads handed in meanwhile, so more threads make larger batches.
            "worker": [*dramatiq, "--threads", "16", "--queues", "payments", "holds"],
            "mailer": [*dramatiq, "--threads", "4", "--queues", "mail"],
            "scheduler": [python, "-m", "ticketing", "scheduler"],
            "api": uvicorn,
        }
        self.children = [_Child(name, argv, self.log_dir / f"{name}.log") for name, argv in commands.items()]

    @property
    def base_url(self) -> str:
        """`http://host:port` of the API, as a client reaches it."""
        return f"http://{_client_host(self.host)}:{self.port}"

    def __enter__(self) -> Self:
        try:
            for child in self.children:
                child.proc = spawn(child.argv, env=self.env, log_path=child.log_path)
            wait_until(self._healthy, what="the API (/health)", timeout=self.startup_timeout)
            wait_until(self._claims_listening, what="the claims service", timeout=self.startup_timeout)
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _claims_listening(self) -> bool:
        self.check_alive()
        address = self.env["CLAIMS_ADDRESS"]
        return not address.startswith("unix:") or os.path.exists(address.removeprefix("unix:"))

    def _healthy(self) -> bool:
        self.check_alive()
        return http_ok(f"{self.base_url}/health")

    def child(self, name: str) -> subprocess.Popen[bytes]:
        """The running process of one child (`claims`, `projector`, `notifier`, `worker`, `scheduler`, `api`)."""
        for child in self.children:
            if child.name == name and child.proc is not None:
                return child.proc
        raise KeyError(name)

    def restart(self, name: str) -> None:
        """Stop one child and start it again (tests: a crash or a redeploy of one process)."""
        for child in self.children:
            if child.name == name and child.proc is not None:
                stop_process(child.proc, self.stop_timeout)
                child.proc = spawn(child.argv, env=self.env, log_path=child.log_path)
                return
        raise KeyError(name)

    def exited(self) -> dict[str, int]:
        """Children that have exited, with their return codes."""
        return {
            child.name: code
            for child in self.children
            if child.proc is not None and (code := child.proc.poll()) is not None
        }

    def check_alive(self) -> None:
        """Raise StackError, with the tail of its log, if any child has exited."""
        dead = self.exited()
        if dead:
            details = "\n".join(
                f"--- {child.name} (exit code {dead[child.name]}), {child.log_path}:\n{tail(child.log_path)}"
                for child in self.children
                if child.name in dead
            )
            raise StackError(f"process(es) exited: {', '.join(dead)}\n{details}")

    def _stop(self) -> None:
        for child in reversed(self.children):
            if child.proc is not None:
                stop_process(child.proc, self.stop_timeout)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)


class _InterruptError(Exception):
    pass


@contextlib.contextmanager
def _signals(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def say(message: str, *, err: bool = False) -> None:
    """Print for the person at the terminal; a closed pipe (`make run | tee`, Ctrl-C) is no error."""
    with contextlib.suppress(OSError):
        print(message, file=sys.stderr if err else sys.stdout, flush=True)


def proxy_options(trusted_proxies: str) -> list[str]:
    """uvicorn's options for TRUSTED_PROXIES (comma-separated addresses or CIDRs): the client
    address (rate limits, logs) and scheme are taken from `X-Forwarded-For`/`-Proto` only when
    the peer is one of them; with none, never (uvicorn would otherwise trust 127.0.0.1)."""
    proxies = ",".join(p.strip() for p in trusted_proxies.split(",") if p.strip())
    return ["--proxy-headers", "--forwarded-allow-ips", proxies] if proxies else ["--no-proxy-headers"]


def run_service(*, data_dir: Path, host: str, port: int, web_workers: int, prepare: Prepare) -> int:
    """Start everything (embedded services for what is not configured) and serve until stopped.

    Returns 0 after SIGINT/SIGTERM, 1 if a process died or failed to start, 130 when interrupted
    during start-up.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise _InterruptError(signal.Signals(signum).name)

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    stack = contextlib.ExitStack()
    # Outermost: once running (and while stopping), a signal only asks for the stop.
    with _signals(request_stop):
        try:
            # Until everything is up, a signal unwinds the start-up, stopping what already runs.
            with _signals(interrupt):
                embedded = EmbeddedServices(data_dir, os.environ)
                overrides = stack.enter_context(embedded)
                env = {**os.environ, **overrides, "DATA_DIR": str(data_dir)}
                say("Migrating the database…")
                pinned, demo_lines = prepare(env)
                env.update(pinned)
                say("Starting the API, worker, projector, notifier and scheduler…")
                processes = stack.enter_context(
                    ServiceProcesses(env, host=host, port=port, web_workers=web_workers, log_dir=data_dir / "logs")
                )
                if "STRIPE_API_BASE" in overrides:
                    register_localstripe_webhook(
                        overrides["STRIPE_API_BASE"],
                        url=processes.base_url + STRIPE_WEBHOOK_PATH,
                        secret=overrides["STRIPE_WEBHOOK_SECRET"],
                    )
        except (_InterruptError, KeyboardInterrupt):
            stack.close()
            say("\nInterrupted during start-up; stopped.", err=True)
            return 130
        except StackError as exc:
            stack.close()
            say(f"\nticketing run failed: {exc}", err=True)
            return 1
        except BaseException:
            stack.close()
            raise
        with stack:
            say(_banner(env, processes, embedded, overrides, demo_lines))
            while not stop.wait(0.5):
                dead = processes.exited()
                if dead:
                    say(f"\nA process exited ({dead}); stopping everything.")
                    _print_tails(processes, dead)
                    return 1
            say("\nStopping…")
    say("Stopped.")
    return 0


def _print_tails(processes: ServiceProcesses, dead: Mapping[str, int]) -> None:
    for child in processes.children:
        if child.name in dead:
            say(f"--- {child.name} (exit {dead[child.name]}) {child.log_path}", err=True)
            say(tail(child.log_path), err=True)


def _banner(
    env: Mapping[str, str],
    processes: ServiceProcesses,
    embedded: EmbeddedServices,
    overrides: Mapping[str, str],
    demo_lines: Sequence[str],
) -> str:
    base = processes.base_url
    if "SMTP_HOST" in overrides:
        mail = f"{embedded.mail_dir} (one .eml file per message)"
    else:
        mail = f"sent via SMTP {env.get('SMTP_HOST')}:{env.get('SMTP_PORT', '1025')}"
    if "STRIPE_API_BASE" in overrides:
        stripe = f"{overrides['STRIPE_API_BASE']} (localstripe stand-in)"
    else:
        stripe = env.get("STRIPE_API_BASE") or "api.stripe.com"
    rows = [
        ("Web", f"{base}/"),
        ("API", f"{base}/api/v1"),
        ("Swagger UI", f"{base}/schema/swagger"),
        ("ReDoc", f"{base}/schema/redoc"),
        ("OpenAPI", f"{base}/schema/openapi.json"),
        ("Health", f"{base}/health"),
        ("Mail", mail),
        ("Stripe", stripe),
        ("Logs", str(embedded.log_dir)),
    ]
    lines = ["", f"ticketing is running ({env.get('ENVIRONMENT') or 'development'})"]
    lines += [f"  {label:<11} {value}" for label, value in rows]
    if demo_lines:
        lines += ["", "Demo data:"] + [f"  {line}" for line in demo_lines]
    lines += ["", "Press Ctrl-C to stop."]
    return "\n".join(lines)
