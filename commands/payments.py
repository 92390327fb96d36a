"""Payment commands: start a PaymentIntent, apply provider outcomes, refund.

The provider is called outside any inventory claim (and outside the claims lock), so its latency
never holds up other buyers. Every outcome is idempotent: the order's own state decides whether
a repeated or reordered delivery still has anything to do.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from commands.base import expect, utcnow
from commands.metrics import record_tickets_issued
from commands.payments_gateway import Intent, PaymentGateway, PaymentProviderError, Payout, PayoutStatus
from commands.sales import SalesCommands
from domain.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from domain.event import Event
from domain.offer import Offer, SoldOut
from domain.order import Order, WrongOrderState
from domain.seat import Seat, SeatTaken

log = logging.getLogger("payments")

PAID_STATES = ("paid", "partially_refunded", "refunded")


@dataclass(frozen=True)
class PaymentStart:
    order: Order
    intent: Intent | None


@dataclass(frozen=True)
class PaymentPolicy:
    # While the buyer is paying, the hold is kept at least this long...
    payment_hold_seconds: int = 600
    # ... but never longer than this after the order was placed.
    max_hold_seconds: int = 1800
    # Buyers may refund themselves until this long before the show starts.
    refund_cutoff_hours: int = 48
    # What the platform keeps of a payment routed to the organizer's payout account, in
    # hundredths of a percent (PLATFORM_FEE_PERCENT 2.5 is 250).
    platform_fee_basis_points: int = 0


def platform_fee(amount: int, basis_points: int) -> int:
    """The platform's fee of `amount` (minor units): `basis_points`/10,000 of it, rounded half up
    to a whole minor unit, never more than the amount (Stripe refuses an application fee above
    the charge) nor less than 0."""
    if amount <= 0 or basis_points <= 0:
        return 0
    return min(amount, (amount * basis_points + 5_000) // 10_000)


class PaymentCommands(SalesCommands):
    gateway: PaymentGateway | None = None
    payment_policy = PaymentPolicy()
    # The organizer's linked payout account ("" if none), from the Accounts application (wired
    # in ticketing.create_api); unset, the platform collects every payment.
    payout_account_of: Callable[[UUID], str] | None = None

    def _gateway(self) -> PaymentGateway:
        if self.gateway is None:
            raise PaymentProviderError("no payment provider is configured")
        return self.gateway

    def payout_onboarding(self, owner: UUID, email: str, existing: str, back_url: str) -> tuple[str, str]:
        """(The organizer's Connect account, made now when `existing` is empty; the link to its
        onboarding, which comes back to `back_url`)."""
        gateway = self._gateway()
        account = existing or gateway.create_connect_account(owner=owner, email=email)
        return account, gateway.onboarding_link(account, refresh_url=back_url, return_url=back_url)

    def payout_status(self, account: str) -> PayoutStatus | None:
        """What the provider says of a payout account (None: it cannot tell)."""
        return self._gateway().payout_status(account) if account else None

    def _payout(self, organizer_id: UUID, amount: int) -> Payout | None:
        """Where an order of this organizer's is paid out: their linked account, less the
        platform's fee; None (the platform collects) until they have linked one."""
        account = self.payout_account_of(organizer_id) if self.payout_account_of is not None else ""
        if not account:
            return None
        return Payout(account, platform_fee(amount, self.payment_policy.platform_fee_basis_points))

    # Starting a payment -----------------------------------------------------------------

    def start_payment(self, order_id: UUID, *, at: datetime | None = None) -> PaymentStart:
        """Create (or return the existing) PaymentIntent for a held order; free orders are
        confirmed at once. The hold is extended so the buyer has time to pay."""
        now = at or utcnow()
        order = self.get_order(order_id)
        if order.status in PAID_STATES:
            raise WrongOrderState(f"this order is already {order.status}")
        order.check_payable(now)
        if order.total == 0:
            self.capture_payment(order_id, None, 0, at=now)
            return PaymentStart(self.get_order(order_id), None)
        if order.payment_intent_id:
            intent = self._gateway().get_intent(order.payment_intent_id)
            order = self._keep_hold(order, intent.id, now)
            return PaymentStart(order, intent)
        show = self.load(order.event_id, "event", Event)
        intent = self._gateway().create_intent(
            order_id=order.id,
            amount=order.total,
            currency=order.currency,
            description=f"{show.title} — order",
            payout=self._payout(show.organizer_id, order.total),
        )
        order = self._keep_hold(order, intent.id, now)
        if order.payment_intent_id != intent.id:
            # Another request started a payment first; theirs is the one to use.
            intent = self._gateway().get_intent(order.payment_intent_id or intent.id)
        return PaymentStart(order, intent)

    def _keep_hold(self, loaded: Order, intent_id: str, now: datetime) -> Order:
        """Record the intent on the order and extend its hold. The order as loaded before the
        provider's call is tried first: if it changed meanwhile (another request started a
        payment), the save conflicts and the next try loads it afresh."""
        policy = self.payment_policy
        extend_by = timedelta(seconds=policy.payment_hold_seconds)
        cap = timedelta(seconds=policy.max_hold_seconds)
        first: list[Order] = [loaded]

        def attempt() -> Order:
            order = first.pop() if first else self.get_order(loaded.id)
            if order.payment_intent_id not in (None, intent_id):
                return order
            before = order.version
            order.start_payment(intent_id, now, extend_by=extend_by, cap=cap)
            if order.version != before:
                self.save(order)
            return order

        return self.retrying(attempt)

    # Provider outcomes ------------------------------------------------------------------

    def capture_payment(self, order_id: UUID, intent_id: str | None, amount: int, *, at: datetime | None = None) -> str:
        """Money was captured: sell the held inventory and issue tickets. Idempotent.

        A payment that arrives after the hold lapsed claims the same inventory again if it is
        still free; otherwise the money goes back automatically. Returns what happened:
        paid | paid_late | duplicate | refunded, or refund when it could not be honoured and there
        is no intent to give money back to (a free order's confirmation).
        """
        now = at or utcnow()

        def attempt() -> str:
            order = self.get_order(order_id)
            if order.status in PAID_STATES:
                if intent_id and order.payment_intent_id and intent_id != order.payment_intent_id:
                    return "refund_other_intent"  # a second intent for a paid order was charged
                return "duplicate"
            late = order.status != "held"
            # The offers and seats are loaded and saved in the claim writers' turn, as batched
            # payments do: loaded outside it, a hot offer is stale by the save, and the retries
            # could run out (`Busy`) while a sale goes on (the likely cause of a hang of the expiry
            # race test in .ci/run; its exception was not seen).
            with self.turn() as take_turn_with_claims:
                take_turn_with_claims()
                try:
                    inventory = self._sell_unheld(order) if late else self._sell_held(order)
                    order.pay(intent_id, amount, now, late=late)
                except (SoldOut, SeatTaken):
                    return "refund"
                except Conflict as error:
                    if error.code != "amount_mismatch":
                        raise
                    log.error("order %s: captured %s but total is %s; refunding", order_id, amount, order.total)
                    return "refund"
                self.save(order, *inventory)
            record_tickets_issued(len(order.tickets))
            return "paid_late" if late else "paid"

        outcome = self.retrying(attempt)
        if outcome in ("refund", "refund_other_intent") and intent_id:
            self._refund_unusable_payment(order_id, intent_id, amount, now, outcome == "refund")
            return "refunded"
        return outcome

    def _sell_held(self, order: Order) -> list[Any]:
        changed: list[Any] = []
        for offer, quantity in self._quota_offers(order):
            offer.sell(order.id, quantity)
            changed.append(offer)
        for seat_id in order.seat_ids():
            seat = self.load(seat_id, "seat", Seat)
            seat.sell(order.id)
            changed.append(seat)
        return changed

    def _sell_unheld(self, order: Order) -> list[Any]:
        changed: list[Any] = []
        for offer, quantity in self._quota_offers(order):
            offer.sell_unheld(order.id, quantity)
            changed.append(offer)
        for seat_id in order.seat_ids():
            seat = self.load(seat_id, "seat", Seat)
            seat.sell_unheld(order.id)
            changed.append(seat)
        return changed

    def _refund_unusable_payment(self, order_id: UUID, intent_id: str, amount: int, now: datetime, mark: bool) -> None:
        refund = self._gateway().refund(
            intent_id=intent_id,
            amount=amount,
            idempotency_key=f"late-{intent_id}",
            reason="inventory no longer available",
        )
        log.warning("order %s: payment %s refunded automatically (%s)", order_id, intent_id, refund.id)
        if not mark:
            return

        def attempt() -> None:
            order = self.get_order(order_id)
            order.refund_late_payment(intent_id, amount, refund.id, now)
            self.save(order)

        self.retrying(attempt)

    def record_payment_failure(self, order_id: UUID, intent_id: str, reason: str) -> bool:
        """A declined attempt; the hold stays until its deadline. Returns whether it was recorded."""

        def attempt() -> bool:
            order = self.get_order(order_id)
            before = order.version
            order.record_payment_failure(intent_id, reason)
            if order.version == before:
                return False
            self.save(order)
            return True

        return self.retrying(attempt)

    # Refunds ----------------------------------------------------------------------------

    def refund_order(
        self,
        order_id: UUID,
        *,
        actor_id: UUID,
        actor_role: str,
        ticket_ids: list[UUID] | None = None,
        amount: int | None = None,
        reason: str = "",
        request_key: str | None = None,
        at: datetime | None = None,
    ) -> Order:
        """Refund through the provider: named tickets, or every valid one, voided and their
        inventory put back on sale (for their price, or the `amount` asked if less); or, with an
        `amount` and no tickets, part of the money while every ticket stays valid (all of what is
        left to refund is the full refund).

        Buyers may do it until the refund cutoff before the show; the organizer and admins any
        time. A request repeated with its Idempotency-Key (`request_key`) answers the order as
        that refund left it, without refunding twice; the provider gets the same idempotency key
        for the same request, also for two copies sent at once.
        """
        now = at or utcnow()
        order = self.get_order(order_id)
        show = self.load(order.event_id, "event", Event)
        if actor_role != "admin" and actor_id not in (order.buyer_id, show.organizer_id):
            raise NotFound("order not found", code="order_not_found")
        if request_key is not None and order.refund_of_key(request_key) is not None:
            return order
        if actor_role != "admin" and actor_id != show.organizer_id:
            cutoff = show.start_time - timedelta(hours=self.payment_policy.refund_cutoff_hours)
            if now >= cutoff:
                raise Forbidden("the refund window for this event has closed", code="refund_window_closed")
        if amount is not None and amount <= 0:
            raise Invalid("a refund amount must be more than 0", field="amount")
        money_only = not ticket_ids and amount is not None and amount < order.refundable
        tickets = [] if money_only else order.tickets_to_refund(ticket_ids)
        limit = min(sum(t["price"] for t in tickets), order.refundable)
        if money_only:
            order.tickets_to_refund(None)  # a paid order with valid tickets, or the state's 409
            value = amount or 0
        elif amount is None:
            value = limit
        elif amount <= limit:
            value = amount
        else:
            raise Conflict(
                f"at most {limit} in minor units can be refunded for these tickets, not {amount}",
                code="amount_mismatch",
            )
        ids = sorted(str(t["id"]) for t in tickets)
        basis = f"key:{request_key}" if request_key is not None else f"{len(order.refund_ids)}:{value}:{','.join(ids)}"
        key = hashlib.sha256(f"{order_id}:{basis}".encode()).hexdigest()[:32]
        if order.payment_intent_id is None or value == 0:
            refund_id = f"free-{key}"
        else:
            refund_id = (
                self._gateway()
                .refund(intent_id=order.payment_intent_id, amount=value, idempotency_key=f"refund-{key}", reason=reason)
                .id
            )
        if money_only:
            return self.apply_amount_refund(order_id, refund_id, value, reason or "requested", request_key, at=now)
        return self.apply_refund(
            order_id,
            refund_id,
            [t["id"] for t in tickets],
            value,
            reason or "requested",
            at=now,
            request_key=request_key,
        )

    def apply_amount_refund(
        self, order_id: UUID, refund_id: str, amount: int, reason: str, request_key: str | None, *,
        at: datetime | None = None,
    ) -> Order:  # fmt: skip
        """Record money given back with every ticket still valid. Idempotent."""
        now = at or utcnow()

        def attempt() -> Order:
            order = self.get_order(order_id)
            if refund_id in order.refund_ids:
                return order
            order.refund_amount(refund_id, amount, reason, now, request_key)
            self.save(order)
            return order

        return self.retrying(attempt)

    def apply_refund(
        self,
        order_id: UUID,
        refund_id: str,
        ticket_ids: list[UUID],
        amount: int,
        reason: str,
        *,
        at: datetime | None = None,
        request_key: str | None = None,
    ) -> Order:
        """Record a refund and put the voided tickets' seats and quantity back on sale. Idempotent."""
        now = at or utcnow()

        def attempt() -> Order:
            order = self.get_order(order_id)
            if refund_id in order.refund_ids:
                return order
            tickets = order.tickets_to_refund(ticket_ids)
            order.refund(refund_id, [t["id"] for t in tickets], amount, reason, now, request_key)
            self.save(order, *self._take_back(order, tickets))
            return order

        return self.retrying(attempt)

    def refund_remaining(self, order_id: UUID, refund_id: str, reason: str) -> Order | None:
        """A refund made outside this service covered the whole charge: void what is left."""
        order = self.get_order(order_id)
        if order.status not in ("paid", "partially_refunded") or refund_id in order.refund_ids:
            return None
        tickets = order.valid_tickets()
        return self.apply_refund(
            order_id, refund_id, [t["id"] for t in tickets], min(sum(t["price"] for t in tickets), order.refundable),
            reason,
        )  # fmt: skip

    def _take_back(self, order: Order, tickets: list[Any]) -> list[Any]:
        """Seats and quantity of refunded tickets back on sale, or kept for the offer's waitlist
        while anyone waits (`Offer.take_back` keeps GA stock; seats in `_keep_seat_for_waitlist`)."""
        changed: dict[UUID, Any] = {}
        offers: dict[UUID, Offer] = {}
        per_offer: dict[UUID, int] = {}
        for ticket in tickets:
            per_offer[ticket["offer_id"]] = per_offer.get(ticket["offer_id"], 0) + 1
            if ticket["offer_id"] not in offers:
                offers[ticket["offer_id"]] = self.load(ticket["offer_id"], "offer", Offer)
        for offer_id, count in per_offer.items():
            offer = offers[offer_id]
            if offer.has_quota:
                offer.take_back(order.id, count)
                changed[offer.id] = offer
        for ticket in tickets:
            if ticket["seat_id"] is not None:
                seat = self.load(ticket["seat_id"], "seat", Seat)
                if seat.order_id == order.id and seat.status == "sold":
                    seat.take_back(order.id)
                    changed[seat.id] = seat
                    self._keep_seat_for_waitlist(seat, ticket["offer_id"], offers, changed)
        return list(changed.values())

    def cancel_unpaid(self, order_id: UUID) -> bool:
        """Cancel a held order (its event was cancelled). Returns whether it was held."""
        try:
            self.cancel_order(order_id)
        except WrongOrderState:
            return False
        return True

    # Provider deliveries -----------------------------------------------------------------

    def apply_provider_events(
        self, deliveries: list[tuple[str, dict[str, Any]]], *, at: datetime | None = None
    ) -> list[str]:
        """Several Stripe events at once (what a worker has queued up), with the outcome of
        each, as `apply_provider_event` gives them one by one.

        The payments of held orders among them are captured together: every order paid and its
        inventory sold in one save, each offer loaded and changed once for all of them. One by
        one, a hot show's payments each loaded and saved the same offer and kept colliding with
        each other and with the claim writer's holds (1,212 conflicts retried for 1,353 payments,
        some given up after 24 tries). Anything else, and any payment the batch cannot take as it
        is (an order no longer held, an amount that does not match, an unknown order), takes the
        one-by-one path, which decides late payments and refunds.
        """
        now = at or utcnow()
        together: dict[int, tuple[UUID, str, int]] = {}
        for i, (type_, payload) in enumerate(deliveries):
            obj: dict[str, Any] = payload.get("data", {}).get("object", {}) or {}
            order_id = _order_id(obj) if type_ == "payment_intent.succeeded" else None
            intent_id = obj.get("id")
            if order_id is not None and isinstance(intent_id, str) and all(c[0] != order_id for c in together.values()):
                together[i] = (order_id, intent_id, int(obj.get("amount_received") or obj.get("amount") or 0))
        while together:
            try:
                self.retrying(partial(self._capture_held, list(together.values()), now))
                break
            except _OneByOne as alone:
                del together[next(i for i, c in together.items() if c[0] == alone.order_id)]
        return ["paid" if i in together else self.apply_provider_event(*d) for i, d in enumerate(deliveries)]

    def _capture_held(self, captures: list[tuple[UUID, str, int]], now: datetime) -> None:
        """Pay these held orders and sell what they hold, in one save; `_OneByOne` names an
        order that cannot be taken this way (nothing is saved then)."""
        # Every aggregate of the batch is loaded in one query (`load_many`), not one round trip
        # each: the batch is the worker's serial part, and under a sale's load its round trips
        # were most of its time.
        loaded = self.load_many(order_id for order_id, _, _ in captures)
        orders: list[Order] = []
        for order_id, intent_id, amount in captures:
            order = loaded.get(order_id)
            if not isinstance(order, Order) or order.status != "held":
                raise _OneByOne(order_id)
            try:
                order.pay(intent_id, amount, now)
            except DomainError as error:
                raise _OneByOne(order_id) from error
            orders.append(order)
        # A hot show's claim writer saves its offer every few milliseconds: loaded outside its
        # turn, the offer was stale by the time of the save (1,224 conflicts retried, payments
        # given up after 24 tries, tickets a minute late in the full hot-funnel).
        with self.turn() as take_turn_with_claims:
            take_turn_with_claims()
            inventory = self.load_many(
                [item["offer_id"] for order in orders for item in order.items]
                + [seat_id for order in orders for seat_id in order.seat_ids()]
            )
            offers = {i: offer for i, offer in inventory.items() if isinstance(offer, Offer)}
            changed: dict[UUID, Any] = {order.id: order for order in orders}
            for order in orders:
                try:
                    for offer, quantity in self._quota_offers(order, offers):
                        offer.sell(order.id, quantity)
                        changed[offer.id] = offer
                    for seat_id in order.seat_ids():
                        seat = expect(inventory.get(seat_id), "seat", Seat)
                        seat.sell(order.id)  # a seat two orders claim: the second goes one by one
                        changed[seat.id] = seat
                except DomainError as error:
                    raise _OneByOne(order.id) from error
            self.save(*changed.values())
        record_tickets_issued(sum(len(a.tickets) for a in changed.values() if isinstance(a, Order)))

    def apply_provider_event(self, type_: str, payload: dict[str, Any]) -> str:
        """Translate one Stripe event into the command it stands for; returns the outcome."""
        obj: dict[str, Any] = payload.get("data", {}).get("object", {}) or {}
        try:
            return self._apply_provider_object(type_, obj)
        except NotFound:
            # An intent for an order this service does not know (another deployment's, or a
            # test payment); retrying would never succeed.
            return "ignored_unknown_order"

    def _apply_provider_object(self, type_: str, obj: dict[str, Any]) -> str:
        if type_ == "payment_intent.succeeded":
            order_id = _order_id(obj)
            if order_id is None:
                return "ignored_no_order"
            amount = int(obj.get("amount_received") or obj.get("amount") or 0)
            return self.capture_payment(order_id, str(obj["id"]), amount)
        if type_ == "payment_intent.payment_failed":
            order_id = _order_id(obj)
            if order_id is None:
                return "ignored_no_order"
            error = obj.get("last_payment_error") or {}
            reason = str(error.get("message") or error.get("code") or "payment failed")
            return "failure_recorded" if self.record_payment_failure(order_id, str(obj["id"]), reason) else "duplicate"
        if type_ == "charge.refunded":
            return self._apply_charge_refunded(obj)
        return "ignored_type"

    def _apply_charge_refunded(self, charge: dict[str, Any]) -> str:
        intent_id = charge.get("payment_intent")
        order_id = _order_id(charge)
        if order_id is None and intent_id:
            order_id = _uuid(self._gateway().get_intent(str(intent_id)).order_id)
        if order_id is None:
            return "ignored_no_order"
        order = self.get_order(order_id)
        refunds = (charge.get("refunds") or {}).get("data") or []
        unknown = [r for r in refunds if r.get("id") not in order.refund_ids]
        if not unknown:
            return "duplicate"
        if int(charge.get("amount_refunded") or 0) >= int(charge.get("amount") or order.amount_paid):
            self.refund_remaining(order_id, str(unknown[-1]["id"]), "refunded at the provider")
            return "refunded"
        # A partial refund made at the provider names no tickets; it is logged, not guessed at.
        log.warning(
            "order %s: partial refund(s) %s made outside this service", order_id, [r.get("id") for r in unknown]
        )
        return "ignored_partial_external"


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


class _OneByOne(Exception):
    """A payment a batch cannot take as it is (see `apply_provider_events`)."""

    def __init__(self, order_id: UUID) -> None:
        super().__init__(str(order_id))
        self.order_id = order_id


def _order_id(obj: dict[str, Any]) -> UUID | None:
    return _uuid((obj.get("metadata") or {}).get("order_id"))
