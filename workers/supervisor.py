"""`ticketing run`: the whole service on one machine, for development, tests and benchmarks.

`ServiceProcesses` runs the application's processes (claims service, API, dramatiq worker and
mailer, projector, notifier, scheduler), each a child in its own session with its log in the data
directory, and (`Supervisor`) can start again, after a growing pause, any that exits;
`run_service` starts the embedded services (`workers/embedded.py`) for whatever the environment
does not configure, prepares the database, starts the processes, keeps them running and stops
everything in order on Ctrl-C or SIGTERM. The commands the children run are the composition
root's (`ticketing ...`).
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
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

from commands.claims_client import answers_challenge
from workers.embedded import EmbeddedServices
from workers.localstripe import STRIPE_WEBHOOK_PATH, register_localstripe_webhook
from workers.metrics import fresh_multiprocess_dir
from workers.processes import (
    Backoff,
    StackError,
    describe_exit,
    http_ok,
    spawn,
    stop_process,
    stop_processes,
    tail,
    wait_until,
)

# The mailer renders ticket PDFs (tens of ms of CPU each) for mail that may as well leave a minute
# later; at this lower priority a backlog of mail no longer takes CPU from a sale going on (each
# child's session shares the CPU equally with the others: after a hot-funnel the mailer had taken
# 40% of the machine's CPU in the hot-ga-long that followed). Idle CPU is still all its own.
MAILER_NICE = 10
# How often the children's logs are checked against their size limit (LOG_MAX_MB).
LOG_CHECK_SECONDS = 5.0
# Prepare a stack's database before its processes start: given the environment the processes
# will have, migrate (and load the demo data); returns variables to add to that environment and
# lines for the banner.
Prepare = Callable[[dict[str, str]], tuple[dict[str, str], list[str]]]


@dataclass(frozen=True)
class Liveness:
    """When a child that has a probe counts as hung: it is probed every `every` seconds, each
    probe given `timeout`; after `failures` failed probes in a row it is killed (SIGKILL), and
    then started again as a crashed child is. Failures count once the child has answered a probe
    since it started, or `grace` seconds after its start (a slow start is not a hang)."""

    every: float = 5.0
    timeout: float = 2.0
    failures: int = 3
    grace: float = 60.0


@dataclass
class _Child:
    name: str
    argv: list[str]
    log_path: Path
    backoff: Backoff
    nice: int = 0  # how much lower its CPU priority is (`spawn`)
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    # Set while it is down: when it is to be started again.
    restart_at: float | None = None
    restarts: int = 0
    # Liveness of the process now running: has it answered a probe, how many failed in a row.
    answered: bool = False
    failed_probes: int = 0


def _client_host(host: str) -> str:
    """Return the address that reaches a server bound to host (wildcards mean loopback)."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - compared, not bound
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class Supervisor:
    """Children started together, each started again after a pause when it exits, and stopped
    together in reverse order of start (or in the `stop_stages` given: each stage's children
    together, the stages one after the other).

    Each child gets `env` as its environment and appends its output to `<log_dir>/<name>.log`.
    `revive` restarts what has exited, after a pause from the child's own `Backoff` (0.5 s
    doubling to 30 s, back to 0.5 s once it had stayed up a minute), so a child that keeps
    crashing is retried every 30 s and the others run on; `watch` calls it from a thread of its
    own. A child is tied to the thread that started it (Linux's parent-death signal), so the
    watching thread is also the one that stops the children at the end.

    A process can be alive and still hang (frozen, its event loop stuck): a child with a probe in
    `probes` (given the time it may take, True when the child answered) is probed from another
    thread of `watch`, and one that stops answering is killed and started again (`Liveness`).

    A child named in `niceness` runs at a lower CPU priority (`spawn`). With `max_log_bytes`, a
    child's log that grows past it is cut back (`trim_logs`), and so is each of `other_logs`: the
    logs of processes run by others that also append to them (the embedded services').
    """

    def __init__(
        self,
        commands: Mapping[str, Sequence[str]],
        env: Mapping[str, str],
        *,
        log_dir: Path,
        stop_timeout: float = 15.0,
        backoff: Callable[[], Backoff] = Backoff,
        stop_stages: Sequence[Collection[str]] = (),
        probes: Mapping[str, Callable[[float], bool]] | None = None,
        liveness: Liveness = Liveness(),
        niceness: Mapping[str, int] | None = None,
        max_log_bytes: int = 0,
        other_logs: Sequence[Path] = (),
    ) -> None:
        self.env = dict(env)
        self.max_log_bytes = max_log_bytes
        self.other_logs = list(other_logs)
        self._logs_checked = 0.0
        self.probes = dict(probes or {})
        self.liveness = liveness
        names: list[str] = list(commands)
        self.stop_stages = [set(stage) for stage in stop_stages] or [{name} for name in reversed(names)]
        if set().union(*self.stop_stages) != set(names):
            raise ValueError("every child must be stopped in a stage")
        self.log_dir = Path(log_dir)
        self.stop_timeout = stop_timeout
        niceness = niceness or {}
        self.children = [
            _Child(name, list(argv), self.log_dir / f"{name}.log", backoff(), niceness.get(name, 0))
            for name, argv in commands.items()
        ]
        self._lock = threading.RLock()
        self._stopped = False
        self._stop_watching = threading.Event()
        self._watcher: threading.Thread | None = None
        self._prober: threading.Thread | None = None

    def start(self) -> None:
        """Start every child, in order."""
        for child in self.children:
            self._start(child)

    def _start(self, child: _Child) -> None:
        child.proc = spawn(child.argv, env=self.env, log_path=child.log_path, nice=child.nice)
        child.started_at = time.monotonic()
        child.restart_at = None
        child.answered, child.failed_probes = False, 0

    def _find(self, name: str) -> _Child:
        for child in self.children:
            if child.name == name and child.proc is not None:
                return child
        raise KeyError(name)

    def child(self, name: str) -> subprocess.Popen[bytes]:
        """The process of one child (the exited one while it waits to be started again)."""
        proc = self._find(name).proc
        assert proc is not None
        return proc

    def restarts(self, name: str) -> int:
        """How many times `revive` has started this child again."""
        return self._find(name).restarts

    def restart(self, name: str) -> None:
        """Stop one child and start it again (tests: a crash or a redeploy of one process)."""
        with self._lock:
            child = self._find(name)
            assert child.proc is not None
            stop_process(child.proc, self.stop_timeout)
            self._start(child)

    def exited(self) -> dict[str, int]:
        """Children that have exited (and not been started again yet), with their return codes."""
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

    def revive(self, report: Callable[[str], None]) -> None:
        """Note the children that have exited, with when each is to start again (told to
        `report`), and start those whose pause is over."""
        with self._lock:
            if self._stopped:
                return
            now = time.monotonic()
            for child in self.children:
                if child.proc is None:
                    continue
                if child.restart_at is None:
                    code = child.proc.poll()
                    if code is None:
                        continue
                    # Whatever it started (uvicorn's or dramatiq's worker processes) goes with it:
                    # left running, they would keep its port or its messages.
                    stop_process(child.proc, self.stop_timeout)
                    pause = child.backoff.failed(now - child.started_at)
                    child.restart_at = now + pause
                    report(f"{child.name} {describe_exit(code)}, restarting in {pause:.1f} s (log: {child.log_path})")
                elif now >= child.restart_at:
                    try:
                        self._start(child)
                    except OSError as error:  # its log or its program unreachable: tried again later
                        pause = child.backoff.failed()
                        child.restart_at = now + pause
                        report(f"{child.name} could not be started ({error!r}), trying again in {pause:.1f} s")
                        continue
                    child.restarts += 1
                    report(f"{child.name} started again (restart {child.restarts})")

    def trim_logs(self, report: Callable[[str], None]) -> None:
        """Move the lines of every log past `max_log_bytes` to `<name>.log.1` (replacing the one
        before) and empty the log. The children keep writing to it: their output is opened for
        appending, so they go on at its new end. As logrotate's `copytruncate`, what a child
        writes between the copy and the truncation is lost (an access log at 3,000 requests a
        second grows by about 2 GiB an hour: without this, a long sale filled the disk)."""
        if not self.max_log_bytes:
            return
        logs = [(child.name, child.log_path) for child in self.children]
        logs += [(path.stem, path) for path in self.other_logs]
        for name, path in logs:
            try:
                if path.stat().st_size <= self.max_log_bytes:
                    continue
                kept = path.with_name(path.name + ".1")
                shutil.copyfile(path, kept)  # a symbolic link (postgres.log) is followed by both
                os.truncate(path, 0)
            except FileNotFoundError:  # a service not started (configured by URL), or not yet
                continue
            except OSError as error:
                report(f"could not cut back the log of {name}: {error!r}")
                continue
            report(f"{name}'s log passed {self.max_log_bytes // 2**20} MiB: its lines so far are in {kept}")

    def watch(self, report: Callable[[str], None], every: float = 0.2) -> None:
        """Restart exited children from a thread of our own until `stop`."""

        def loop() -> None:
            while not self._stop_watching.wait(every):
                try:
                    self.revive(report)
                except Exception as error:  # noqa: BLE001 - a failed start is tried again next round
                    report(f"could not restart a process: {error!r}")
                if time.monotonic() - self._logs_checked >= LOG_CHECK_SECONDS:
                    self._logs_checked = time.monotonic()
                    self.trim_logs(report)
            # The children it started are tied to this thread: they are stopped, in order, before it ends.
            self._stop_children()

        self._watcher = threading.Thread(target=loop, name="supervisor", daemon=True)
        self._watcher.start()
        if self.probes:
            self._prober = threading.Thread(target=self._probe_loop, args=(report,), name="liveness", daemon=True)
            self._prober.start()

    def _probe_loop(self, report: Callable[[str], None]) -> None:
        while not self._stop_watching.wait(self.liveness.every):
            for child in self.children:
                probe = self.probes.get(child.name)
                if probe is not None:
                    try:
                        self._probe(child, probe, report)
                    except Exception as error:  # noqa: BLE001 - the next round probes again
                        report(f"could not probe {child.name}: {error!r}")

    def _probe(self, child: _Child, probe: Callable[[float], bool], report: Callable[[str], None]) -> None:
        """Probe one running child once; kill it if this was one failure too many."""
        with self._lock:
            proc = child.proc
            if self._stopped or proc is None or child.restart_at is not None or proc.poll() is not None:
                return
        answered = probe(self.liveness.timeout)
        if child.proc is not proc:  # restarted meanwhile: the answer was not the new process's
            return
        if answered:
            child.answered, child.failed_probes = True, 0
            return
        child.failed_probes += 1
        counts = child.answered or time.monotonic() - child.started_at >= self.liveness.grace
        if not counts or child.failed_probes < self.liveness.failures:
            return
        with self._lock:
            if child.proc is proc and proc.poll() is None and not self._stopped:
                report(
                    f"{child.name} answered none of its last {child.failed_probes} liveness probes "
                    f"(one every {self.liveness.every:g} s): killing it (log: {child.log_path})"
                )
                proc.kill()  # `revive` starts it again, as any child that died

    def stop(self) -> None:
        """Stop the watching thread, if any, and every child in reverse order of start."""
        if self._watcher is not None:
            self._stop_watching.set()
            self._watcher.join(timeout=self.stop_timeout * len(self.children) + 10)
        if self._prober is not None:
            self._prober.join(timeout=self.liveness.every + 2 * self.liveness.timeout + 5)
        self._stop_children()

    def _stop_children(self) -> None:
        with self._lock:
            self._stopped = True
            for stage in self.stop_stages:
                procs = [c.proc for c in self.children if c.name in stage and c.proc is not None]
                stop_processes(procs, self.stop_timeout)


