"""The API's response writes (api/http.py) and access log (api/observability.py)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from typing import Any

from api.http import CoalescingTransport
from api.observability import AccessRecord, JsonLinesHandler


class Recorder:
    """Stands in for uvloop's transport: records what reaches the socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name == "sockname" else default


def test_a_head_and_body_written_in_one_step_leave_in_one_write() -> None:
    async def scenario() -> Recorder:
        raw = Recorder()
        transport = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"{}")
        assert raw.writes == []  # nothing before the step ends
        assert transport.get_write_buffer_size() == 45
        await asyncio.sleep(0)
        transport.write(b"next")
        await asyncio.sleep(0)
        return raw

    raw = asyncio.run(scenario())
    assert raw.writes == [b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}", b"next"]


def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    async def scenario() -> tuple[Recorder, Recorder]:
        loop = asyncio.get_running_loop()
        closed, aborted = Recorder(), Recorder()
        first = CoalescingTransport(closed, loop)  # type: ignore[arg-type]
        first.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        first.close()
        second = CoalescingTransport(aborted, loop)  # type: ignore[arg-type]
        second.write(b"half a response")
        second.abort()
        await asyncio.sleep(0)
        return closed, aborted

    closed, aborted = asyncio.run(scenario())
    assert closed.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n"] and closed.closed
    assert aborted.writes == [] and aborted.aborted


def test_other_transport_calls_pass_through() -> None:
    raw = Recorder()
    transport = CoalescingTransport(raw, asyncio.new_event_loop())  # type: ignore[arg-type]
    assert transport.get_extra_info("sockname") == ("127.0.0.1", 8000)
    assert transport.is_closing() is False


def logged_at(level: int, *requests: tuple[str, str, str, int, float]) -> list[str]:
    """What the access log writes for `requests` while `api.access` is at `level`: the records
    Observe makes, through the handler it installs."""
    logger = logging.getLogger("test.access")
    output = io.StringIO()
    handler = JsonLinesHandler(output)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        for request_id, method, path, status, elapsed in requests:
            logger.info("%s %s %s", method, path, status,
                        extra={"request_id": request_id, "status": status, "ms": round(elapsed * 1000, 2)})  # fmt: skip
        handler.flush()
    finally:
        logger.removeHandler(handler)
    return output.getvalue().splitlines()


def test_access_lines_are_json_with_the_request_id() -> None:
    lines = logged_at(
        logging.INFO, ("abc-1", "POST", "/api/v1/orders", 201, 0.01234), ("abc-2", "GET", "/api/v1/events", 200, 0.0005)
    )
    first, second = (json.loads(line) for line in lines)
    assert first["request_id"] == "abc-1" and first["message"] == "POST /api/v1/orders 201"
    assert first["status"] == 201 and first["ms"] == 12.34 and first["level"] == "info"
    assert first["logger"] == "test.access" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert second["request_id"] == "abc-2" and second["ms"] == 0.5
    assert len(lines) == 2


def test_access_lines_follow_the_loggers_level() -> None:
    assert logged_at(logging.WARNING, ("abc-3", "GET", "/health", 200, 0.001)) == []


def test_the_lean_access_record_writes_the_same_line() -> None:
    output = io.StringIO()
    handler = JsonLinesHandler(output)
    handler.handle(AccessRecord("POST", "/api/v1/orders", 201, "abc-9", 0.01234))
    handler.flush()
    line = json.loads(output.getvalue())
    assert line["message"] == "POST /api/v1/orders 201" and line["logger"] == "api.access"
    assert line["request_id"] == "abc-9" and line["status"] == 201 and line["ms"] == 12.34
    assert set(line) == {"time", "level", "logger", "message", "request_id", "status", "ms"}
