"""A refused order leaves no cyclic garbage in the API process.

Most requests of a seated on-sale are refused (409 seat_taken). Each refusal is an exception
raised out of `await`; if the awaiting frame still held the future that carries it, the
exception, its traceback, the frames and the future would form a cycle that only the cyclic
collector frees, and its passes cost an API process a quarter of its CPU (see
`commands.claims.submit_and_wait`). Reference counting must free everything of a refusal.
"""

from __future__ import annotations

import asyncio
import gc
from types import SimpleNamespace
from uuid import uuid4

from api.orders import OrderCreate, OrderItemCreate, place_order
from commands.claims import ClaimRequest
from domain.errors import Conflict


class RefusingClaims:
    """A claims adapter that refuses every order the way both real adapters do: the waiter gets
    the domain error, without a traceback, on a later turn of the event loop."""

    def submit(self, request: ClaimRequest) -> None:
        assert request.waiter is not None
        error = Conflict("seat A-1 is taken", code="seat_taken")
        request.waiter.get_loop().call_soon(request.waiter.set_exception, error)


async def refuse(times: int) -> int:
    services = SimpleNamespace(boxoffice=SimpleNamespace(claims=RefusingClaims()))
    data = OrderCreate(items=[OrderItemCreate(offer_id=uuid4(), seat_id=uuid4())])
    refused = 0
    for _ in range(times):
        try:
            await place_order(services, uuid4(), data, None)  # type: ignore[arg-type]
        except Conflict:
            refused += 1
    return refused


def test_refused_orders_are_freed_by_reference_counting() -> None:
    gc.collect()
    gc.disable()
    try:
        assert asyncio.run(refuse(200)) == 200
        garbage = gc.collect()
    finally:
        gc.enable()
    # asyncio.run itself leaves a few cycles (its loop and runner); 200 refusals would leave thousands.
    assert garbage < 100, f"{garbage} objects in reference cycles after 200 refused orders"
