"""The access log: one line per request, written to stderr in batches by a thread.

Through `logging`, each line cost a `LogRecord`, a copy of it formatted in the request's own
thread (Litestar's `QueueHandler` formats before it enqueues) and a wake-up of the listener
thread: 18% of an API process's samples (py-spy `--gil`) in hot-seats. Here a request appends
its finished line to a deque (appends and pops are thread-safe) and a daemon thread writes what
has gathered every `interval` seconds, and at exit. The lines look like the other log lines
(`INFO - <asctime> - api.access - app - <request id> <method> <path> <status> <ms>ms`), and
whether they are written still follows the `api.access` logger's level, checked once a second.
"""

from __future__ import annotations

import atexit
import collections
import logging
import sys
import threading
import time

LOGGER = logging.getLogger("api.access")


class AccessLog:
    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self._lines: collections.deque[str] = collections.deque()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # starting the thread; flushing
        self._second = -1
        self._prefix = ""
        self._enabled = True

    def write(self, request_id: str, method: str, path: str, status: int, elapsed: float) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._new_second(second)
        if not self._enabled:
            return
        millis = int((now - second) * 1000)
        self._lines.append(f"{self._prefix}{millis:03d} - api.access - app - {request_id} {method} {path} {status} "
                           f"{elapsed * 1000:.2f}ms\n")  # fmt: skip
        if self._thread is None:
            self._start()

    def _new_second(self, second: int) -> None:
        self._second = second
        self._prefix = "INFO - " + time.strftime("%Y-%m-%d %H:%M:%S,", time.localtime(second))
        self._enabled = LOGGER.isEnabledFor(logging.INFO)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
                self._thread.start()
                atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, take = self._lines, self._lines.popleft
            if not lines:
                return
            text = "".join([take() for _ in range(len(lines))])  # later appends wait for the next
            try:
                sys.stderr.write(text)
                sys.stderr.flush()
            except (OSError, ValueError):  # stderr closed at shutdown
                pass


_ACCESS_LOG = AccessLog()
access_log = _ACCESS_LOG.write
