"""Who may call what: every protected route as anonymous, attendee, another organizer, the owning
organizer, the buyer (for orders and tickets) and an admin, with the answer API.md prescribes.

401 without a token; 403 for a role that may not act; 404 for what the caller may not even see
(other people's drafts, orders and tickets); 2xx for the owner and admins. Everything is set up
over HTTP. Routes that change state get a fresh target for each role allowed to change it, so
one role's success never decides another's answer. A route that answers 401 to an anonymous
caller but has no row here fails `test_every_protected_route_is_in_the_matrix`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest

from tests.e2e.conftest import PASSWORD, bearer, publish_show, register
from tests.images import png

Target = tuple[str, Any]  # path under /api/v1, JSON body (None: no body)

ROLES = ("anonymous", "attendee", "other_organizer", "owner", "buyer", "scanner", "admin")


@dataclass
class World:
    """Two organizers, an attendee, a buyer with paid free tickets, a door scanner and an admin,
    with a published show, a draft, a spare venue and a category branch, all made over HTTP."""

    client: httpx.Client
    tokens: dict[str, str]
    emails: dict[str, str]
    ids: dict[str, Any] = field(default_factory=dict)

    def call(self, role: str, method: str, target: Target) -> httpx.Response:
        path, body = target
        headers = {} if role == "anonymous" else bearer(self.tokens[role])
        if isinstance(body, bytes):  # an image, as it is
            return self.client.request(method, path, headers={**headers, "Content-Type": "image/png"}, content=body)
        return self.client.request(method, path, headers=headers, json=body)

    def ok(self, role: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
        r = self.call(role, method, (path, body))
        assert r.is_success, f"{method} {path} as {role}: {r.status_code} {r.text}"
        result: dict[str, Any] = r.json() if r.content else {}
        return result

    # Fresh targets, made by the owning organizer --------------------------------------------

    def draft(self) -> dict[str, str]:
        """A draft with a general-admission tier and a free offer."""
        body = {"title": f"Draft {uuid4().hex[:6]}", "venue_id": self.ids["venue"],
                "start_time": "2031-06-01T19:00:00Z", "end_time": "2031-06-01T22:00:00Z"}  # fmt: skip
        event = self.ok("owner", "POST", "/events", body)["id"]
        tier = self.ok("owner", "POST", f"/events/{event}/tiers", {"name": "Floor", "kind": "general"})["id"]
        offer = self.ok(
            "owner",
            "POST",
            f"/tiers/{tier}/offers",
            {"name": "Free", "price": "0.00", "currency": "EUR", "quantity_for_sale": 1000},
        )["id"]
        return {"event": event, "tier": tier, "offer": offer}

    def published(self) -> dict[str, str]:
        show = self.draft()
        self.ok("owner", "POST", f"/events/{show['event']}/publish")
        return show

    def held_order(self, buyer: str = "buyer") -> str:
        order = self.ok(buyer, "POST", "/orders", {"items": [{"offer_id": self.ids["free_offer"], "quantity": 1}]})
        return str(order["id"])

    def paid_order(self) -> tuple[str, str]:
        """A free order of the buyer, confirmed: (order id, its ticket id)."""
        order_id = self.held_order()
        self.ok("buyer", "POST", f"/orders/{order_id}/payment")
        # Read from /me/tickets: GET /orders/{id} lists tickets only for orders with money paid.
        mine = self.ok("buyer", "GET", f"/me/tickets?page_size=100&event_id={self.ids['free_event']}")["data"]
        tickets = [t["ticket_id"] for t in mine if t["order_id"] == order_id]
        assert tickets, "a confirmed free order has tickets"
        return order_id, str(tickets[0])

    def qr(self) -> str:
        _, ticket = self.paid_order()
        return str(self.ok("buyer", "GET", f"/tickets/{ticket}")["qr_data"])


@pytest.fixture(scope="module")
def world(client: httpx.Client, admin_token: str) -> World:
    tokens = {"admin": admin_token}
    emails: dict[str, str] = {}
    for role, kind in (
        ("attendee", "attendee"),
        ("other_organizer", "organizer"),
        ("buyer", "attendee"),
        ("scanner", "attendee"),
    ):
        tokens[role] = register(client, kind)
        emails[role] = client.get("/auth/me", headers=bearer(tokens[role])).json()["email"]
    show = publish_show(client, admin_token)
    tokens["owner"] = show.organizer
    w = World(client, tokens, emails)
    w.ids.update(published=show.id, paid_offer=show.ga_offer, seat=show.seats[0], other_seat=show.seats[1])
    event = w.ok("owner", "GET", f"/events/{show.id}")
    w.ids["venue"] = event["venue_id"]
    w.ids["published_tier"] = event["tiers"][0]["id"]
    w.ids["spare_venue"] = w.ok("admin", "POST", "/venues", {"name": "Spare", "city": "Köln", "country": "DE"})["id"]
    segment = w.ok("admin", "POST", "/segments", {"name": f"Segment {uuid4().hex[:8]}"})["id"]
    w.ids["segment"] = segment
    w.ids["genre"] = w.ok("admin", "POST", f"/segments/{segment}/genres", {"name": f"Genre {uuid4().hex[:8]}"})["id"]
    free = w.published()
    w.ids.update(free_event=free["event"], free_offer=free["offer"], free_tier=free["tier"])
    w.ids["draft"] = w.draft()
    w.ids["attraction"] = w.ok("owner", "POST", f"/events/{show.id}/attractions", {"name": "Opening act"})["id"]
    w.ok("owner", "POST", f"/events/{free['event']}/scanners", {"email": emails["scanner"]})
    w.ids["order"], w.ids["ticket"] = w.paid_order()
    return w


@dataclass
class Case:
    """One route, how to call it (per role), and the status each role must get."""

    operation: str
    method: str
    target: Callable[[World, str], Target]
    expect: dict[str, int]
    label: str = ""

    @property
    def id(self) -> str:
        return f"{self.operation}-{self.label}" if self.label else self.operation


def at(path: str, body: Any = None) -> Callable[[World, str], Target]:
    """A fixed target; `{name}` in the path is filled from the world's ids."""

    def target(w: World, _role: str) -> Target:
        draft = {f"draft_{key}": value for key, value in w.ids["draft"].items()}
        if isinstance(body, dict) and "seat_ids" in body:  # seat ids named like path ids
            return path.format(**w.ids, **draft), {"seat_ids": [i.format(**w.ids) for i in body["seat_ids"]]}
        return path.format(**w.ids, **draft), body

    return target


