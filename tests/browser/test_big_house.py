"""A 20,000-seat house in a real browser: the event page carries the map as the seat-map
document (gzipped JSON), not an element per seat; the canvas is drawn, zoomed with the wheel, a
seat picked with a click, and a seat held by someone else shows as held after the next poll.
The figures (transfer sizes, first draw) are printed and kept in .data/screenshots/big-house.json."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx

from tests.browser.test_journey import click_seat
from tests.e2e.conftest import bearer, order, register, register_with_email

SECTIONS, ROWS, PER_ROW = 20, 25, 40  # as bench/seed.py's seated house: 20,000 seats


def big_house(client: httpx.Client, admin: str, organizer: str) -> tuple[str, str, list[dict[str, Any]]]:
    """A published show over a 20,000-seat venue; its id, its seat offer and its seat-map sections."""
    venue = client.post("/venues", headers=bearer(admin), json={"name": f"Arena {uuid4().hex[:6]}", "city": "Berlin"})
    assert venue.status_code == 201, venue.text
    sections = [
        {
            "name": f"S{s + 1:02d}",
            "rows": [
                {
                    "label": str(r + 1),
                    "seats": [{"label": str(n + 1), "x": s * (PER_ROW + 4) + n, "y": r + 1} for n in range(PER_ROW)],
                }
                for r in range(ROWS)
            ],
        }
        for s in range(SECTIONS)
    ]
    layout = client.put(f"/venues/{venue.json()['id']}/layout", headers=bearer(admin), json={"sections": sections})
    assert layout.status_code == 200, layout.text
    h = bearer(organizer)
    body = {"title": f"Arena night {uuid4().hex[:6]}", "venue_id": venue.json()["id"],
            "start_time": "2031-06-01T19:00:00Z", "end_time": "2031-06-01T22:00:00Z"}  # fmt: skip
    event_id = client.post("/events", headers=h, json=body).json()["id"]
    ids = [s["id"] for s in layout.json()["sections"]]
    tier = client.post(
        f"/events/{event_id}/tiers", headers=h, json={"name": "Seats", "kind": "seated", "section_ids": ids}
    )
    offer = client.post(
        f"/tiers/{tier.json()['id']}/offers", headers=h, json={"name": "Seat", "price": "79.00", "currency": "EUR"}
    )
    assert offer.status_code == 201, offer.text
    published = client.post(f"/events/{event_id}/publish", headers=h, timeout=120)
    assert published.status_code == 200, published.text
    seat_map = client.get(f"/events/{event_id}/seat-map").json()
    return event_id, offer.json()["id"], seat_map["sections"]


def test_a_20000_seat_house_is_one_document_and_one_canvas(
    browser: Any, service: str, client: httpx.Client, admin_token: str, screenshots: Path
) -> None:
    event_id, offer_id, sections = big_house(client, admin_token, register(client, "organizer"))
    assert sum(len(r["seats"]) for s in sections for r in s["rows"]) == SECTIONS * ROWS * PER_ROW
    target = sections[9]["rows"][11]["seats"][20]  # S10, row 12, seat 21: mid-house
    taken = sections[9]["rows"][11]["seats"][22]
    errors: list[str] = []
    page = browser.new_context(base_url=service, viewport={"width": 1280, "height": 900}).new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)

    page.goto(f"/e/{event_id}")
    page.wait_for_selector("#seatmap[data-ready=true]", timeout=60_000)
    figures = page.evaluate(
        """() => {
          const nav = performance.getEntriesByType("navigation")[0];
          const map = performance.getEntriesByType("resource").find(r => r.name.includes("/seat-map"));
          const canvas = document.getElementById("seatmap");
          return {
            page_transfer: nav.transferSize, page_body: nav.decodedBodySize,
            page_server_ms: Math.round(nav.responseStart - nav.requestStart),
            map_transfer: map.transferSize, map_encoded: map.encodedBodySize, map_decoded: map.decodedBodySize,
            elements: document.getElementsByTagName("*").length,
            seats: Number(canvas.dataset.seats), first_draw_ms: Number(canvas.dataset.firstDrawMs),
            fetch_ms: Number(canvas.dataset.fetchMs), ready_ms: Number(canvas.dataset.readyMs),
          };
        }"""
    )
    assert figures["seats"] == 20_000
    assert figures["page_body"] < 30_000, figures  # the page: no markup per seat
    assert figures["elements"] < 300, figures
    assert figures["map_decoded"] > 2_000_000 and figures["map_encoded"] * 4 < figures["map_decoded"], figures
    page.screenshot(path=screenshots / "10-big-house.png")

    # Zoom in on the target with the wheel, then pick it with a click.
    point = page.evaluate("(id) => document.getElementById('seatmap').seatPoint(id)", target["id"])
    page.mouse.move(point["x"], point["y"])
    for _ in range(4):
        page.mouse.wheel(0, -400)
        page.wait_for_timeout(50)
    started = time.monotonic()
    click_seat(page, target["id"])
    page.wait_for_selector("#picked input[name=seat]", state="attached")
    figures["pick_s"] = round(time.monotonic() - started, 3)
    figures["slowest_draw_ms"] = float(page.get_attribute("#seatmap", "data-slowest-draw-ms"))
    assert figures["slowest_draw_ms"] < 250, figures
    assert page.locator("#picked input[name=seat]").get_attribute("value") == f"{offer_id}:{target['id']}"
    assert page.inner_text("#picked-summary") == "Picked: S10, row 12, seat 21"
    assert "S10, row 12, seat 21, 79.00 EUR, picked" in page.inner_text("#seat-tip")
    page.screenshot(path=screenshots / "11-big-house-picked.png")

    # Someone else holds a seat two along; the next poll (every 5 s) shows it held.
    held = order(client, register_with_email(client)[0], [{"offer_id": offer_id, "seat_id": taken["id"]}])
    assert held.status_code == 201, held.text
    deadline = time.monotonic() + 20
    while True:
        point = page.evaluate("(id) => document.getElementById('seatmap').seatPoint(id)", taken["id"])
        page.mouse.move(point["x"], point["y"] + 40)
        page.mouse.move(point["x"], point["y"])
        if "seat 23, 79.00 EUR, held" in page.inner_text("#seat-tip"):
            break
        assert time.monotonic() < deadline, page.inner_text("#seat-tip")
        page.wait_for_timeout(500)

    print("big house:", json.dumps(figures))
    (screenshots / "big-house.json").write_text(json.dumps(figures, indent=2))
    assert errors == []
