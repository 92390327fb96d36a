"""localstripe, the Stripe stand-in of development and tests: its launcher
(`python -m workers.localstripe`) and the registration of our webhook with it.

localstripe hard-codes /tmp/localstripe.pickle and rewrites the whole pickle on every object it
stores, which makes each request slower than the last; the launcher keeps its state in a file of
ours and saves it at most once a second. It is a development tool: the production image does not
need it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import os
import pickle
import threading
import urllib.request
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from workers.processes import StackError

# localstripe accepts any key that starts with `sk_`; a fixed one keeps restarts predictable.
STRIPE_TEST_KEY = "sk_test_ticketing_localstripe"
STRIPE_WEBHOOK_NAME = "ticketing"
STRIPE_WEBHOOK_PATH = "/api/v1/webhooks/stripe"


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


def _run_localstripe(host: str, port: int, state: Path, webhook_url: str | None) -> None:
    """Serve localstripe on host:port with its state in `state` instead of /tmp: writes only
    mark the store dirty and a background task saves it at most once a second (and once more
    at shutdown).
    With webhook_url, the webhook is registered at start (secret: $STRIPE_WEBHOOK_SECRET), which
    survives restarts of this process, unlike a registration through `/_config/webhooks`.
    """
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
            pickle.dump(dict(store), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, state)

    def load() -> None:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers.localstripe", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--webhook-url", help="deliver events here ($STRIPE_WEBHOOK_SECRET)")
    args = parser.parse_args(argv)
    _run_localstripe(args.host, args.port, args.state.resolve(), args.webhook_url)


if __name__ == "__main__":
    main()
