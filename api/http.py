"""uvicorn's httptools protocol, answering each response in one write.

uvicorn writes a response's head when the app sends `http.response.start` and its body when the
app sends `http.response.body`: two `send()` system calls per response, each a segment on the
wire and (on the same machine) a wake-up of the client. In a hot-seats profile (py-spy `--gil`)
those two writes were 24% of an API process's samples. Here the connection's transport is
wrapped so that everything written during one event-loop step goes out as one write at the end
of that step (`loop.call_soon`): a response's head and body, sent one after the other by the
app, leave together. Nothing waits longer than the rest of the current step.

It also answers requests it cannot parse in the API's error shape (JSON), not uvicorn's plain text.

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


class HttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def send_400_response(self, msg: str) -> None:
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(MALFORMED)]
        head += [b"connection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + MALFORMED)
        self.transport.close()