def fresh(make: Callable[[World], Target], allowed: tuple[str, ...]) -> Callable[[World, str], Target]:
    """A new target for each allowed role (state changes); a shared throwaway one for the others."""
    cache: dict[int, Target] = {}

    def target(w: World, role: str) -> Target:
        if role in allowed:
            return make(w)
        if id(w) not in cache:
            cache[id(w)] = make(w)
        return cache[id(w)]

    return target


# Expected answers --------------------------------------------------------------------------------
ANY_USER_OK = {"anonymous": 401, "attendee": 200, "other_organizer": 200, "owner": 200, "admin": 200}
ADMIN_ONLY = {"anonymous": 401, "attendee": 403, "other_organizer": 403, "owner": 403}
# Owner routes on a published event: strangers see it, so they are refused (403).
OWNER_PUBLISHED = {"anonymous": 401, "attendee": 403, "other_organizer": 403, "buyer": 403}
# Owner routes on a draft: strangers may not even know it exists (404).
OWNER_DRAFT = {"anonymous": 401, "attendee": 404, "other_organizer": 404, "buyer": 404}
# Public reads of a draft: only its organizer and admins see it.
DRAFT_READ = {"anonymous": 404, "attendee": 404, "other_organizer": 404, "buyer": 404, "owner": 200, "admin": 200}
# The buyer's order or ticket: everyone else is told it does not exist, the event's organizer too.
BUYERS = {"anonymous": 401, "attendee": 404, "other_organizer": 404, "owner": 404}

NEW_EVENT = {"title": "New show", "start_time": "2031-07-01T19:00:00Z", "end_time": "2031-07-01T22:00:00Z"}
OFFER = {"name": "Extra", "price": "10.00", "currency": "EUR", "quantity_for_sale": 10}
LAYOUT = {"sections": [{"name": "Balcony", "rows": [{"label": "A", "seats": [{"label": "1", "x": 0, "y": 0}]}]}]}


