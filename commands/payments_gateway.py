"""The payment provider as the commands see it, and its Stripe adapter (thin, no rules)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode
from uuid import UUID

import stripe

from domain.errors import DomainError

log = logging.getLogger("payments")


class PaymentProviderError(DomainError):
    """The provider failed or refused; nothing changed on our side (502)."""

    code = "payment_provider_error"


@dataclass(frozen=True)
class Intent:
    id: str
    client_secret: str
    amount: int
    currency: str
    status: str
    order_id: str | None = None


@dataclass(frozen=True)
class ProviderRefund:
    id: str
    amount: int
    status: str


class PaymentGateway(Protocol):
    def create_intent(self, *, order_id: UUID, amount: int, currency: str, description: str) -> Intent: ...

    def get_intent(self, intent_id: str) -> Intent: ...

    def refund(self, *, intent_id: str, amount: int, idempotency_key: str, reason: str) -> ProviderRefund: ...

    def create_connect_account(self, *, owner: UUID, email: str) -> str: ...

    def onboarding_link(self, account: str, *, refresh_url: str, return_url: str) -> str: ...


class StripeGateway:
    """PaymentIntents and refunds through the official SDK (Stripe, or localstripe in development)."""

    def __init__(self, api_key: str, api_base: str = "") -> None:
        addresses: Any = {"api": api_base} if api_base else None
        self.client = stripe.StripeClient(api_key, base_addresses=addresses, max_network_retries=2)
        # localstripe has no Connect (accounts, account links): in development (STRIPE_API_BASE
        # set) the onboarding answers from a stand-in instead (`DevConnect`).
        self.connect: StripeConnect | DevConnect = DevConnect(api_base) if api_base else StripeConnect(self.client)

    def create_connect_account(self, *, owner: UUID, email: str) -> str:
        return self.connect.create_connect_account(owner=owner, email=email)

    def onboarding_link(self, account: str, *, refresh_url: str, return_url: str) -> str:
        return self.connect.onboarding_link(account, refresh_url=refresh_url, return_url=return_url)

    def create_intent(self, *, order_id: UUID, amount: int, currency: str, description: str) -> Intent:
        try:
            intent = self.client.v1.payment_intents.create(
                params={
                    "amount": amount,
                    "currency": currency.lower(),
                    # localstripe accepts only these parameters, and they are all Stripe needs.
                    "metadata": {"order_id": str(order_id), "description": description[:400]},
                },
                # Stripe returns the same intent for a repeated key, even across our processes.
                options={"idempotency_key": f"order-{order_id}"},
            )
        except stripe.StripeError as error:
            raise PaymentProviderError(f"the payment provider refused: {error.user_message or error}") from error
        return _intent(intent)

    def get_intent(self, intent_id: str) -> Intent:
        try:
            return _intent(self.client.v1.payment_intents.retrieve(intent_id))
        except stripe.StripeError as error:
            raise PaymentProviderError(f"the payment provider failed: {error.user_message or error}") from error

    def refund(self, *, intent_id: str, amount: int, idempotency_key: str, reason: str) -> ProviderRefund:
        """Refund once per `idempotency_key`. Stripe's own key lasts 24 hours and a stand-in may
        ignore it, so the key is also written into the refund's metadata and a refund that
        already carries it is returned instead of making a second one (a worker that died
        after the provider refunded, or a delivery applied again, refunds nothing more)."""
        try:
            earlier = self._refund_with_key(intent_id, idempotency_key)
            refund = earlier or self.client.v1.refunds.create(
                params={
                    "payment_intent": intent_id,
                    "amount": amount,
                    "metadata": {"reason": reason[:200], "idempotency_key": idempotency_key},
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as error:
            raise PaymentProviderError(f"the refund was refused: {error.user_message or error}") from error
        return ProviderRefund(id=refund.id, amount=int(refund.amount), status=str(refund.status))

    def _refund_with_key(self, intent_id: str, idempotency_key: str) -> Any:
        refunds = self.client.v1.refunds.list(params={"payment_intent": intent_id, "limit": 100})
        for refund in refunds.auto_paging_iter():
            metadata = refund.to_dict().get("metadata") or {}
            if metadata.get("idempotency_key") == idempotency_key:
                return refund
        return None


class StripeConnect:
    """The organizer's payout account: a Stripe Connect express account and its onboarding link."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    def create_connect_account(self, *, owner: UUID, email: str) -> str:
        try:
            account = self.client.v1.accounts.create(
                params={"type": "express", "email": email, "metadata": {"account_id": str(owner)}},
                # One Stripe account per organizer, even when two requests race.
                options={"idempotency_key": f"connect-{owner}"},
            )
        except stripe.StripeError as error:
            raise PaymentProviderError(f"the payment provider refused: {error.user_message or error}") from error
        return str(account.id)

    def onboarding_link(self, account: str, *, refresh_url: str, return_url: str) -> str:
        try:
            link = self.client.v1.account_links.create(
                params={
                    "account": account,
                    "refresh_url": refresh_url,
                    "return_url": return_url,
                    "type": "account_onboarding",
                }
            )
        except stripe.StripeError as error:
            raise PaymentProviderError(f"the payment provider refused: {error.user_message or error}") from error
        return str(link.url)


class DevConnect:
    """Development stand-in for Stripe Connect, which localstripe does not implement: the account
    id is derived from the organizer's id (`acct_dev_…`, the same on every call), and the link
    points at the localstripe host with the return URL, where no onboarding happens."""

    def __init__(self, api_base: str) -> None:
        self.api_base = api_base.rstrip("/")

    def create_connect_account(self, *, owner: UUID, email: str) -> str:
        return f"acct_dev_{owner.hex[:16]}"

    def onboarding_link(self, account: str, *, refresh_url: str, return_url: str) -> str:
        return f"{self.api_base}/dev/connect/{account}/onboarding?{urlencode({'return_url': return_url})}"


def _intent(intent: Any) -> Intent:
    metadata = getattr(intent, "metadata", None)
    order_id = None
    if metadata is not None:
        try:
            order_id = metadata["order_id"]
        except KeyError:
            order_id = None
    return Intent(
        id=intent.id,
        client_secret=intent.client_secret or "",
        amount=int(intent.amount),
        currency=str(intent.currency).upper(),
        status=str(intent.status),
        order_id=order_id,
    )
