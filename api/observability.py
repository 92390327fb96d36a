"""What every request leaves behind: its request id, its Prometheus metrics, its access-log line.

`Observe` is the outermost ASGI layer of the service (around the fast lane and Litestar alike),
so every request is counted and logged in one place, whichever lane answers it.

The access log goes through `logging` (logger `api.access`) as one JSON line per request with
the request id. A request only creates the record: `JsonLinesHandler` queues it as it is, and a
thread formats and writes what has gathered, so neither formatting nor the write happens on the
event loop (Litestar's `QueueHandler` formats in the request's thread: that path was 18% of an
API process in a hot-seats profile).
"""

from __future__ import annotations

import atexit
import collections
import itertools
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from api.inputs import clean_header
from commands import metrics as _business_metrics  # noqa: F401 - first: names this process's metric files

ACCESS = logging.getLogger("api.access")
REQUEST_PREFIX = secrets.token_hex(4)
REQUEST_COUNTER = itertools.count(1)


def request_id_of(scope: Scope) -> str:
    """The caller's `X-Request-ID` (first 64 characters, printable and without spaces: it is
    echoed and logged), or a process prefix and a counter: unique, and far cheaper than uuid4 on
    every request."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            request_id = clean_header(value[:64])
            if request_id and " " not in request_id:
                return request_id
            break
    return f"{REQUEST_PREFIX}-{next(REQUEST_COUNTER):x}"


class Observe:
    """Request id (echoed as `X-Request-ID`), one access-log record and the request metrics,
    for every HTTP request, in one pure-ASGI layer; `on_start` functions (the security
    headers) see each response's start message on the way out, in the same send wrapper.

    The metrics keep the names and labels of Litestar's Prometheus plugin; the route label is
    the path template when a route matched (`path_template`, set by Litestar and by the fast
    lane), else the path.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: RequestMetrics,
        on_start: Sequence[Callable[[HTTPResponseStartEvent, str], None]] = (),
        exclude: frozenset[str] = frozenset({"/metrics"}),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.on_start = tuple(on_start)
        self.exclude = exclude

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        echo = (b"x-request-id", request_id.encode("latin-1"))
        status = 500

        path: str = scope["path"]

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for hook in self.on_start:
                    hook(message, path)
                message["headers"] = [*message.get("headers", ()), echo]
            await send(message)

        method: str = scope["method"]
        metered = path not in self.exclude
        if metered:
            in_progress = self.metrics.in_progress(method, path)
            in_progress.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            if metered:
                in_progress.dec()
                self.metrics.observe(method, scope.get("path_template", path), status, elapsed)
            if ACCESS.isEnabledFor(logging.INFO):
                ACCESS.handle(AccessRecord(method, path, status, request_id, elapsed))


class AccessRecord(logging.LogRecord):
    """One request's access-log record, made cheaply: `Logger.info` spends ~7 µs per record
    finding its caller's frame and looking up the process and thread names (a fifth of the
    fast lane's CPU per order, measured in process), none of which an access line uses. The
    record starts as a copy of the fields every access record shares (formatters read them
    from the record's `__dict__`)."""

    def __init__(self, method: str, path: str, status: int, request_id: str, elapsed: float) -> None:
        fields = _ACCESS_FIELDS.copy()
        fields["created"] = created = time.time()
        fields["msecs"] = (created - int(created)) * 1000
        fields["args"] = (method, path, status)
        fields["request_id"] = request_id
        fields["status"] = status
        fields["ms"] = round(elapsed * 1000, 2)
        self.__dict__ = fields


_ACCESS_FIELDS: dict[str, Any] = {
    **vars(logging.makeLogRecord({"name": ACCESS.name, "levelno": logging.INFO, "levelname": "INFO"})),
    "msg": "%s %s %s",
    "pathname": "", "filename": "", "module": "", "lineno": 0, "funcName": "",
}  # fmt: skip


