"""`/organizer`: the organizer's own events (admins: everyone's) with their sales from the sales
read model, the sales-over-time chart and the attendee CSV from the report routes, the door
scanner of each show, and "Get paid": the payout account, its onboarding, and what the paid
orders bring in per currency less the platform's fee."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, Response, get

from api.common import money
from api.events import Event
from api.security import Principal
from api.services import Services
from api.web.common import page_error, render, to_login, user_of
from commands.payments import platform_fee
from commands.payments_gateway import PayoutStatus
from domain.errors import DomainError
from projections import queries


@dataclass(frozen=True)
class EventSales:
    event: Event
    tickets_sold: int
    held: int
    checked_in: int
    revenue: str
    revenue_minor: int
    currency: str


@dataclass(frozen=True)
class Earnings:
    """One currency's paid revenue of the organizer's shows, the platform's fee of it and the rest."""

    currency: str
    revenue: str
    fee: str
    payout: str


@dataclass(frozen=True)
class Payouts:
    account: str
    # What Stripe says of the account; None when it cannot tell (localstripe, or Stripe away).
    status: PayoutStatus | None
    fee_percent: str
    earnings: list[Earnings]


class OrganizerPagesController(Controller):
    path = "/organizer"
    include_in_schema = False

    @get("/", exclude_from_auth=True)
    async def dashboard(self, request: Request[Any, Any, Any], services: Services) -> Response[Any]:
        user = user_of(request)
        if user is None:
            return to_login(request)
        if user.role not in ("organizer", "admin"):
            return page_error(request, "Organizers only", "This page is for event organizers.", 403)
        owner = None if user.is_admin else user.id
        shows: list[EventSales] = []
        async with services.pool.connection() as conn:
            rows, _ = await queries.organizer_events(conn, owner, 1, 50)
            for row in rows:
                lines = await queries.sales(conn, row["id"])
                currency = lines[0]["currency"] if lines else row["currency"]
                revenue = sum(int(r["revenue"]) for r in lines)
                shows.append(
                    EventSales(
                        event=Event.of(row),
                        tickets_sold=sum(int(r["valid_tickets"]) for r in lines),
                        held=sum(int(r["held_now"]) for r in lines),
                        checked_in=sum(int(r["checked_in"]) for r in lines),
                        revenue=money(revenue, currency) or "0",
                        revenue_minor=revenue,
                        currency=currency or "",
                    )
                )
        # Admins see everyone's shows: their sums are not one organizer's payouts.
        payouts = None if user.is_admin else await _payouts(services, user, shows)
        return render(request, "organizer.html", shows=shows, payouts=payouts)


async def _payouts(services: Services, user: Principal, shows: list[EventSales]) -> Payouts:
    """The "Get paid" panel. The revenue per currency is the sales read model's (the figures of
    the shows above, added up); the fee is PLATFORM_FEE_PERCENT of it, as each payment's
    `application_fee_amount` is of that payment (rounded there per payment, so it may differ by
    a minor unit or so per order)."""
    account = (await services.call(lambda: services.accounts.get_account(user.id))).payout_account
    status = None
    if account:
        try:
            status = await services.call(lambda: services.boxoffice.payout_status(account))
        except DomainError:
            status = None  # no payment provider configured: nothing to ask
    basis_points = services.boxoffice.payment_policy.platform_fee_basis_points
    totals: dict[str, int] = {}
    for show in shows:
        if show.currency and show.revenue_minor:
            totals[show.currency] = totals.get(show.currency, 0) + show.revenue_minor
    earnings = []
    for currency, revenue in sorted(totals.items()):
        fee = platform_fee(revenue, basis_points)
        earnings.append(
            Earnings(
                currency=currency,
                revenue=money(revenue, currency) or "0",
                fee=money(fee, currency) or "0",
                payout=money(revenue - fee, currency) or "0",
            )
        )
    percent = f"{basis_points / 100:g}"
    return Payouts(account=account, status=status, fee_percent=percent, earnings=earnings)