def _throwaway_account(w: World) -> Target:
    token = register(w.client)
    account = w.client.get("/auth/me", headers=bearer(token)).json()["id"]
    return f"/admin/accounts/{account}/erase", None


def _plain_account(w: World) -> str:
    """A plain attendee's id (made once per world), for the admin's account routes."""
    if "plain_account" not in w.ids:
        w.ids["plain_account"] = w.client.get("/auth/me", headers=bearer(register(w.client))).json()["id"]
    return str(w.ids["plain_account"])


def _category(w: World, level: str) -> str:
    """A new, unused category of `level` (under the world's branch)."""
    name = {"name": f"C {uuid4().hex[:8]}"}
    if level == "segment":
        return str(w.ok("admin", "POST", "/segments", name)["id"])
    if level == "genre":
        return str(w.ok("admin", "POST", f"/segments/{w.ids['segment']}/genres", name)["id"])
    return str(w.ok("admin", "POST", f"/genres/{w.ids['genre']}/sub-genres", name)["id"])


def _category_cases() -> list[Case]:
    cases = []
    for level, path, op in (("segment", "segments", "Segment"), ("genre", "genres", "Genre"),
                            ("sub_genre", "sub-genres", "SubGenre")):  # fmt: skip

        def rename(w: World, level: str = level, path: str = path) -> Target:
            return f"/{path}/{_category(w, level)}", {"name": f"R {uuid4().hex[:8]}"}

        def remove(w: World, level: str = level, path: str = path) -> Target:
            return f"/{path}/{_category(w, level)}", None

        cases.append(Case(f"rename{op}", "PATCH", fresh(rename, ("admin",)), {**ADMIN_ONLY, "admin": 200}))
        cases.append(Case(f"delete{op}", "DELETE", fresh(remove, ("admin",)), {**ADMIN_ONLY, "admin": 204}))
    return cases


def _attraction(w: World) -> Target:
    made = w.ok("owner", "POST", f"/events/{w.ids['published']}/attractions", {"name": f"Encore {uuid4().hex[:6]}"})
    return f"/events/{w.ids['published']}/attractions/{made['id']}", None


def _new_account_email(w: World) -> str:
    email: str = w.client.get("/auth/me", headers=bearer(register(w.client))).json()["email"]
    return email


def _scanner_grant(w: World) -> Target:
    email = _new_account_email(w)
    account = w.ok("owner", "POST", f"/events/{w.ids['free_event']}/scanners", {"email": email})["account_id"]
    return f"/events/{w.ids['free_event']}/scanners/{account}", None


def _sold_out_offer(w: World) -> str:
    """A new free offer of one ticket on the published free show, held by the attendee."""
    body = {"name": f"Last one {uuid4().hex[:6]}", "price": "0.00", "currency": "EUR", "quantity_for_sale": 1}
    offer = str(w.ok("owner", "POST", f"/tiers/{w.ids['free_tier']}/offers", body)["id"])
    w.ok("attendee", "POST", "/orders", {"items": [{"offer_id": offer, "quantity": 1}]})
    return offer


def _join_target(w: World, _role: str) -> Target:
    # One sold-out offer for every role: each role is a different person, so each may join once.
    if "waitlist_offer" not in w.ids:
        w.ids["waitlist_offer"] = _sold_out_offer(w)
    return f"/offers/{w.ids['waitlist_offer']}/waitlist", {"quantity": 1}


def _buyers_waitlist_entry(w: World) -> Target:
    entry = w.ok("buyer", "POST", f"/offers/{_sold_out_offer(w)}/waitlist", {"quantity": 1})["id"]
    return f"/waitlist/{entry}", None


def _check_in(w: World) -> Target:
    return f"/events/{w.ids['free_event']}/check-ins", {"qr_data": w.qr()}


def _sync(w: World) -> Target:
    scanned_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return f"/events/{w.ids['free_event']}/check-ins/batch", {"scans": [{"qr_data": w.qr(), "scanned_at": scanned_at}]}