class ServiceProcesses(Supervisor):
    """Run the claims service, the API, the dramatiq worker (payments and holds) and mailer, the
    projection runner, the mail notifier and the scheduler.

    `__enter__` returns once `GET /health` answers 200, and raises StackError with the tail of the
    logs if a child exits or the API is not healthy within `startup_timeout` seconds. With
    `supervise` (where to say what happened), a child that exits afterwards is started again after
    a pause (see `Supervisor`) while the others run on, and a claims service that stops answering
    its liveness probe is killed and started again (`Liveness`); without, it stays down (`exited`,
    `check_alive`). `__exit__` stops the API first, so no new work arrives while the others
    drain, then the workers, projector, notifier and scheduler together (a dramatiq worker takes
    ~2.5 s to stop), and the claims service last. As with EmbeddedServices, enter it from a long-lived thread.
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
        supervise: Callable[[str], None] | None = None,
        backoff: Callable[[], Backoff] = Backoff,
        liveness: Liveness = Liveness(),
        other_logs: Sequence[Path] = (),
    ) -> None:
        env = {"PYTHONUNBUFFERED": "1", **env}
        # Every child writes its metrics there, the API's /metrics adds them up (workers/metrics.py).
        env["PROMETHEUS_MULTIPROC_DIR"] = fresh_multiprocess_dir(env, Path(env.get("DATA_DIR") or log_dir), str(port))
        # One claims service (the claim writer of every API process) on a private Unix socket,
        # unless CLAIMS_ADDRESS names one already.
        self._socket_dir: str | None = None
        if not env.get("CLAIMS_ADDRESS"):
            # A short path of its own (Unix socket paths are limited to ~107 bytes).
            self._socket_dir = tempfile.mkdtemp(prefix="ticketing-claims-")
            env["CLAIMS_ADDRESS"] = f"unix:{self._socket_dir}/claims.sock"
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.supervise = supervise
        python = sys.executable
        uvicorn = [python, "-m", "uvicorn", "ticketing:create_api", "--factory"]
        uvicorn += ["--host", host, "--port", str(port), "--workers", str(web_workers)]
        uvicorn += ["--no-access-log", "--loop", "uvloop", "--http", "api.http:HttpProtocol"]
        uvicorn += proxy_options(env.get("TRUSTED_PROXIES", ""))
        dramatiq = [python, "-m", "dramatiq", "ticketing:worker", "--processes", "1"]
        commands = {
            "claims": [python, "-m", "ticketing", "claims"],
            "projector": [python, "-m", "ticketing", "projections", "run"],
            "notifier": [python, "-m", "ticketing", "notifier"],
            # Payments and holds in one process, mail in another: rendering a ticket PDF costs tens
            # of milliseconds of CPU under the GIL, and must not hold back the next payment.
            # Payments that arrive together are applied together (workers/batching.py): a batch is
            # what the other threads handed in meanwhile, so more threads make larger batches (the
            # quick hot-funnel, four pairs: ticket issuance lag p99 5.4-6.8 s with 64 threads, 7.3-12.2
            # s with 16; threads waiting for a batch or a turn hold no connection).
            "worker": [*dramatiq, "--threads", "64", "--queues", "payments", "holds"],
            "mailer": [*dramatiq, "--threads", "4", "--queues", "mail"],
            "scheduler": [python, "-m", "ticketing", "scheduler"],
            "api": uvicorn,
        }
        stages = [["api"], ["scheduler", "mailer", "worker", "notifier", "projector"], ["claims"]]
        # A claims service that is alive but answers nothing (frozen, its event loop stuck) is passed
        # by within a second (the API processes place orders with their own writers), but it would
        # stay hung: with `supervise`, it is killed and started again once it fails its probes.
        address = env["CLAIMS_ADDRESS"]
        probes = {"claims": lambda timeout: answers_challenge(address, timeout)}
        super().__init__(
            commands, env, log_dir=log_dir, stop_timeout=stop_timeout, backoff=backoff, stop_stages=stages,
            probes=probes, liveness=liveness, niceness={"mailer": MAILER_NICE},
            max_log_bytes=int(float(env.get("LOG_MAX_MB") or 200) * 2**20), other_logs=other_logs,
        )  # fmt: skip

    @property
    def base_url(self) -> str:
        """`http://host:port` of the API, as a client reaches it."""
        return f"http://{_client_host(self.host)}:{self.port}"

    def __enter__(self) -> Self:
        try:
            self.start()
            wait_until(self._healthy, what="the API (/health)", timeout=self.startup_timeout)
            wait_until(self._claims_listening, what="the claims service", timeout=self.startup_timeout)
            if self.supervise is not None:
                self.watch(self.supervise)
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

    def _stop(self) -> None:
        self.stop()
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

    A process that exits once everything is up is started again after a pause (0.5 s, doubling
    to 30 s while it keeps failing), said on the console; the others run on. Returns 0 after
    SIGINT/SIGTERM, 1 if something failed to start, 130 when interrupted during start-up.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise _InterruptError(signal.Signals(signum).name)

    # A plain flag, not a threading.Event: the handler runs in the main thread between two of its
    # bytecodes, possibly inside Event.wait() holding the Event's lock, and Event.set() would
    # then wait for that lock forever (seen: Ctrl-C hung about one time in twelve).
    stop: list[str] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.append(signal.Signals(signum).name)

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
                say("Starting the API, worker, mailer, projector, notifier and scheduler…")
                processes = stack.enter_context(
                    ServiceProcesses(
                        env,
                        host=host,
                        port=port,
                        web_workers=web_workers,
                        log_dir=data_dir / "logs",
                        supervise=say,
                        other_logs=embedded.logs,
                    )
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
            # The processes restart themselves (ServiceProcesses' supervising thread); this
            # thread only waits for the signal to stop (in short waits: signals are handled between them).
            while not stop:
                time.sleep(0.5)
            say("\nStopping…")
    say("Stopped.")
    return 0


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
