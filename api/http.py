"""uvicorn's httptools protocol, answering each response in one write.

uvicorn writes a response's head when the app sends `http.response.start` and its body when the
app sends `http.response.body`: two `send()` system calls per response, each a segment on the
wire and (on the same machine) a wake-up of the client. In a hot-seats profile (py-spy `--gil`)
those two writes were 24% of an API process's samples. Here the connection's transport is
wrapped so that everything written during one event-loop step goes out as one write at the end
of that step (`loop.call_soon`): a response's head and body, sent one after the other by the
app, leave together. Nothing waits longer than the rest of the current step.

It also answers requests it cannot parse in the API's error shape (JSON), not uvicorn's plain text,
and refuses a request head (request line and headers) larger than `MAX_HEAD_BYTES` with 431:
httptools sets no limit of its own, and uvicorn's `h11_max_incomplete_event_size` applies only to
its h11 protocol.

Serve it with `uvicorn --http api.http:HttpProtocol`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport whose writes of one event-loop step are sent as one."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        # Everything else (is_closing, get_extra_info, pause_reading, set_protocol ...) as is.
        return getattr(self._transport, name)


# What uvicorn answers (as plain text) to a request it cannot parse: a control character in a
# header, a broken request line. Clients get the API's one error shape instead.
MALFORMED = b'{"error":"malformed HTTP request","code":"bad_request"}'


# The largest request head (request line and headers) accepted, as in common proxies' defaults.
MAX_HEAD_BYTES = 16 * 1024
TOO_LARGE = b'{"error":"the request headers are too large (16 KiB at most)","code":"headers_too_large"}'


class HeadTooLarge(Exception):
    """Raised from a parser callback: httptools stops and uvicorn answers (send_400_response)."""


class HttpProtocol(HttpToolsProtocol):
    # How many bytes of the current request's head can have arrived: while its head is incomplete,
    # every chunk counts whole (an upper bound: a chunk may also hold the end of the previous request).
    _received = 0
    _in_head = False
    _refusing = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    # The head is measured per chunk and per request, never per header: counting in the parser's
    # per-header callback cost 7.5 µs of a POST /orders' ~20 µs of parsing (8 headers, measured
    # in process), for a limit almost no request comes near.
    def data_received(self, data: bytes) -> None:
        if self._in_head:
            # A head that never ends (one endless header) is cut off here, before httptools has
            # buffered much more of it: the chunks counted so far were all head.
            if self._received > MAX_HEAD_BYTES and not self._refusing:
                self._refusing = True
                self.send_400_response("request head too large")
                return
            self._received += len(data)
        else:
            self._received = len(data)  # a request that begins in this chunk has at most this much head
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._in_head = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        # Only a request whose chunks could hold a head this large is measured exactly.
        if self._received > MAX_HEAD_BYTES and self._head_size() > MAX_HEAD_BYTES:
            self._refusing = True
            raise HeadTooLarge  # httptools stops; uvicorn answers with send_400_response
        super().on_headers_complete()

    def _head_size(self) -> int:
        """The request target and the headers as received (each header with its ': ' and CRLF)."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def send_400_response(self, msg: str) -> None:
        status, body = (
            (b"431 Request Header Fields Too Large", TOO_LARGE) if self._refusing else (b"400 Bad Request", MALFORMED)
        )
        head = [b"HTTP/1.1 " + status + b"\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body)]
        head += [b"connection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