CASES = [
    # Accounts
    Case("me", "GET", at("/auth/me"), ANY_USER_OK),
    # Prometheus metrics (outside /api/v1): METRICS_TOKEN or an admin; everyone else 401.
    Case(
        "MetricsGet",
        "GET",
        lambda w, _role: (str(w.client.base_url.copy_with(path="/metrics")), None),
        {**dict.fromkeys(ROLES, 401), "admin": 200},
    ),
    Case("updateMe", "PATCH", at("/auth/me", {"first_name": "Matrix"}), ANY_USER_OK),
    Case(
        "changePassword",
        "POST",
        at("/auth/change-password", {"old_password": PASSWORD, "new_password": PASSWORD}),
        ANY_USER_OK,
    ),
    Case("logout", "POST", at("/auth/logout"), ANY_USER_OK),
    # Erasure: with a wrong password nobody's account goes (422), so every role can be asked.
    Case(
        "eraseMe",
        "DELETE",
        at("/auth/me", {"password": "not-the-password"}),
        {"anonymous": 401, "attendee": 422, "other_organizer": 422, "owner": 422, "admin": 422},
    ),
    Case("eraseAccount", "POST", fresh(_throwaway_account, ("admin",)), {**ADMIN_ONLY, "admin": 202}),
    # Venues and categories: admins only
    Case(
        "createVenue",
        "POST",
        at("/venues", {"name": "Hall", "city": "Berlin", "country": "DE"}),
        {**ADMIN_ONLY, "admin": 201},
    ),
    Case("updateVenue", "PATCH", at("/venues/{spare_venue}", {"city": "Bonn"}), {**ADMIN_ONLY, "admin": 200}),
    Case("setVenueLayout", "PUT", at("/venues/{spare_venue}/layout", LAYOUT), {**ADMIN_ONLY, "admin": 200}),
    Case(
        "createSegment",
        "POST",
        lambda w, r: ("/segments", {"name": f"S {uuid4().hex[:8]}"}),
        {**ADMIN_ONLY, "admin": 201},
    ),
    Case(
        "createGenre",
        "POST",
        lambda w, r: (f"/segments/{w.ids['segment']}/genres", {"name": f"G {uuid4().hex[:8]}"}),
        {**ADMIN_ONLY, "admin": 201},
    ),
    Case(
        "createSubGenre",
        "POST",
        lambda w, r: (f"/genres/{w.ids['genre']}/sub-genres", {"name": f"SG {uuid4().hex[:8]}"}),
        {**ADMIN_ONLY, "admin": 201},
    ),
    *_category_cases(),
    # Admin and organizer extras
    Case("listAccounts", "GET", at("/admin/accounts"), {**ADMIN_ONLY, "admin": 200}),
    Case(
        "getAccount", "GET", lambda w, r: (f"/admin/accounts/{_plain_account(w)}", None), {**ADMIN_ONLY, "admin": 200}
    ),
    Case(
        "administerAccount",
        "PATCH",
        lambda w, r: (f"/admin/accounts/{_plain_account(w)}", {"role": "attendee"}),
        {**ADMIN_ONLY, "admin": 200},
    ),
    Case(
        "featureEvent",
        "PUT",
        lambda w, r: (f"/admin/events/{w.ids['published']}/featured", {"featured": True}),
        {**ADMIN_ONLY, "admin": 200},
    ),
    Case(
        "stripeOnboardingLink",
        "POST",
        at("/organizer/stripe/onboarding-link"),
        {"anonymous": 401, "attendee": 403, "other_organizer": 200, "owner": 200, "admin": 200},
    ),
    # Events: organizers create; owners and admins manage
    Case(
        "createEvent",
        "POST",
        lambda w, r: ("/events", {**NEW_EVENT, "venue_id": w.ids["venue"]}),
        {"anonymous": 401, "attendee": 403, "other_organizer": 201, "owner": 201, "admin": 201},
    ),
    Case(
        "listOrganizerEvents",
        "GET",
        at("/organizer/events"),
        {"anonymous": 401, "attendee": 403, "other_organizer": 200, "owner": 200, "admin": 200},
    ),
    Case(
        "updateEvent",
        "PATCH",
        at("/events/{published}", {"description": "Changed"}),
        {**OWNER_PUBLISHED, "owner": 200, "admin": 200},
        "published",
    ),
    Case(
        "updateEvent",
        "PATCH",
        at("/events/{draft_event}", {"description": "Changed"}),
        {**OWNER_DRAFT, "owner": 200, "admin": 200},
        "draft",
    ),
    Case(
        "deleteEvent",
        "DELETE",
        fresh(lambda w: (f"/events/{w.draft()['event']}", None), ("owner", "admin")),
        {**OWNER_DRAFT, "owner": 204, "admin": 204},
        "draft",
    ),
    Case(
        "deleteEvent",
        "DELETE",
        fresh(lambda w: (f"/events/{w.published()['event']}", None), ("owner", "admin")),
        {**OWNER_PUBLISHED, "owner": 204, "admin": 204},
        "published",
    ),
    Case(
        "publishEvent",
        "POST",
        fresh(lambda w: (f"/events/{w.draft()['event']}/publish", None), ("owner", "admin")),
        {**OWNER_DRAFT, "owner": 200, "admin": 200},
        "draft",
    ),
    Case(
        "cancelEvent",
        "POST",
        fresh(lambda w: (f"/events/{w.published()['event']}/cancel", None), ("owner", "admin")),
        {**OWNER_PUBLISHED, "owner": 200, "admin": 200},
        "published",
    ),
    Case("cancelEvent", "POST", at("/events/{draft_event}/cancel"), OWNER_DRAFT, "draft"),
    Case(
        "createTier",
        "POST",
        at("/events/{published}/tiers", {"name": "Extra", "kind": "general"}),
        {**OWNER_PUBLISHED, "owner": 201, "admin": 201},
        "published",
    ),
    Case(
        "createTier",
        "POST",
        at("/events/{draft_event}/tiers", {"name": "Extra", "kind": "general"}),
        {**OWNER_DRAFT, "owner": 201, "admin": 201},
        "draft",
    ),
    Case(
        "addAttraction",
        "POST",
        lambda w, r: (f"/events/{w.ids['published']}/attractions", {"name": f"Guest {uuid4().hex[:6]}"}),
        {**OWNER_PUBLISHED, "owner": 201, "admin": 201},
        "published",
    ),
    Case("addAttraction", "POST", at("/events/{draft_event}/attractions", {"name": "Guest"}), OWNER_DRAFT, "draft"),
    Case(
        "setEventImage",
        "PUT",
        at("/events/{published}/image", png(40, 30)),
        {**OWNER_PUBLISHED, "owner": 200, "admin": 200},
        "published",
    ),
    Case(
        "setEventImage",
        "PUT",
        at("/events/{draft_event}/image", png(30, 40)),
        {**OWNER_DRAFT, "owner": 200, "admin": 200},
        "draft",
    ),
    Case(
        "removeEventImage",
        "DELETE",
        at("/events/{published}/image"),
        {**OWNER_PUBLISHED, "owner": 204, "admin": 204},
    ),
    Case(
        "removeAttraction",
        "DELETE",
        fresh(_attraction, ("owner", "admin")),
        {**OWNER_PUBLISHED, "owner": 204, "admin": 204},
    ),
    Case(
        "updateTier",
        "PATCH",
        at("/tiers/{published_tier}", {"name": "Renamed"}),
        {**OWNER_PUBLISHED, "owner": 200, "admin": 200},
        "published",
    ),
    Case(
        "updateTier",
        "PATCH",
        at("/tiers/{draft_tier}", {"name": "Renamed"}),
        {**OWNER_DRAFT, "owner": 200, "admin": 200},
        "draft",
    ),
    Case(
        "deleteTier",
        "DELETE",
        fresh(lambda w: (f"/tiers/{w.draft()['tier']}", None), ("owner", "admin")),
        {**OWNER_DRAFT, "owner": 204, "admin": 204},
        "draft",
    ),
    Case("deleteTier", "DELETE", at("/tiers/{published_tier}"), OWNER_PUBLISHED, "published"),
    Case(
        "createOffer",
        "POST",
        at("/tiers/{published_tier}/offers", OFFER),
        {**OWNER_PUBLISHED, "owner": 201, "admin": 201},
        "published",
    ),
    Case("createOffer", "POST", at("/tiers/{draft_tier}/offers", OFFER), {**OWNER_DRAFT, "owner": 201}, "draft"),
    Case(
        "updateOffer",
        "PATCH",
        at("/offers/{paid_offer}", {"name": "Renamed"}),
        {**OWNER_PUBLISHED, "owner": 200, "admin": 200},
        "published",
    ),
    Case(
        "updateOffer",
        "PATCH",
        at("/offers/{draft_offer}", {"name": "Renamed"}),
        {**OWNER_DRAFT, "owner": 200, "admin": 200},
        "draft",
    ),
    # Blocking seats: the owner and admins (blocking a blocked seat, unblocking a free one: no change)
    Case(
        "blockSeats",
        "POST",
        at("/events/{published}/seats/block", {"seat_ids": ["{seat}"]}),
        {**OWNER_PUBLISHED, "owner": 200, "admin": 200},
        "published",
    ),
    Case(
        "unblockSeats",
        "POST",
        at("/events/{published}/seats/unblock", {"seat_ids": ["{other_seat}"]}),
        {**OWNER_PUBLISHED, "owner": 200, "admin": 200},
        "published",
    ),
    Case(
        "blockSeats",
        "POST",
        at("/events/{draft_event}/seats/block", {"seat_ids": ["{seat}"]}),
        {**OWNER_DRAFT, "owner": 422, "admin": 422},
        "draft",
    ),
    # Public reads hide drafts
    Case("getEvent", "GET", at("/events/{draft_event}"), DRAFT_READ, "draft"),
    Case("listEventOffers", "GET", at("/events/{draft_event}/offers"), DRAFT_READ, "draft"),
    Case("getSeatMap", "GET", at("/events/{draft_event}/seat-map"), DRAFT_READ, "draft"),
    Case("getPricingMatrix", "GET", at("/events/{draft_event}/pricing-matrix"), DRAFT_READ, "draft"),
    Case("getOffer", "GET", at("/offers/{draft_offer}"), DRAFT_READ, "draft"),
    # Door and reports
    Case("listScanners", "GET", at("/events/{free_event}/scanners"), {**OWNER_PUBLISHED, "owner": 200, "admin": 200}),
    Case(
        "grantScanner",
        "POST",
        lambda w, r: (f"/events/{w.ids['free_event']}/scanners", {"email": _new_account_email(w)}),
        {**OWNER_PUBLISHED, "owner": 201, "admin": 201},
    ),
    Case(
        "revokeScanner",
        "DELETE",
        fresh(_scanner_grant, ("owner", "admin")),
        {**OWNER_PUBLISHED, "owner": 204, "admin": 204},
    ),
    Case(
        "checkIn",
        "POST",
        fresh(_check_in, ("owner", "scanner", "admin")),
        {**OWNER_PUBLISHED, "owner": 200, "scanner": 200, "admin": 200},
    ),
    Case(
        "syncCheckIns",
        "POST",
        fresh(_sync, ("owner", "scanner", "admin")),
        {**OWNER_PUBLISHED, "owner": 200, "scanner": 200, "admin": 200},
    ),
    Case(
        "getScannerKit",
        "GET",
        at("/events/{free_event}/scanner-kit"),
        {**OWNER_PUBLISHED, "owner": 200, "scanner": 200, "admin": 200},
    ),
    Case("getScannerKit", "GET", at("/events/{draft_event}/scanner-kit"), {**OWNER_DRAFT, "owner": 200}, "draft"),
    Case(
        "listEventAttendees",
        "GET",
        at("/events/{free_event}/attendees"),
        {**OWNER_PUBLISHED, "scanner": 403, "owner": 200, "admin": 200},
    ),
    Case("listEventOrders", "GET", at("/events/{free_event}/orders"), {**OWNER_PUBLISHED, "owner": 200, "admin": 200}),
    Case("listEventOrders", "GET", at("/events/{draft_event}/orders"), {**OWNER_DRAFT, "owner": 200}, "draft"),
    Case("getEventSales", "GET", at("/events/{free_event}/sales"), {**OWNER_PUBLISHED, "owner": 200, "admin": 200}),
    Case("getEventSales", "GET", at("/events/{draft_event}/sales"), {**OWNER_DRAFT, "owner": 200}, "draft"),
    Case(
        "listEventReports", "GET", at("/events/{free_event}/reports"), {**OWNER_PUBLISHED, "owner": 200, "admin": 200}
    ),
    Case(
        "getEventReportSummary",
        "GET",
        at("/events/{free_event}/reports/summary"),
        {**OWNER_PUBLISHED, "scanner": 403, "owner": 200, "admin": 200},
    ),
    Case(
        "getEventReport",
        "GET",
        at("/events/{free_event}/reports/sales.csv"),
        {**OWNER_PUBLISHED, "scanner": 403, "owner": 200, "admin": 200},
        "sales",
    ),
    Case(
        "getEventReport",
        "GET",
        at("/events/{free_event}/reports/attendees.csv"),
        {**OWNER_PUBLISHED, "scanner": 403, "owner": 200, "admin": 200},
        "attendees",
    ),
    Case(
        "getEventReport",
        "GET",
        at("/events/{free_event}/reports/sales-over-time.png"),
        {**OWNER_PUBLISHED, "scanner": 403, "owner": 200, "admin": 200},
        "chart",
    ),
    Case(
        "getEventReport",
        "GET",
        at("/events/{draft_event}/reports/sales-over-time.svg"),
        {**OWNER_DRAFT, "owner": 200},
        "draft",
    ),
    Case(
        "getEventReportSummary",
        "GET",
        at("/events/{draft_event}/reports/summary"),
        {**OWNER_DRAFT, "owner": 200},
        "draft",
    ),
    # The audit trail: a show's for its owner and admins, an order's for its buyer and admins
    Case(
        "getEventHistory",
        "GET",
        at("/events/{free_event}/history"),
        {**OWNER_PUBLISHED, "scanner": 403, "owner": 200, "admin": 200},
    ),
    Case("getEventHistory", "GET", at("/events/{draft_event}/history"), {**OWNER_DRAFT, "owner": 200}, "draft"),
    Case(
        "getOrderHistory", "GET", at("/orders/{order}/history"), {**BUYERS, "scanner": 404, "buyer": 200, "admin": 200}
    ),
    # Orders and tickets: any signed-in user buys; only the buyer (and admins) see them
    Case(
        "placeOrder",
        "POST",
        lambda w, r: ("/orders", {"items": [{"offer_id": w.ids["free_offer"], "quantity": 1}]}),
        {"anonymous": 401, "attendee": 201, "other_organizer": 201, "owner": 201, "buyer": 201, "admin": 201},
    ),
    Case("listOrders", "GET", at("/orders"), {**ANY_USER_OK, "buyer": 200}),
    # Someone else's orders: admins only (an id that is nobody's stands for another buyer)
    Case(
        "listOrders", "GET", at("/orders?buyer_id={spare_venue}"), {**ADMIN_ONLY, "buyer": 403, "admin": 200}, "other"
    ),
    Case("getOrder", "GET", at("/orders/{order}"), {**BUYERS, "buyer": 200, "admin": 200}),
    Case(
        "cancelOrder",
        "POST",
        fresh(lambda w: (f"/orders/{w.held_order()}/cancel", None), ("buyer", "admin")),
        {**BUYERS, "buyer": 200, "admin": 200},
    ),
    Case(
        "startPayment",
        "POST",
        fresh(lambda w: (f"/orders/{w.held_order()}/payment", None), ("buyer",)),
        {**BUYERS, "buyer": 200, "admin": 404},
    ),
    Case(
        "refundOrder",
        "POST",
        fresh(lambda w: (f"/orders/{w.paid_order()[0]}/refund", None), ("owner", "buyer", "admin")),
        {**BUYERS, "owner": 200, "buyer": 200, "admin": 200},
    ),
    Case("listMyTickets", "GET", at("/me/tickets"), {**ANY_USER_OK, "buyer": 200}),
    # Waitlist: anyone signed in queues for a sold-out offer; only the person who queued leaves
    Case(
        "joinWaitlist",
        "POST",
        _join_target,
        {
            "anonymous": 401,
            "attendee": 201,
            "other_organizer": 201,
            "owner": 201,
            "buyer": 201,
            "scanner": 201,
            "admin": 201,
        },
    ),
    Case("listMyWaitlist", "GET", at("/me/waitlist"), {**ANY_USER_OK, "buyer": 200}),
    Case(
        "leaveWaitlist",
        "DELETE",
        fresh(_buyers_waitlist_entry, ("buyer",)),
        {**BUYERS, "buyer": 204, "admin": 404},
    ),
    Case("getTicket", "GET", at("/tickets/{ticket}"), {**BUYERS, "buyer": 200, "admin": 200}),
    Case("getTicketQr", "GET", at("/tickets/{ticket}/qr.png"), {**BUYERS, "buyer": 200, "admin": 200}),
    Case("getTicketPdf", "GET", at("/tickets/{ticket}/pdf"), {**BUYERS, "buyer": 200, "admin": 200}),
    Case(
        "updateTicket",
        "PATCH",
        at("/tickets/{ticket}", {"attendee_name": "Matrix Person"}),
        {**BUYERS, "buyer": 200, "admin": 404},
    ),
    Case(
        "setOrderAttendees",
        "PUT",
        fresh(lambda w: (f"/orders/{w.held_order()}/attendees", {"attendee_names": ["Ανна"]}), ("buyer",)),
        {**BUYERS, "buyer": 200, "admin": 404},
    ),
    Case(
        "transferTicket",
        "POST",
        fresh(lambda w: (f"/tickets/{w.paid_order()[1]}/transfer", {"email": w.emails["attendee"]}), ("buyer",)),
        {**BUYERS, "buyer": 200, "admin": 404},
    ),
]

