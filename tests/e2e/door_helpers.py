"""Set-ups the door tests share: a show whose tiers are free day passes, and free tickets of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import httpx

from tests.e2e.conftest import bearer, register_with_email


@dataclass
class DayShow:
    id: str
    organizer: str
    timezone: str
    days: list[str]
    offers: dict[str, str]  # day -> free offer of that day's tier


def zone_away_from_midnight() -> str:
    """A time zone where it is not close to midnight now, so "today" holds for the whole test."""
    for name in ("UTC", "Asia/Tokyo", "America/New_York", "Pacific/Auckland", "Asia/Kolkata"):
        if 1 <= datetime.now(ZoneInfo(name)).hour <= 21:
            return name
    return "UTC"


def day_pass_show(client: httpx.Client, admin: str, *, days: int = 3, quantity: int = 100) -> DayShow:
    """A published multi-day show starting in a few minutes, one free general-admission day pass
    per day (tiers with a `day`), in a time zone where today is safely today."""
    zone = zone_away_from_midnight()
    today = datetime.now(ZoneInfo(zone)).date()
    dates = [(today + timedelta(days=n)).isoformat() for n in range(days)]
    venue = client.post(
        "/venues", headers=bearer(admin), json={"name": f"Field {uuid4().hex[:6]}", "city": "Athens", "country": "GR"}
    ).json()
    organizer, _ = register_with_email(client, "organizer")
    h = bearer(organizer)
    start = datetime.now(UTC) + timedelta(minutes=10)
    body = {
        "title": f"Festival {uuid4().hex[:6]}",
        "venue_id": venue["id"],
        "start_time": start.isoformat().replace("+00:00", "Z"),
        "end_time": (start + timedelta(days=days)).isoformat().replace("+00:00", "Z"),
        "days": dates,
        "timezone": zone,
    }
    show = client.post("/events", headers=h, json=body)
    assert show.status_code == 201, show.text
    event_id = show.json()["id"]
    offers = {}
    for day in dates:
        tier = client.post(f"/events/{event_id}/tiers", headers=h, json={"name": f"Day {day}", "kind": "general",
                                                                         "day": day})  # fmt: skip
        assert tier.status_code == 201, tier.text
        offer = client.post(
            f"/tiers/{tier.json()['id']}/offers",
            headers=h,
            json={"name": "Pass", "price": "0.00", "currency": "EUR", "quantity_for_sale": quantity,
                  "max_per_order": 20},
        )  # fmt: skip
        assert offer.status_code == 201, offer.text
        offers[day] = offer.json()["id"]
    published = client.post(f"/events/{event_id}/publish", headers=h)
    assert published.status_code == 200, published.text
    return DayShow(event_id, organizer, zone, dates, offers)


def free_tickets(client: httpx.Client, token: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Place a free order and confirm it; its tickets as /me/tickets lists them."""
    placed = client.post("/orders", headers=bearer(token), json={"items": items})
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    confirmed = client.post(f"/orders/{order_id}/payment", headers=bearer(token))
    assert confirmed.status_code == 200, confirmed.text
    mine = client.get("/me/tickets", headers=bearer(token), params={"page_size": 100}).json()["data"]
    tickets = [t for t in mine if t["order_id"] == order_id]
    assert len(tickets) == sum(i.get("quantity", 1) for i in items)
    return tickets


def today_in(zone: str) -> date:
    return datetime.now(ZoneInfo(zone)).date()
