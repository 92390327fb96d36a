"""Stripe webhooks: verify the signature, store each event once, acknowledge fast.

Applying the event is a worker's job (dramatiq), so a slow or failing application never makes
Stripe retry the delivery. A delivery is stored before it is queued, and a stored delivery that
has not been applied yet is queued again whenever Stripe redelivers it (and by the periodic
reconciler, `workers/tasks.py`), so a queue that was down when the money arrived loses nothing.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, post

from api.inputs import MAX_DEPTH, RAW_BODY, TooDeeplyNested, check_json
from api.services import Services, Unavailable
from domain.errors import DomainError


class BadSignature(DomainError):
    code = "bad_signature"


class Acknowledged(msgspec.Struct):
    received: bool
    duplicate: bool
    event_id: str


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["Payments"]

    @post("/stripe", operation_id="stripeWebhook", exclude_from_auth=True, status_code=200, opt={RAW_BODY: True})
    async def stripe_webhook(self, request: Request[Any, Any, Any], services: Services) -> Acknowledged:
        """Stripe calls this; a bad or missing `Stripe-Signature` gets 400 and nothing is stored.

        503 (Stripe retries) when the delivery was stored but could not be queued; it is applied
        once the queue is back, by the reconciler or by Stripe's retry, whichever comes first."""
        payload = await request.body()
        signature = request.headers.get("stripe-signature")
        secret = services.settings.stripe_webhook_secret
        if not secret or not signature:
            raise BadSignature("missing Stripe-Signature")
        # Imported on first use: the SDK costs ~0.4 s of CPU, paid at every process's start otherwise.
        import stripe

        try:
            stripe.WebhookSignature.verify_header(payload.decode("utf-8", "replace"), signature, secret, 300)
        except stripe.SignatureVerificationError:
            raise BadSignature("invalid Stripe-Signature") from None
        try:
            body = msgspec.json.decode(payload)
        except RecursionError:
            raise TooDeeplyNested(f"the event is nested deeper than {MAX_DEPTH} levels") from None
        except msgspec.DecodeError:
            raise BadSignature("not a Stripe event") from None
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not isinstance(body.get("type"), str):
            raise BadSignature("not a Stripe event")
        # Only the depth: Stripe's text is not ours to judge (stored events are read back NUL-free).
        check_json(body, text=False)
        delivery_id, new = await services.command(
            lambda: services.inbox.receive("stripe", body["id"], body["type"], body), app=services.inbox, actor=None
        )
        if new or not await services.call(lambda: services.inbox.is_applied(delivery_id)):
            try:
                await services.call(lambda: services.tasks.queue_payment(delivery_id))
            except Unavailable.CAUSES as error:
                raise Unavailable("stored; it will be applied once the queue is back") from error
        return Acknowledged(received=True, duplicate=not new, event_id=body["id"])