MATRIX = [pytest.param(case, role, id=f"{case.id}-{role}") for case in CASES for role in ROLES if role in case.expect]


@pytest.mark.parametrize(("case", "role"), MATRIX)
def test_route_answers_each_role_as_the_contract_says(world: World, case: Case, role: str) -> None:
    r = world.call(role, case.method, case.target(world, role))
    assert r.status_code == case.expect[role], f"{case.method} {case.id} as {role}: {r.status_code} {r.text[:300]}"
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/json") and "code" in r.json()


def test_no_organizer_sees_another_organizers_events_or_orders(world: World) -> None:
    mine = {e["id"] for e in world.ok("other_organizer", "GET", "/organizer/events?page_size=100")["data"]}
    assert not mine & {world.ids["published"], world.ids["draft"]["event"], world.ids["free_event"]}
    theirs = {e["id"] for e in world.ok("owner", "GET", "/organizer/events?page_size=100")["data"]}
    assert {world.ids["published"], world.ids["draft"]["event"]} <= theirs
    assert world.ids["order"] not in {o["id"] for o in world.ok("attendee", "GET", "/orders?page_size=100")["data"]}
    tickets = world.ok("attendee", "GET", "/me/tickets?page_size=100")["data"]
    assert world.ids["ticket"] not in {t["ticket_id"] for t in tickets}


def test_every_protected_route_is_in_the_matrix(client: httpx.Client, service: str) -> None:
    """Ask every operation of the OpenAPI document anonymously: those answering 401 are the
    protected ones, and each must have its row above (and every row a live operation)."""
    document = httpx.get(f"{service}/schema/openapi.json").json()
    operations: dict[str, tuple[str, str]] = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                operations[operation["operationId"]] = (method.upper(), path)
    dummy = str(uuid4())
    protected = set()
    for operation_id, (method, path) in operations.items():
        url = path
        for name in [part[1:-1] for part in path.split("/") if part.startswith("{")]:
            url = url.replace(f"{{{name}}}", dummy)
        r = client.request(method, f"{service}{url}", json={} if method in ("POST", "PUT", "PATCH") else None)
        if r.status_code == 401:
            protected.add(operation_id)
    covered = {case.operation for case in CASES}
    assert protected - covered == set(), "protected routes without a row in the matrix"
    assert covered - set(operations) == set(), "matrix rows for operations that no longer exist"
    assert {case.operation for case in CASES if case.expect.get("anonymous") == 401} <= protected
