"""Child processes of the development stack: start one in its own session, tied to our life
(Linux kills it when we die, so a killed test run leaves no servers behind), wait for it to be
ready, stop it and whatever it started, read the end of its log; how long to wait before
starting again something that failed (`Backoff`)."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Longest Unix socket path we create ourselves (sun_path is 108 bytes including the NUL).
MAX_SOCKET_PATH = 100
log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A service or application process failed to start or died."""


@dataclass
class Backoff:
    """The pauses before starting again something that keeps failing: `initial` seconds, doubling
    with each failure up to `cap`. Once it had stayed up `reset_after` seconds, a failure counts
    as a new one, not the same one again, and the pause is `initial` again. Never zero: a process
    that cannot start is restarted at most every `cap` seconds, never in a tight loop."""

    initial: float = 0.5
    cap: float = 30.0
    reset_after: float = 60.0
    pause: float = field(init=False)

    def __post_init__(self) -> None:
        self.pause = self.initial

    def failed(self, ran_for: float = 0.0) -> float:
        """The pause before the next start, after a failure `ran_for` seconds after the last one."""
        if ran_for >= self.reset_after:
            self.pause = self.initial
        pause = self.pause
        self.pause = min(pause * 2, self.cap)
        return pause


def describe_exit(code: int) -> str:
    """`exited with 1`, or `was killed by SIGKILL` for a negative Popen return code."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with {code}"


def child_preexec(nice: int = 0) -> Callable[[], None] | None:
    """Return a preexec function asking Linux to SIGTERM the child when this process dies, and
    lowering the child's CPU priority by `nice`.

    Each child runs in a session of its own, and Linux (with `sched_autogroup_enabled`, the
    default of most distributions) shares the CPU between sessions before it shares it between
    their processes: a process's own nice value only ranks it within its session. So `nice` is
    set for both, the process and its session's group (`/proc/self/autogroup`; raising it needs
    no privilege)."""
    if not sys.platform.startswith("linux"):
        return None
    # Looked up here, before the fork, so the child does nothing but the calls themselves.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    pr_set_pdeathsig = 1
    line = f"{nice}\n".encode()

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        # The parent may have died between fork and prctl; then nobody would ever signal us.
        if os.getppid() != parent:
            os._exit(1)
        if nice:
            os.nice(nice)
            try:
                fd = os.open("/proc/self/autogroup", os.O_WRONLY)
            except OSError:  # no autogroups: the process's nice value is all there is
                return
            try:
                os.write(fd, line)
            except OSError:
                pass
            finally:
                os.close(fd)

    return preexec


def spawn(
    argv: Sequence[str], *, env: Mapping[str, str], log_path: Path, cwd: Path = ROOT, nice: int = 0
) -> subprocess.Popen[bytes]:
    """Start argv in its own session, with stdout and stderr appended to log_path, its CPU
    priority lowered by `nice` (see `child_preexec`)."""
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
            preexec_fn=child_preexec(nice),  # noqa: PLW1509 - only system calls run in the child
        )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the process, wait, then SIGKILL its whole process group if anything is left."""
    stop_processes([proc], timeout)


def stop_processes(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """`stop_process` for several at once: all get SIGTERM together and share one deadline, so
    stopping them takes as long as the slowest, not the sum (a dramatiq worker takes ~2.5 s)."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored SIGTERM for %.0fs; killing it", proc.pid, timeout)
    for proc in procs:
        # The child is a session leader, so its pid is the group id of any grandchildren (uvicorn
        # and dramatiq worker processes) that outlived it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16_384))
            text = handle.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
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
            end = tail(log_path) if log_path else ""
            raise StackError(f"{what} exited with code {proc.returncode} while starting:\n{end}")
        try:
            if ready():
                return
        except OSError as exc:  # refused / reset / no such socket: not up yet
            last_error = repr(exc)
        if time.monotonic() > deadline:
            end = tail(log_path) if log_path else ""
            raise StackError(f"{what} not ready after {timeout:.0f}s ({last_error})\n{end}")
        time.sleep(0.05)


def socket_path(preferred: Path) -> Path:
    """preferred, or a short per-directory path under the temp dir when preferred is too long."""
    if len(os.fsencode(preferred)) <= MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(os.fsencode(preferred)).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"ticketing-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / preferred.name


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def http_ok(url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 2.0) -> bool:
    # Only ever called with http:// URLs we built ourselves.
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return False


class StopSignal:
    """SIGINT/SIGTERM received, for a process's main loop (`wait` instead of an Event's).

    A signal handler runs in the main thread between two of its bytecodes, possibly inside
    `threading.Event.wait()` while that holds the Event's lock; `Event.set()` in the handler then
    waits for that lock forever (seen: Ctrl-C hung one stop in twelve). The handler here only sets
    a flag, and `wait` polls it in short sleeps, which a signal interrupts."""

    def __init__(self) -> None:
        self.received = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.received = True

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, less once a signal came; whether one came."""
        deadline = time.monotonic() + seconds
        while not self.received and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))
        return self.received
