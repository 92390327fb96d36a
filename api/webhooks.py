"""Stripe webhooks: verify the signature, store each event once, acknowledge fast.

Applying the event is a worker's job (dramatiq), so a slow or failing application never makes
Stripe retry the delivery, and a retried delivery is recognised as a duplicate.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import stripe
from litestar import Controller, Request, post

from api.services import Services
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

    @post("/stripe", operation_id="stripeWebhook", exclude_from_auth=True, status_code=200)
    async def stripe_webhook(self, request: Request[Any, Any, Any], services: Services) -> Acknowledged:
        """Stripe calls this; a bad or missing `Stripe-Signature` gets 400 and nothing is stored."""
        payload = await request.body()
        signature = request.headers.get("stripe-signature")
        secret = services.settings.stripe_webhook_secret
        if not secret or not signature:
            raise BadSignature("missing Stripe-Signature")
        try:
            stripe.WebhookSignature.verify_header(payload.decode("utf-8", "replace"), signature, secret, 300)
            body = json.loads(payload)
        except (stripe.SignatureVerificationError, ValueError):
            raise BadSignature("invalid Stripe-Signature") from None
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not isinstance(body.get("type"), str):
            raise BadSignature("not a Stripe event")
        delivery_id, new = await services.command(
            lambda: services.inbox.receive("stripe", body["id"], body["type"], body), app=services.inbox
        )
        if new:
            services.actors.apply_provider_event.send(str(delivery_id))
        return Acknowledged(received=True, duplicate=not new, event_id=body["id"])
