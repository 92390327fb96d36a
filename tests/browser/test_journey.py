"""The web pages in a real browser: browse → pick two seats → checkout → pay → tickets shown →
the organizer's dashboard shows the sale → the door scanner checks one ticket in and refuses it
the second time, then the organizer blocks house seats and pauses an offer on the show's page.
Screenshots of each step go to .data/screenshots/ for people to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import PASSWORD, publish_show, register_with_email


def sign_in(page: Any, email: str) -> None:
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")


def test_buyer_organizer_and_door(
    browser: Any, service: str, client: httpx.Client, admin_token: str, screenshots: Path
) -> None:
    organizer, organizer_email = register_with_email(client, "organizer")
    show = publish_show(client, admin_token, organizer=organizer, seats=20)
    title = client.get(f"/events/{show.id}").json()["title"]
    _, buyer_email = register_with_email(client)
    errors: list[str] = []

    # Browse: the listing's search finds the show; its page has the seat map.
    buyer = browser.new_context(base_url=service, viewport={"width": 1280, "height": 900}).new_page()
    buyer.on("pageerror", lambda error: errors.append(str(error)))
    buyer.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    buyer.goto(f"/?q={title.split()[-1]}")
    buyer.screenshot(path=screenshots / "01-home.png", full_page=True)
    buyer.click(f"a[href='/e/{show.id}']")
    buyer.click("text=Sign in to buy")
    assert "/login?next=" in buyer.url
    sign_in(buyer, buyer_email)
    assert buyer.url.endswith(f"/e/{show.id}")

    # Pick two seats: one with the mouse, one with the keyboard (the map is a canvas).
    buyer.wait_for_selector("#seatmap[data-ready=true]")
    assert buyer.get_attribute("#seatmap", "data-seats") == "20"
    click_seat(buyer, show.seats[3])
    buyer.focus("#seatmap")  # the cursor is on the seat just clicked
    buyer.keyboard.press("ArrowRight")
    assert "row A, seat 5, 40.00 EUR, free" in buyer.inner_text("#seat-focus")
    buyer.keyboard.press("Space")
    assert "seat 5, 40.00 EUR, picked" in buyer.inner_text("#seat-focus")
    picked = buyer.locator("#picked input[name=seat]")
    assert [picked.nth(i).get_attribute("value") for i in range(picked.count())] == [
        f"{show.seat_offer}:{seat}" for seat in show.seats[3:5]
    ]
    assert buyer.locator("#picked-summary").inner_text().count("seat") == 2
    buyer.screenshot(path=screenshots / "02-seats-picked.png", full_page=True)

    # Hold, then the checkout with its countdown; pay with localstripe's test card.
    buyer.click("button:has-text('Hold my tickets')")
    assert "/checkout/" in buyer.url
    buyer.wait_for_function("() => document.getElementById('countdown').textContent.includes('left')")
    assert "80.00 EUR" in buyer.inner_text("main")
    buyer.screenshot(path=screenshots / "03-checkout.png", full_page=True)
    buyer.click("button:has-text('Pay')")
    buyer.wait_for_selector("text=Your tickets", timeout=30_000)
    assert buyer.locator(".ticket img").count() == 2
    buyer.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    buyer.screenshot(path=screenshots / "04-tickets.png", full_page=True)
    # An access token that has run out: /me sends the buyer to /login, whose script renews the
    # session with the refresh cookie and goes back.
    buyer.context.clear_cookies(name="auth-token")
    buyer.goto("/me")
    buyer.wait_for_url("**/me")
    assert buyer.locator(".ticket").count() == 2
    first_qr, second_qr = (t["qr_data"] for t in buyer.request.get("/api/v1/me/tickets").json()["data"])

    # The organizer's dashboard shows the sale (and its chart).
    door = browser.new_context(base_url=service, viewport={"width": 1280, "height": 900}).new_page()
    door.on("pageerror", lambda error: errors.append(str(error)))
    door.goto("/organizer")
    assert "/login?next=%2Forganizer" in door.url
    sign_in(door, organizer_email)
    card = door.locator(f"section[aria-labelledby='show-{show.id}']")
    assert card.locator("dd.sold").inner_text() == "2"
    assert card.locator("dd.revenue").inner_text().startswith("80.00")
    door.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    door.screenshot(path=screenshots / "05-organizer.png", full_page=True)

    # The door: green the first time, red the second.
    card.locator("text=Door scanner").click()
    door.wait_for_selector("#kit-status:has-text('2 tickets, key loaded')")
    scan(door, first_qr, "answer-ok", "Welcome in", screenshots / "06-scan-first.png")
    scan(door, first_qr, "answer-bad", "Already checked in", screenshots / "07-scan-again.png")
    scan(door, "TK1.forged", "answer-bad", "Not valid", None)

    # Offline: the code's signature is verified in the browser (WebCrypto), the scan queued and
    # synced once the network is back.
    door.context.set_offline(True)
    scan(door, second_qr, "answer-ok", "offline, will sync", screenshots / "08-scan-offline.png")
    scan(door, second_qr, "answer-bad", "Already checked in", None)
    scan(door, first_qr[:-4] + "AAAA", "answer-bad", "Not valid", None)
    assert "Waiting to sync: 1." in door.inner_text("#kit-status")
    door.context.set_offline(False)
    door.wait_for_selector("#kit-status:has-text('Waiting to sync: 0.')", timeout=20_000)
    sales = door.request.get(f"/api/v1/events/{show.id}/sales").json()
    assert sales["tickets_checked_in"] == 2

    # Back office: the show's page blocks three house seats and pauses the standing offer.
    door.goto(f"/organizer/events/{show.id}")
    door.fill("input[name=row]", "A")
    door.fill("input[name=seats]", "18-20")
    door.get_by_role("button", name="Apply").click()
    door.wait_for_selector("text=Blocked now (3)")
    door.locator("button:has-text('Pause sales')").first.click()
    door.wait_for_selector("button:has-text('Resume sales')")
    door.screenshot(path=screenshots / "09-manage.png", full_page=True)
    statuses = [s["status"] for sec in door.request.get(f"/api/v1/events/{show.id}/seat-map").json()["sections"]
                for r in sec["rows"] for s in r["seats"]]  # fmt: skip
    assert statuses.count("blocked") == 3

    assert errors == []


def click_seat(page: Any, seat_id: str) -> None:
    """Click a seat of the canvas map where the page's script says it is drawn."""
    page.locator("#seatmap").scroll_into_view_if_needed()
    point = page.evaluate("(id) => document.getElementById('seatmap').seatPoint(id)", seat_id)
    assert point is not None, seat_id
    page.mouse.click(point["x"], point["y"])


def scan(page: Any, code: str, colour: str, words: str, screenshot: Path | None) -> None:
    page.fill("#qr-data", code)
    page.click("button:has-text('Check in')")
    page.wait_for_function(
        "([colour, words]) => { const a = document.getElementById('answer');"
        " return a.classList.contains(colour) && a.textContent.includes(words); }",
        arg=[colour, words],
    )
    if screenshot is not None:
        page.screenshot(path=screenshot, full_page=True)
