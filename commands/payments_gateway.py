"""The payment provider as the commands see it, and its Stripe adapter (thin, no rules)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode
from uuid import UUID

from domain.errors import DomainError

if TYPE_CHECKING:
    # The SDK is imported where it is first used: importing it costs ~0.4 s of CPU, paid by every
    # process that opens the box office (claims service, projector, notifier, ...) at each start.
    import stripe
    from stripe.params import PaymentIntentCreateParams, RefundCreateParams

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
class Payout:
    """Where a destination charge sends the money (the organizer's Connect account) and what
    the platform keeps of it (Stripe's `application_fee_amount`, minor units)."""

    destination: str
    application_fee: int


@dataclass(frozen=True)
class PayoutStatus:
    """What Stripe says of a Connect account: may it take charges, is it paid out, is its
    onboarding finished."""

    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool


@dataclass(frozen=True)
class ProviderRefund:
    id: str
    amount: int
    status: str


class PaymentGateway(Protocol):
    def create_intent(
        self, *, order_id: UUID, amount: int, currency: str, description: str, payout: Payout | None = None
    ) -> Intent: ...

    def get_intent(self, intent_id: str) -> Intent: ...

    def refund(self, *, intent_id: str, amount: int, idempotency_key: str, reason: str) -> ProviderRefund: ...

    def create_connect_account(self, *, owner: UUID, email: str) -> str: ...

    def onboarding_link(self, account: str, *, refresh_url: str, return_url: str) -> str: ...

    def payout_status(self, account: str) -> PayoutStatus | None: ...


class StripeGateway:
    """PaymentIntents and refunds through the official SDK (Stripe, or localstripe in development)."""

    def __init__(self, api_key: str, api_base: str = "", publishable_key: str = "") -> None:
        self._api_key = api_key
        self._addresses: Any = {"api": api_base} if api_base else None
        # What the checkout page gives Stripe.js (api/web/checkout.py); empty: no Stripe.js.
        self.publishable_key = publishable_key
        # localstripe has no Connect (accounts, account links): in development (STRIPE_API_BASE
        # set) the onboarding answers from a stand-in instead (`DevConnect`).
        self.connect: StripeConnect | DevConnect = DevConnect(api_base) if api_base else StripeConnect(self.client)
        # Destination charges (`transfer_data`, `application_fee_amount`) and their refunds
        # (`reverse_transfer`, `refund_application_fee`) are Connect too: localstripe answers
        # 400 "Unexpected transfer_data, application_fee_amount" (and its accounts would not
        # exist anyway), so against it they are recorded in the intent's metadata only.
        self.destination_charges = isinstance(self.connect, StripeConnect)

    @cached_property
    def client(self) -> stripe.StripeClient:
        import stripe

        return stripe.StripeClient(self._api_key, base_addresses=self._addresses, max_network_retries=2)

    def create_connect_account(self, *, owner: UUID, email: str) -> str:
        return self.connect.create_connect_account(owner=owner, email=email)

    def onboarding_link(self, account: str, *, refresh_url: str, return_url: str) -> str:
        return self.connect.onboarding_link(account, refresh_url=refresh_url, return_url=return_url)

    def payout_status(self, account: str) -> PayoutStatus | None:
        return self.connect.payout_status(account)

    def create_intent(
        self, *, order_id: UUID, amount: int, currency: str, description: str, payout: Payout | None = None
    ) -> Intent:
        import stripe

        try:
            intent = self.client.v1.payment_intents.create(
                params=intent_params(
                    order_id=order_id,
                    amount=amount,
                    currency=currency,
                    description=description,
                    payout=payout,
                    destination_charges=self.destination_charges,
                ),
                # Stripe returns the same intent for a repeated key, even across our processes.
                options={"idempotency_key": f"order-{order_id}"},
            )
        except stripe.StripeError as error:
            raise PaymentProviderError(f"the payment provider refused: {error.user_message or error}") from error
        return _intent(intent)

    def get_intent(self, intent_id: str) -> Intent:
        import stripe

        try:
            return _intent(self.client.v1.payment_intents.retrieve(intent_id))
        except stripe.StripeError as error:
            raise PaymentProviderError(f"the payment provider failed: {error.user_message or error}") from error

    def refund(self, *, intent_id: str, amount: int, idempotency_key: str, reason: str) -> ProviderRefund:
        """Refund once per `idempotency_key`. Stripe's own key lasts 24 hours and a stand-in may
        ignore it, so the key is also written into the refund's metadata and a refund that
        already carries it is returned instead of making a second one (a worker that died
        after the provider refunded, or a delivery applied again, refunds nothing more)."""
        import stripe

        try:
            earlier = self._refund_with_key(intent_id, idempotency_key)
            params: RefundCreateParams = {
                "payment_intent": intent_id,
                "amount": amount,
                "metadata": {"reason": reason[:200], "idempotency_key": idempotency_key},
            }
            if earlier is None and self.destination_charges and self._is_destination_charge(intent_id):
                # The organizer's share is taken back from their account, and the platform's fee
                # given back in proportion, as Stripe documents for refunding destination charges
                # (otherwise the platform alone would pay for every refund).
                params["reverse_transfer"] = True
                params["refund_application_fee"] = True
            refund = earlier or self.client.v1.refunds.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as error:
            raise PaymentProviderError(f"the refund was refused: {error.user_message or error}") from error
        return ProviderRefund(id=refund.id, amount=int(refund.amount), status=str(refund.status))

    def _is_destination_charge(self, intent_id: str) -> bool:
        intent = self.client.v1.payment_intents.retrieve(intent_id)
        return bool(intent.to_dict().get("transfer_data"))

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
        import stripe

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
        import stripe

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

    def payout_status(self, account: str) -> PayoutStatus | None:
        """What Stripe says of the account now (None when it cannot be asked: the dashboard
        then shows only that an account is linked)."""
        import stripe

        try:
            found = self.client.v1.accounts.retrieve(account).to_dict()
        except stripe.StripeError as error:
            log.warning("payout account %s: Stripe did not answer: %s", account, error)
            return None
        return PayoutStatus(
            charges_enabled=bool(found.get("charges_enabled")),
            payouts_enabled=bool(found.get("payouts_enabled")),
            details_submitted=bool(found.get("details_submitted")),
        )


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

    def payout_status(self, account: str) -> PayoutStatus | None:
        return None  # no onboarding happens here, so there is nothing to tell


def intent_params(
    *, order_id: UUID, amount: int, currency: str, description: str, payout: Payout | None, destination_charges: bool
) -> PaymentIntentCreateParams:
    """The PaymentIntent to create. With a `payout`, Stripe makes it a destination charge: the
    money goes to the organizer's account less the platform's fee. The destination and fee are
    also kept in the metadata (any gateway keeps that; it is what a stand-in without Connect can
    show, and what Stripe's dashboard shows beside the order id)."""
    metadata = {"order_id": str(order_id), "description": description[:400]}
    params: PaymentIntentCreateParams = {"amount": amount, "currency": currency.lower(), "metadata": metadata}
    if payout is not None:
        metadata |= {"payout_destination": payout.destination, "platform_fee": str(payout.application_fee)}
        if destination_charges:
            params["transfer_data"] = {"destination": payout.destination}
            if payout.application_fee > 0:
                params["application_fee_amount"] = payout.application_fee
    return params


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
