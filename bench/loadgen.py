"""The load generator: a separate process driving the API over HTTP with N virtual users.

`python -m bench.loadgen SPEC.json RESULT.json` reads a spec written by `bench.drive`, opens one
keep-alive HTTP/1.1 connection per virtual user (on uvloop), and prints `ready`. On `go` from
stdin it runs the closed loop (each user sends its next request as soon as the previous answer
has arrived), prints `finished` the moment the last answer is in (the parent samples CPU then),
and writes every request's raw outcome to RESULT.json:

    [start offset s, latency s, HTTP status (0 = transport error), code, tag, bytes, extra]

`code` is the error body's `code` (or the exception's name), `extra` the order id and what was
asked for. Per request the generator does as little as it can, or it would measure itself: the
HTTP client is a small asyncio protocol (request heads are encoded once per user, a response is
parsed only as far as status, headers and Content-Length), bodies are decoded only when an id or
an error code is needed, and all summarising is left to the parent. An aiohttp client cost about
300 µs of CPU per request here; this one costs a fraction of that (see `loadgen_us_per_request`
in the results).

Workloads (`spec["kind"]`):
- `ga_orders`: POST /orders for 1-4 tickets of one offer, until it is sold out and then
  `after_sellout` more attempts have been rejected;
- `seat_orders`: POST /orders for 2-4 adjacent seats in the rows nearest the stage that still
  have free seats (as this process knows them: every 201 marks its seats taken);
- `funnel`: the whole purchase of 1-2 tickets of one offer: hold, payment, the signed
  `payment_intent.succeeded` webhook Stripe would post (see `Generator.funnel`);
- `many_ga_orders`: as `ga_orders`, over several shows' offers at once;
- `get`: GET a list of URLs round robin (optionally with headers such as If-None-Match);
- `bust_get`: one user: hold some seats or cancel the order holding them (either changes the seat
  map's version), GET the seat map without If-None-Match (the first render of that version),
  then with it (a 304).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlsplit

import msgspec

Record = list[Any]


class _Id(msgspec.Struct):
    id: str


class _Error(msgspec.Struct):
    code: str = ""


class _Payment(msgspec.Struct):
    payment_intent_id: str
    amount: str
    currency: str


_decode_id = msgspec.json.Decoder(_Id).decode
_decode_payment = msgspec.json.Decoder(_Payment).decode
_decode_error = msgspec.json.Decoder(_Error).decode


def _code(status: int, raw: bytes) -> str:
    if status < 400 or not raw:
        return ""
    try:
        return _decode_error(raw).code
    except msgspec.DecodeError:
        return "undecodable"


class ResponseError(Exception):
    """The server answered something this client does not parse (or closed mid-response)."""


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, dict[str, str], bytes]] | None = None
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.head_end = -1
        self.status = 0
        self.headers: dict[str, str] = {}
        self.length = -1
        self.chunked = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport implements asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("connection closed before the response ended"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            try:
                self._parse()
            except (ValueError, IndexError, ResponseError) as error:
                self.waiter.set_exception(ResponseError(repr(error)))

    def _parse(self) -> None:
        buf = self.buffer
        if self.head_end < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            self.status = int(lines[0][9:12])
            for line in lines[1:]:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
            self.head_end = end + 4
            if self.status in (204, 304) or self.status < 200:
                self.length = 0
            elif "content-length" in self.headers:
                self.length = int(self.headers["content-length"])
            elif "chunked" in self.headers.get("transfer-encoding", ""):
                self.chunked = True
            else:
                raise ResponseError("response without Content-Length")
        if self.chunked:
            body = self._chunks()
            if body is None:
                return
        else:
            if len(buf) - self.head_end < self.length:
                return
            body = bytes(buf[self.head_end : self.head_end + self.length])
            del buf[: self.head_end + self.length]
        assert self.waiter is not None
        self.waiter.set_result((self.status, self.headers, body))
        if self.headers.get("connection", "").lower() == "close" and self.transport is not None:
            self.transport.close()
        self._reset()

    def _chunks(self) -> bytes | None:
        buf, at = self.buffer, self.head_end
        parts: list[bytes] = []
        while True:
            line_end = buf.find(b"\r\n", at)
            if line_end < 0:
                return None
            size = int(bytes(buf[at:line_end]).split(b";")[0], 16)
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", line_end)
                if trailer_end < 0:
                    return None
                del buf[: trailer_end + 4]
                return b"".join(parts)
            start = line_end + 2
            if len(buf) < start + size + 2:
                return None
            parts.append(bytes(buf[start : start + size]))
            at = start + size + 2

    async def send(self, request: bytes, timeout: float) -> tuple[int, dict[str, str], bytes]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[int, dict[str, str], bytes]] = loop.create_future()
        self.waiter = waiter
        expire = loop.call_later(timeout, _expire, waiter)
        self.transport.write(request)
        try:
            return await waiter
        finally:
            expire.cancel()
            self.waiter = None


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no complete response in time"))


class Client:
    """A virtual user's connection to the API, reopened when the server closed it."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.host_header = f"Host: {host}:{port}\r\n".encode()
        self.conn: Connection | None = None

    async def request(
        self, method: str, path: str, head: bytes = b"", body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        """`head`: extra header lines, each ending in CRLF, encoded beforehand by the caller."""
        if self.conn is None or self.conn.closed:
            loop = asyncio.get_running_loop()
            _, self.conn = await loop.create_connection(Connection, self.host, self.port)
        length = f"Content-Length: {len(body)}\r\n".encode() if body or method == "POST" else b""
        request = b"".join((f"{method} {path} HTTP/1.1\r\n".encode(), self.host_header, head, length, b"\r\n", body))
        try:
            return await self.conn.send(request, self.timeout)
        except BaseException:
            # Whatever is left on this connection belongs to a request given up on.
            if self.conn.transport is not None:
                self.conn.transport.close()
            self.conn = None
            raise


class Generator:
    """One run of one workload; `records` collects every request's outcome."""

    def __init__(self, spec: dict[str, Any], clients: list[Client]) -> None:
        self.spec = spec
        self.clients = clients
        self.records: list[Record] = []
        self.t0 = 0.0
        self.deadline = 0.0
        self.started = 0
        self.max_requests = int(spec.get("max_requests", 10**9))
        self.stop = False
        self.stopped_by = "condition"
        self.state: dict[str, Any] = {}
        self.auth = [
            f"Authorization: Bearer {t}\r\nContent-Type: application/json\r\n".encode() for t in spec.get("tokens", [])
        ]

    async def request(
        self, user: int, method: str, path: str, head: bytes = b"", body: bytes = b""
    ) -> tuple[int, bytes, float, float, dict[str, str]]:
        """Send one request on the user's connection; (status, body, start offset, latency, headers)."""
        self.started += 1
        start = time.perf_counter()
        try:
            status, headers, raw = await self.clients[user].request(method, path, head, body)
        except (OSError, TimeoutError, ResponseError) as error:
            return 0, type(error).__name__.encode(), start - self.t0, time.perf_counter() - start, {}
        return status, raw, start - self.t0, time.perf_counter() - start, headers

    def more(self) -> bool:
        """May another request start? Records which limit ended the run."""
        if self.stop:
            return False
        if self.started >= self.max_requests:
            self.stopped_by = "max_requests"
        elif time.perf_counter() >= self.deadline:
            self.stopped_by = "max_seconds"
        else:
            return True
        self.stop = True
        return False

    # -- workloads ---------------------------------------------------------------------------

    async def ga_orders(self, user: int) -> None:
        spec = self.spec
        path = "/api/v1/orders"
        bodies = {
            q: msgspec.json.encode({"items": [{"offer_id": spec["offer_id"], "quantity": q}]})
            for q in range(spec["min_quantity"], spec["max_quantity"] + 1)
        }
        token = user % len(self.auth)
        head = self.auth[token]
        rng = random.Random(spec.get("seed", 1) * 100_003 + user)
        state = self.state
        state.setdefault("tickets", 0)
        state.setdefault("sold_out_at", None)
        state.setdefault("rejected_after", 0)
        while self.more():
            quantity = rng.randint(spec["min_quantity"], spec["max_quantity"])
            status, raw, at, latency, _ = await self.request(user, "POST", path, head, bodies[quantity])
            extra: Any = [token, quantity]
            code = ""
            if status == 201:
                extra.append(_decode_id(raw).id)
                state["tickets"] += quantity
                if state["tickets"] >= spec["tickets"] and state["sold_out_at"] is None:
                    state["sold_out_at"] = at + latency
            else:
                code = raw.decode() if status == 0 else _code(status, raw)
                if code == "sold_out" and quantity == 1 and state["sold_out_at"] is None:
                    # One ticket refused: nothing was left when the service decided.
                    state["sold_out_at"] = at + latency
                if code == "sold_out" and state["sold_out_at"] is not None and at + latency >= state["sold_out_at"]:
                    state["rejected_after"] += 1
                    if state["rejected_after"] >= spec["after_sellout"]:
                        self.stop = True
            self.records.append([at, latency, status, code, "order", len(raw), extra])

    async def funnel(self, user: int) -> None:
        """The whole purchase, as a buyer and Stripe make it: hold (POST /orders), start the
        payment (POST /orders/{id}/payment, a PaymentIntent at the Stripe stand-in), then the
        `payment_intent.succeeded` event Stripe would post, signed with the webhook secret
        (POST /webhooks/stripe). Each step is a record (tags `hold`, `payment`, `webhook`); the
        webhook's record carries the order id, the quantity and the wall-clock time it was sent,
        so the parent can tell when the order's tickets were issued after it."""
        spec = self.spec
        offer = spec["offer_id"]
        head = self.auth[user % len(self.auth)]
        secret = spec["webhook_secret"].encode()
        rng = random.Random(spec.get("seed", 1) * 100_003 + user)
        state = self.state
        state.setdefault("sold_out_at", None)
        state.setdefault("rejected_after", 0)
        while self.more():
            quantity = rng.randint(spec["min_quantity"], spec["max_quantity"])
            body = msgspec.json.encode({"items": [{"offer_id": offer, "quantity": quantity}]})
            status, raw, at, latency, _ = await self.request(user, "POST", "/api/v1/orders", head, body)
            if status != 201:
                code = raw.decode() if status == 0 else _code(status, raw)
                if code == "sold_out":
                    state["sold_out_at"] = state["sold_out_at"] or at + latency
                    state["rejected_after"] += 1
                    if state["rejected_after"] >= spec["after_sellout"]:
                        self.stop = True
                self.records.append([at, latency, status, code, "hold", len(raw), [quantity]])
                continue
            order_id = _decode_id(raw).id
            self.records.append([at, latency, status, "", "hold", len(raw), [quantity, order_id]])
            path = f"/api/v1/orders/{order_id}/payment"
            status, raw, at, latency, _ = await self.request(user, "POST", path, head)
            if status != 200:
                self.records.append([at, latency, status, _code(status, raw), "payment", len(raw), [order_id]])
                continue
            payment = _decode_payment(raw)
            self.records.append([at, latency, status, "", "payment", len(raw), [order_id]])
            amount = round(float(payment.amount) * 100)
            sent = time.time()
            event = msgspec.json.encode({
                "id": f"evt_bench_{order_id}", "object": "event", "type": "payment_intent.succeeded",
                "created": int(sent), "livemode": False,
                "data": {"object": {
                    "id": payment.payment_intent_id, "object": "payment_intent", "status": "succeeded",
                    "amount": amount, "amount_received": amount, "currency": payment.currency.lower(),
                    "metadata": {"order_id": order_id},
                }},
            })  # fmt: skip
            stamp = str(int(sent))
            signature = hmac.new(secret, stamp.encode() + b"." + event, hashlib.sha256).hexdigest()
            hook = f"Content-Type: application/json\r\nStripe-Signature: t={stamp},v1={signature}\r\n".encode()
            status, raw, at, latency, _ = await self.request(user, "POST", "/api/v1/webhooks/stripe", hook, event)
            extra = [order_id, quantity, sent]
            self.records.append([at, latency, status, _code(status, raw), "webhook", len(raw), extra])

    async def many_ga_orders(self, user: int) -> None:
        """POST /orders for 1-4 tickets of one of several offers (a show drawn at random among
        those not yet known to be sold out), until every one is sold out and then
        `after_sellout` more attempts have been rejected."""
        spec = self.spec
        open_offers: list[str] = self.state.setdefault("open_offers", list(spec["offer_ids"]))
        self.state.setdefault("rejected_after", 0)
        head = self.auth[user % len(self.auth)]
        token = user % len(self.auth)
        rng = random.Random(spec.get("seed", 1) * 100_003 + user)
        while self.more():
            offer = rng.choice(open_offers) if open_offers else rng.choice(spec["offer_ids"])
            quantity = rng.randint(spec["min_quantity"], spec["max_quantity"])
            body = msgspec.json.encode({"items": [{"offer_id": offer, "quantity": quantity}]})
            status, raw, at, latency, _ = await self.request(user, "POST", "/api/v1/orders", head, body)
            extra: Any = [token, quantity, offer]
            code = ""
            if status == 201:
                extra.append(_decode_id(raw).id)
            else:
                code = raw.decode() if status == 0 else _code(status, raw)
                if code == "sold_out" and quantity == 1 and offer in open_offers:
                    open_offers.remove(offer)
                    if not open_offers:
                        self.state["sold_out_at"] = at + latency
                if code == "sold_out" and not open_offers:
                    self.state["rejected_after"] += 1
                    if self.state["rejected_after"] >= spec["after_sellout"]:
                        self.stop = True
            self.records.append([at, latency, status, code, "order", len(raw), extra])

    async def seat_orders(self, user: int) -> None:
        spec = self.spec
        path = "/api/v1/orders"
        offer = spec["offer_id"]
        token = user % len(self.auth)
        head = self.auth[token]
        rng = random.Random(spec.get("seed", 1) * 100_003 + user)
        view: SeatView = self.state["view"]
        while self.more():
            pick = view.pick(rng, rng.randint(spec["min_seats"], spec["max_seats"]))
            if pick is None:
                self.stop = True  # every seat is known to be taken
                break
            row, first, count = pick
            seats = view.rows[row][first : first + count]
            body = msgspec.json.encode({"items": [{"offer_id": offer, "seat_id": s} for s in seats]})
            status, raw, at, latency, _ = await self.request(user, "POST", path, head, body)
            extra: Any = [token, row, first, count]
            code = ""
            if status == 201:
                extra.append(_decode_id(raw).id)
                view.take(row, first, count)
                if view.free == 0:
                    self.state["sold_out_at"] = at + latency
            else:
                code = raw.decode() if status == 0 else _code(status, raw)
                if code == "seat_taken" and count == 1:
                    # A single seat refused is certainly taken, even if no 201 of ours took it.
                    view.take(row, first, 1, learned=True)
            self.records.append([at, latency, status, code, "order", len(raw), extra])

    async def get(self, user: int) -> None:
        urls: list[list[Any]] = self.spec["urls"]
        head = "".join(f"{k}: {v}\r\n" for k, v in self.spec.get("headers", {}).items()).encode()
        while self.more():
            index = self.state["next"] = self.state.get("next", -1) + 1
            path, tag = urls[index % len(urls)]
            status, raw, at, latency, _ = await self.request(user, "GET", path, head)
            self.records.append([at, latency, status, _code(status, raw), tag, len(raw), None])

    async def bust_get(self, user: int) -> None:
        spec = self.spec
        map_path = f"/api/v1/events/{spec['event_id']}/seat-map"
        # Alternately hold the same seats with a new order and cancel that order: both change
        # seat statuses, so each moves the map to a new version (and ETag).
        hold = msgspec.json.encode(
            {"items": [{"offer_id": spec["seat_offer_id"], "seat_id": seat} for seat in spec["bust_seats"]]}
        )
        held: str | None = spec.get("bust_order")
        keep = ("etag", "content-length", "content-encoding")
        while self.more():
            if held:
                path, body, extra = f"/api/v1/orders/{held}/cancel", b"", ["cancel", held]
            else:
                path, body, extra = "/api/v1/orders", hold, ["hold"]
            status, raw, at, latency, _ = await self.request(user, "POST", path, self.auth[0], body)
            if status == 201:
                held = _decode_id(raw).id
                extra.append(held)
            elif status == 200 and held:
                held = None
            self.records.append([at, latency, status, _code(status, raw), "bust", len(raw), extra])
            status, raw, at, latency, headers = await self.request(user, "GET", map_path)
            picked = {k: v for k, v in headers.items() if k in keep}
            self.records.append([at, latency, status, _code(status, raw), "cold", len(raw), picked])
            etag = picked.get("etag")
            if etag:
                head = f"If-None-Match: {etag}\r\n".encode()
                status, raw, at, latency, headers = await self.request(user, "GET", map_path, head)
                picked = {k: v for k, v in headers.items() if k in keep}
                self.records.append([at, latency, status, _code(status, raw), "not_modified", len(raw), picked])

    async def run(self) -> None:
        kind = self.spec["kind"]
        if kind == "seat_orders":
            self.state["view"] = SeatView(self.spec["rows"], self.spec["front_rank"])
        workload: Callable[[int], Awaitable[None]] = getattr(self, kind)
        users = int(self.spec["concurrency"])
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + float(self.spec["max_seconds"])
        await asyncio.gather(*(workload(u) for u in range(users)))


class SeatView:
    """The seats this process knows to be free, rows ordered from the stage backwards."""

    def __init__(self, rows: list[list[str]], front_rank: float) -> None:
        self.rows = rows
        self.free_flags = [bytearray(b"\x01" * len(r)) for r in rows]
        self.open_rows = list(range(len(rows)))  # rows with a free seat, best first
        self.free = sum(len(r) for r in rows)
        self.learned = 0
        self.front_rank = front_rank

    def pick(self, rng: random.Random, want: int) -> tuple[int, int, int] | None:
        """(row, first seat, count): `want` adjacent free seats in a row near the front.

        The row is drawn among the rows that still have free seats with a geometric bias to
        the front (mean rank `front_rank`); if no row near there has `want` adjacent free seats,
        fewer are taken, so the house still sells out when only single seats are left.
        """
        if not self.open_rows:
            return None
        for count in range(want, 0, -1):
            run = b"\x01" * count
            for _ in range(8):
                rank = min(int(rng.expovariate(1 / self.front_rank)), len(self.open_rows) - 1)
                row = self.open_rows[rank]
                flags = self.free_flags[row]
                # A search in C first: most draws land on rows without such a run, and listing
                # the starts of every draw cost the generator ~40-80 us per request.
                if run in flags:
                    starts = [i for i in range(len(flags) - count + 1) if all(flags[i : i + count])]
                    return row, rng.choice(starts), count
        row = self.open_rows[0]
        return row, self.free_flags[row].index(1), 1

    def take(self, row: int, first: int, count: int, *, learned: bool = False) -> None:
        flags = self.free_flags[row]
        for i in range(first, first + count):
            if flags[i]:
                flags[i] = 0
                self.free -= 1
                self.learned += learned
        if not any(flags) and row in self.open_rows:
            self.open_rows.remove(row)


async def main_async(spec_path: str, result_path: str) -> None:
    with open(spec_path, "rb") as source:
        spec: dict[str, Any] = msgspec.json.decode(source.read())
    concurrency = int(spec["concurrency"])
    url = urlsplit(spec["base_url"])
    assert url.hostname in ("127.0.0.1", "localhost", "::1"), "load goes to this machine only"
    clients = [Client(url.hostname, url.port or 80, float(spec.get("timeout", 30))) for _ in range(concurrency)]
    # One open connection per user before the clock starts, as established clients would have.
    await asyncio.gather(*(c.request("GET", "/health") for c in clients))
    generator = Generator(spec, clients)
    print("ready", flush=True)  # noqa: T201 - the protocol with the parent
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    cpu_before = os.times()
    wall_before = time.time()
    await generator.run()
    cpu_after = os.times()
    print("finished", flush=True)  # noqa: T201
    for client in clients:
        if client.conn is not None and client.conn.transport is not None:
            client.conn.transport.close()
    state = {k: v for k, v in generator.state.items() if k != "view"}
    view = generator.state.get("view")
    if isinstance(view, SeatView):
        state.update(free_seats_known=view.free, learned_taken=view.learned)
    result = {
        "records": generator.records,
        "state": state,
        "started_at": wall_before,
        "wall_s": generator.records and max(r[0] + r[1] for r in generator.records),
        "cpu_user_s": cpu_after.user - cpu_before.user,
        "cpu_system_s": cpu_after.system - cpu_before.system,
        "stopped_by": generator.stopped_by,
    }
    with open(result_path, "wb") as sink:
        sink.write(msgspec.json.encode(result))


def main() -> None:
    """Entry point of the generator process (see the module docstring)."""
    import uvloop

    spec_path, result_path = sys.argv[1], sys.argv[2]
    uvloop.run(main_async(spec_path, result_path))


if __name__ == "__main__":
    main()
