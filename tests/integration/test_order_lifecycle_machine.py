"""A hypothesis state machine over the order lifecycle against the real event store and localstripe.

Buyers place orders, start payments, pay (sometimes after the hold lapsed), fail, expire,
refund some tickets, and providers repeat their deliveries in any order. After every step:
money captured minus refunded equals the value of the valid tickets, no seat has two valid
tickets, and the offer's counters match the orders.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from uuid import UUID, uuid4

import stripe
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from commands.base import utcnow
from commands.boxoffice import BoxOffice
from domain.errors import Conflict, Gone, Invalid
from domain.offer import Offer
from domain.order import Order
from domain.placement import ItemRequest
from domain.seat import Seat
from tests.integration.conftest import OnSale, put_on_sale
from ticketing import Settings, open_boxoffice

SETTINGS: Settings | None = None


class OrderLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert SETTINGS is not None
        self.app: BoxOffice = open_boxoffice(SETTINGS)
        self.sdk = stripe.StripeClient(SETTINGS.stripe_api_key, base_addresses={"api": SETTINGS.stripe_api_base})
        self.sale: OnSale | None = None
        self.orders: list[UUID] = []
        self.clock = utcnow()

    @initialize()
    def open_sale(self) -> None:
        self.sale = put_on_sale(self.app, ga_quantity=6, seats=3, max_per_order=4)

    def order(self, index: int) -> Order:
        return self.app.get_order(self.orders[index % len(self.orders)])

    # Rules ----------------------------------------------------------------------------

    @rule(quantity=st.integers(1, 4))
    def place_ga(self, quantity: int) -> None:
        assert self.sale is not None
        try:
            order, _ = self.app.place_order(uuid4(), [ItemRequest(self.sale.ga_offer, quantity)], at=self.clock)
        except Conflict:
            return
        self.orders.append(order.id)

    @rule(seat=st.integers(0, 2), with_ga=st.booleans())
    def place_seat(self, seat: int, with_ga: bool) -> None:
        assert self.sale is not None
        items = [ItemRequest(self.sale.seat_offer, 1, self.sale.seats[seat])]
        if with_ga:
            items.append(ItemRequest(self.sale.ga_offer, 1))
        try:
            order, _ = self.app.place_order(uuid4(), items, at=self.clock)
        except Conflict:
            return
        self.orders.append(order.id)

    @precondition(lambda self: self.orders)
    @rule(index=st.integers(0, 100))
    def start_payment(self, index: int) -> None:
        order = self.order(index)
        with contextlib.suppress(Conflict, Gone):
            self.app.start_payment(order.id, at=self.clock)

    @precondition(lambda self: self.orders)
    @rule(index=st.integers(0, 100), repeat=st.integers(1, 3))
    def buyer_pays(self, index: int, repeat: int) -> None:
        """Checkout: start the payment, then the card is charged and Stripe reports it."""
        self.start_payment(index)
        self.provider_reports_success(index, repeat)

    @precondition(lambda self: self.orders)
    @rule(index=st.integers(0, 100), repeat=st.integers(1, 3))
    def provider_reports_success(self, index: int, repeat: int) -> None:
        """Stripe charged the card (possibly after the hold lapsed) and may say so more than once."""
        order = self.order(index)
        intent_id = order.payment_intent_id
        if intent_id is None:
            return
        intent = self.sdk.v1.payment_intents.retrieve(intent_id)
        if intent.status != "succeeded":
            self.sdk.v1.payment_intents.update(intent_id, params={"payment_method": "pm_card_visa"})
            self.sdk.v1.payment_intents.confirm(intent_id)
        for _ in range(repeat):
            self.app.capture_payment(order.id, intent_id, order.total, at=self.clock)

    @precondition(lambda self: self.orders)
    @rule(index=st.integers(0, 100))
    def provider_reports_failure(self, index: int) -> None:
        order = self.order(index)
        if order.payment_intent_id:
            self.app.record_payment_failure(order.id, order.payment_intent_id, "card declined")

    @rule(minutes=st.integers(1, 20))
    def time_passes(self, minutes: int) -> None:
        self.clock += timedelta(minutes=minutes)

    @precondition(lambda self: self.orders)
    @rule(index=st.integers(0, 100))
    def expiry_fires(self, index: int) -> None:
        self.app.expire_hold(self.order(index).id, at=self.clock)

    @precondition(lambda self: self.orders)
    @rule(index=st.integers(0, 100))
    def buyer_cancels(self, index: int) -> None:
        with contextlib.suppress(Conflict):
            self.app.cancel_order(self.order(index).id, at=self.clock)

    @precondition(lambda self: self.orders)
    @rule(index=st.integers(0, 100), pick=st.lists(st.integers(0, 7), max_size=3, unique=True), twice=st.booleans())
    def organizer_refunds(self, index: int, pick: list[int], twice: bool) -> None:
        order = self.order(index)
        valid = order.valid_tickets()
        chosen = [valid[i]["id"] for i in pick if i < len(valid)] or None
        for _ in range(2 if twice else 1):
            with contextlib.suppress(Conflict, Invalid):
                self.app.refund_order(order.id, actor_id=UUID(int=0), actor_role="admin", ticket_ids=chosen)

    # Invariants -----------------------------------------------------------------------

    @invariant()
    def money_matches_valid_tickets(self) -> None:
        for order_id in self.orders:
            order = self.app.get_order(order_id)
            valid_value = sum(t["price"] for t in order.valid_tickets())
            assert order.amount_paid - order.amount_refunded == valid_value, order.status
            if order.status in ("held", "cancelled", "expired"):
                assert order.valid_tickets() == []

    @invariant()
    def no_seat_has_two_valid_tickets_and_counters_match(self) -> None:
        if self.sale is None:
            return
        orders = [self.app.get_order(o) for o in self.orders]
        valid = [t for o in orders for t in o.valid_tickets()]
        seats = [t["seat_id"] for t in valid if t["seat_id"] is not None]
        assert len(seats) == len(set(seats))
        for seat_id in self.sale.seats:
            seat = self.app.load(seat_id, "seat", Seat)
            holders = [o for o in orders if o.status == "held" and seat_id in o.seat_ids()]
            assert (seat.status == "sold") == (seat_id in seats)
            assert (seat.status == "held") == bool(holders)
        offer = self.app.load(self.sale.ga_offer, "offer", Offer)
        ga_valid = sum(1 for t in valid if t["offer_id"] == self.sale.ga_offer)
        held = sum(o.quantities_by_offer().get(self.sale.ga_offer, 0) for o in orders if o.status == "held")
        assert offer.sold == ga_valid
        assert offer.held == held
        assert offer.held + offer.sold <= 6

    def teardown(self) -> None:
        self.app.close()


def test_order_lifecycle_keeps_money_tickets_and_inventory_consistent(settings: Settings) -> None:
    global SETTINGS  # noqa: PLW0603 - the state machine class is instantiated by hypothesis
    SETTINGS = settings
    run = OrderLifecycle.TestCase
    run.settings = settings_for_ci()
    run().runTest()


def settings_for_ci() -> settings:
    return settings(
        max_examples=20,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
