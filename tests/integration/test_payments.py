"""Payment commands against the real event store and localstripe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from commands.boxoffice import BoxOffice
from domain.errors import Forbidden, Gone, NotFound
from domain.offer import Offer
from domain.order import compute_fee
from domain.placement import ItemRequest
from domain.seat import Seat
from tests.integration.conftest import put_on_sale
from ticketing import Settings


def free_show(app: BoxOffice, starts_in: timedelta) -> tuple[UUID, UUID, UUID]:
    venue = app.create_venue(name="Free hall", address="", city="Lyon", country="FR", capacity=100)
    start = datetime.now(UTC) + starts_in
    organizer = uuid4()
    show = app.create_event(organizer_id=organizer, venue_id=venue.id, title="Open day", description="",
                            start_time=start, end_time=start + timedelta(hours=2))  # fmt: skip
    tier = app.add_tier(show.id, name="Entry", kind="general", section_ids=[])
    offer = app.add_offer(show.id, tier, name="Free", price=0, currency="EUR", quantity_for_sale=50)
    app.publish_event(show.id)
    return show.id, offer.id, organizer


def test_a_free_order_is_confirmed_without_the_payment_provider(boxoffice: BoxOffice) -> None:
    _, offer, _ = free_show(boxoffice, timedelta(days=5))
    order, _ = boxoffice.place_order(uuid4(), [ItemRequest(offer, 2)])
    started = boxoffice.start_payment(order.id)
    assert started.intent is None
    assert started.order.status == "paid" and len(started.order.tickets) == 2
    assert started.order.payment_intent_id is None


def test_buyers_refund_only_before_the_cutoff_organizers_any_time(boxoffice: BoxOffice) -> None:
    _, offer, organizer = free_show(boxoffice, timedelta(hours=10))
    buyer = uuid4()
    order, _ = boxoffice.place_order(buyer, [ItemRequest(offer, 2)])
    boxoffice.start_payment(order.id)
    with pytest.raises(Forbidden):
        boxoffice.refund_order(order.id, actor_id=buyer, actor_role="attendee")
    with pytest.raises(NotFound):
        boxoffice.refund_order(order.id, actor_id=uuid4(), actor_role="organizer")
    first = boxoffice.get_order(order.id).tickets[0]["id"]
    refunded = boxoffice.refund_order(order.id, actor_id=organizer, actor_role="organizer", ticket_ids=[first])
    assert refunded.status == "partially_refunded"
    assert [t["status"] for t in refunded.tickets] == ["voided", "valid"]


def test_fees_are_part_of_the_total_and_spread_over_the_tickets(boxoffice: BoxOffice) -> None:
    from domain.placement import SalesPolicy

    boxoffice.policy = SalesPolicy(hold_seconds=900, fee_basis_points=250, fee_fixed=99)
    venue = boxoffice.create_venue(name="Fee hall", address="", city="Rome", country="IT", capacity=10)
    start = datetime.now(UTC) + timedelta(days=3)
    show = boxoffice.create_event(organizer_id=uuid4(), venue_id=venue.id, title="Fees", description="",
                                  start_time=start, end_time=start + timedelta(hours=1))  # fmt: skip
    tier = boxoffice.add_tier(show.id, name="GA", kind="general", section_ids=[])
    offer = boxoffice.add_offer(show.id, tier, name="GA", price=3333, currency="EUR", quantity_for_sale=10)
    boxoffice.publish_event(show.id)
    order, _ = boxoffice.place_order(uuid4(), [ItemRequest(offer.id, 3)])
    assert order.fees == compute_fee(9999, 250, 99) and order.total == 9999 + order.fees
    boxoffice.capture_payment(order.id, None, order.total)
    paid = boxoffice.get_order(order.id)
    assert sum(t["price"] for t in paid.tickets) == paid.total


def test_restarting_a_payment_cannot_hold_tickets_forever(settings: Settings) -> None:
    """Each start extends the hold for PAYMENT_HOLD_SECONDS, but never past HOLD_MAX_SECONDS
    after the order was placed; then the hold lapses like any other."""
    from ticketing import open_boxoffice

    app = open_boxoffice(settings)  # with the Stripe gateway (localstripe)
    try:
        show, _, _ = free_show(app, timedelta(days=5))
        tier = next(iter(app.get_event(show).tiers))
        offer = app.add_offer(show, tier, name="Paid", price=1500, currency="EUR", quantity_for_sale=10)
        placed_at = datetime.now(UTC)
        order, _ = app.place_order(uuid4(), [ItemRequest(offer.id, 1)], at=placed_at)
        cap = placed_at + timedelta(seconds=app.payment_policy.max_hold_seconds)
        at = placed_at
        deadlines = []
        while True:
            at += timedelta(seconds=app.payment_policy.payment_hold_seconds - 60)
            if at >= app.get_order(order.id).hold_expires_at:
                break
            deadlines.append(app.start_payment(order.id, at=at).order.hold_expires_at)
        assert deadlines and max(deadlines) <= cap
        assert deadlines[-1] == cap
        with pytest.raises(Gone):
            app.start_payment(order.id, at=cap)
        assert app.expire_hold(order.id, at=cap)
    finally:
        app.close()


def test_a_refund_is_made_once_per_key_even_where_the_provider_ignores_idempotency_keys(settings: Settings) -> None:
    """localstripe ignores Idempotency-Key (and Stripe forgets it after 24 hours): a worker that
    refunded and died before recording it, or a delivery applied twice, must not refund twice."""
    import stripe

    from commands.payments_gateway import StripeGateway

    gateway = StripeGateway(settings.stripe_api_key, settings.stripe_api_base)
    intent = gateway.create_intent(order_id=uuid4(), amount=5000, currency="EUR", description="test")
    sdk = stripe.StripeClient(settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base})
    sdk.v1.payment_intents.update(intent.id, params={"payment_method": "pm_card_visa"})
    sdk.v1.payment_intents.confirm(intent.id)

    first = gateway.refund(intent_id=intent.id, amount=2000, idempotency_key="late-x", reason="test")
    again = gateway.refund(intent_id=intent.id, amount=2000, idempotency_key="late-x", reason="test")
    other = gateway.refund(intent_id=intent.id, amount=1000, idempotency_key="refund-y", reason="test")
    assert again.id == first.id and other.id != first.id
    made = sdk.v1.refunds.list(params={"payment_intent": intent.id}).data
    assert sorted(r.amount for r in made) == [1000, 2000]


def test_one_delivery_applied_by_two_workers_at_once_is_applied_once(settings: Settings) -> None:
    """The same stored delivery can be queued twice (a redelivery and the reconciler); two
    workers applying it side by side take turns, and the second finds it applied."""
    import threading

    from ticketing import open_inbox

    inbox = open_inbox(settings)
    try:
        delivery_id, new = inbox.receive("stripe", f"evt_{uuid4().hex}", "test.event", {"data": {}})
        assert new
        inside = threading.Event()
        applied: list[str | None] = []

        def worker() -> None:
            with inbox.applying([delivery_id]) as (delivery,):
                applied.append(delivery.outcome)
                if delivery.outcome is None:
                    inside.set()
                    threading.Event().wait(0.3)  # the other worker arrives meanwhile
                    inbox.mark_applied({delivery.id: "done"})

        first = threading.Thread(target=worker)
        first.start()
        assert inside.wait(10)
        second = threading.Thread(target=worker)
        second.start()
        first.join(10)
        second.join(10)
        assert applied == [None, "done"]
    finally:
        inbox.close()


def test_payments_applied_together_sell_each_order_once_and_leave_the_odd_ones_to_the_one_by_one_path(
    boxoffice: BoxOffice,
) -> None:
    """A worker's batch (`apply_provider_events`): held orders of GA and seats captured in one
    save; a repeat, a cancelled order and an unknown order decided one by one, each as alone."""
    sale = put_on_sale(boxoffice, ga_quantity=10, seats=3)
    ga_pair, _ = boxoffice.place_order(uuid4(), [ItemRequest(sale.ga_offer, 2)])
    mixed, _ = boxoffice.place_order(
        uuid4(), [ItemRequest(sale.ga_offer, 1), ItemRequest(sale.seat_offer, 1, sale.seats[0])]
    )
    seat, _ = boxoffice.place_order(uuid4(), [ItemRequest(sale.seat_offer, 1, sale.seats[1])])
    gone, _ = boxoffice.place_order(uuid4(), [ItemRequest(sale.ga_offer, 1)])
    boxoffice.cancel_order(gone.id)

    def succeeded(order_id: UUID, amount: int) -> tuple[str, dict[str, object]]:
        intent = {"id": f"pi_{uuid4().hex}", "amount": amount, "metadata": {"order_id": str(order_id)}}
        return "payment_intent.succeeded", {"data": {"object": intent}}

    deliveries = [succeeded(o.id, o.total) for o in (ga_pair, mixed, seat)]
    deliveries += [deliveries[0], succeeded(gone.id, gone.total), succeeded(uuid4(), 100)]
    outcomes = boxoffice.apply_provider_events(deliveries)
    assert outcomes == ["paid", "paid", "paid", "duplicate", "paid_late", "ignored_unknown_order"]
    for order, tickets in ((ga_pair, 2), (mixed, 2), (seat, 1), (gone, 1)):
        stored = boxoffice.get_order(order.id)
        assert stored.status == "paid" and len(stored.tickets) == tickets
    offer = boxoffice.load(sale.ga_offer, "offer", Offer)
    assert (offer.sold, offer.held) == (4, 0)
    for n, buyer in ((0, mixed.id), (1, seat.id)):
        sold = boxoffice.load(sale.seats[n], "seat", Seat)
        assert (sold.status, sold.order_id) == ("sold", buyer)


def test_buyers_starting_one_payment_at_once_all_get_the_intent_the_order_keeps(settings: Settings) -> None:
    """Two tabs press "Pay" together: each asks the provider for an intent, one is recorded on
    the order, and every start answers with that one (the others' first save conflicts, and
    they find it on the reloaded order)."""
    import threading

    from ticketing import open_boxoffice

    app = open_boxoffice(settings)  # with the Stripe gateway (localstripe)
    try:
        sale = put_on_sale(app)
        order, _ = app.place_order(uuid4(), [ItemRequest(sale.ga_offer, 2)])
        together = threading.Barrier(4)
        intents: list[str] = []

        def start() -> None:
            together.wait(10)
            started = app.start_payment(order.id)
            assert started.intent is not None
            intents.append(started.intent.id)

        tabs = [threading.Thread(target=start) for _ in range(4)]
        for tab in tabs:
            tab.start()
        for tab in tabs:
            tab.join(30)
        kept = app.get_order(order.id)
        assert kept.payment_intent_id is not None
        assert intents == [kept.payment_intent_id] * 4
    finally:
        app.close()
