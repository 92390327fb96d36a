"""Payouts against the real event store and localstripe: what localstripe accepts of a
destination charge (nothing: hence `StripeGateway.destination_charges`), and the intent of an
order whose organizer linked a payout account."""

from __future__ import annotations

from uuid import uuid4

import pytest
import stripe

from commands.boxoffice import BoxOffice
from commands.payments import PaymentPolicy
from commands.payments_gateway import StripeGateway
from domain.event import Event
from domain.placement import ItemRequest
from tests.integration.conftest import OnSale
from ticketing import Settings


@pytest.fixture
def sdk(settings: Settings) -> stripe.StripeClient:
    return stripe.StripeClient(settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base})


def test_localstripe_refuses_destination_charges_so_they_are_not_sent_to_it(
    settings: Settings, sdk: stripe.StripeClient
) -> None:
    """If localstripe ever takes them, this fails: then send them to it too."""
    with pytest.raises(stripe.InvalidRequestError, match="Unexpected"):
        sdk.v1.payment_intents.create(
            params={"amount": 1000, "currency": "eur", "transfer_data": {"destination": "acct_1"},
                    "application_fee_amount": 25}
        )  # fmt: skip
    intent = sdk.v1.payment_intents.create(params={"amount": 1000, "currency": "eur"})
    sdk.v1.payment_intents.update(intent.id, params={"payment_method": "pm_card_visa"})
    sdk.v1.payment_intents.confirm(intent.id)
    with pytest.raises(stripe.InvalidRequestError, match="Unexpected"):
        sdk.v1.refunds.create(params={"payment_intent": intent.id, "reverse_transfer": True})
    assert StripeGateway(settings.stripe_api_key, settings.stripe_api_base).destination_charges is False
    assert StripeGateway("sk_test_x").destination_charges is True


def test_the_intent_of_a_linked_organizers_order_names_the_account_and_fee(
    boxoffice: BoxOffice, on_sale: OnSale, sdk: stripe.StripeClient
) -> None:
    boxoffice.payment_policy = PaymentPolicy(platform_fee_basis_points=250)
    show = boxoffice.load(on_sale.event_id, "event", Event)
    linked = {show.organizer_id: "acct_dev_linked"}
    boxoffice.payout_account_of = lambda owner: linked.get(owner, "")
    order, _ = boxoffice.place_order(uuid4(), [ItemRequest(on_sale.ga_offer, 1)])
    intent = boxoffice.start_payment(order.id).intent
    assert intent is not None
    metadata = sdk.v1.payment_intents.retrieve(intent.id).to_dict()["metadata"]
    assert metadata["payout_destination"] == "acct_dev_linked" and metadata["platform_fee"] == "63"  # 2.5 % of 25.00

    linked.clear()  # an organizer without a payout account: the platform collects, as before
    other, _ = boxoffice.place_order(uuid4(), [ItemRequest(on_sale.ga_offer, 1)])
    unlinked = boxoffice.start_payment(other.id).intent
    assert unlinked is not None
    assert "payout_destination" not in sdk.v1.payment_intents.retrieve(unlinked.id).to_dict()["metadata"]