class RequestMetrics:
    """The request metrics of Litestar's Prometheus plugin (same names and labels), with the
    labelled children cached."""

    def __init__(self, app_name: str, prefix: str = "ticketing") -> None:
        self.app_name = app_name
        labels = ["method", "path", "status_code", "app_name"]
        self.requests = Counter(f"{prefix}_requests_total", "Total requests", labels)
        self.errors = Counter(f"{prefix}_requests_error_total", "Total errors in requests", labels)
        self.duration = Histogram(f"{prefix}_request_duration_seconds", "Request duration, in seconds", labels)
        self.progress = Gauge(
            f"{prefix}_requests_in_progress",
            "Total requests currently in progress",
            labels,
            multiprocess_mode="livesum",
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self._progress: dict[tuple[str, str], Any] = {}

    def in_progress(self, method: str, path: str) -> Any:
        child = self._progress.get((method, path))
        if child is None:
            # Litestar's plugin labels requests in progress with status 200.
            child = self._progress[(method, path)] = self.progress.labels(method, path, 200, self.app_name)
        return child

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        key = (method, path, status)
        children = self._children.get(key)
        if children is None:
            values = (method, path, status, self.app_name)
            errors = self.errors.labels(*values) if status >= 500 else None
            children = self._children[key] = (self.requests.labels(*values), self.duration.labels(*values), errors)
        children[0].inc()
        children[1].observe(seconds)
        if children[2] is not None:
            children[2].inc()


_METRICS: dict[str, RequestMetrics] = {}


def request_metrics(app_name: str = "ticketing") -> RequestMetrics:
    """One set per process: the default Prometheus registry refuses a metric registered twice."""
    if app_name not in _METRICS:
        _METRICS[app_name] = RequestMetrics(app_name)
    return _METRICS[app_name]


METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


def exposition() -> bytes:
    """The metrics text for `/metrics`.

    With `PROMETHEUS_MULTIPROC_DIR` set (every stack `make run`, the tests and compose start),
    every process of the deployment (each API worker, the claims service, the worker, the
    projector) writes its metrics to files there; `MultiProcessCollector` reads them all and adds
    them up per label set (counters and histograms summed, gauges by their `multiprocess_mode`),
    so whichever API process answers shows the same totals. Without it, this process's registry.
    """
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


_encode_line = msgspec.json.Encoder(enc_hook=str).encode


class JsonLinesHandler(logging.Handler):
    """Records as JSON lines, formatted and written by a thread of its own every `interval` s.

    `emit` only appends the record to a deque (thread-safe), so a request pays for creating its
    record and nothing else. Fields given as `extra` become keys of the line."""

    STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

    def __init__(self, stream: TextIO | None = None, interval: float = 0.2) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        self._records: collections.deque[logging.LogRecord] = collections.deque()
        self._thread: threading.Thread | None = None
        self._flushing = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        self._records.append(record)
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._flushing:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="json-lines", daemon=True)
                self._thread.start()
                atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()

    def line(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields.update((k, v) for k, v in vars(record).items() if k not in self.STANDARD)
        # msgspec, not json.dumps: the same JSON (UTF-8, anything else as str) for 0.3 µs a line
        # instead of 3.8; the formatting thread shares the GIL with the requests.
        return _encode_line(fields).decode() + "\n"

    def flush(self) -> None:
        with self._flushing:
            records, take = self._records, self._records.popleft
            if not records:
                return
            text = "".join([self.line(take()) for _ in range(len(records))])  # later ones wait
            try:
                stream = self.stream or sys.stderr
                stream.write(text)
                stream.flush()
            except (OSError, ValueError):  # the stream is closed at shutdown
                pass


def log_access_as_json_lines() -> None:
    """Send `api.access` records to stderr as JSON lines (once per process)."""
    if not any(isinstance(h, JsonLinesHandler) for h in ACCESS.handlers):
        ACCESS.addHandler(JsonLinesHandler())
        ACCESS.setLevel(logging.INFO)
        ACCESS.propagate = False
