"""An event's picture in a real browser: the organizer uploads it from the show's page, and it
loads (under the pages' strict CSP) on that page, on the home page's card and on the event page.
Screenshots go to .data/screenshots/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.browser.test_journey import sign_in
from tests.e2e.conftest import publish_show, register_with_email
from tests.images import jpeg_with_exif

LOADED = "() => [...document.images].length > 0 && [...document.images].every(i => i.complete && i.naturalWidth > 0)"


def test_an_organizer_uploads_a_picture_that_the_pages_show(
    browser: Any, service: str, client: httpx.Client, admin_token: str, screenshots: Path, tmp_path: Path
) -> None:
    organizer, email = register_with_email(client, "organizer")
    show = publish_show(client, admin_token, organizer=organizer, seats=4)
    title = client.get(f"/events/{show.id}").json()["title"]
    poster = tmp_path / "poster.jpg"
    poster.write_bytes(jpeg_with_exif(1200, 800, orientation=1))
    errors: list[str] = []

    page = browser.new_context(base_url=service, viewport={"width": 1280, "height": 900}).new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"/login?next=/organizer/events/{show.id}")
    sign_in(page, email)
    page.wait_for_url(f"**/organizer/events/{show.id}")
    page.set_input_files("input[type=file][name=image]", str(poster))
    page.click("button:has-text('Upload')")
    page.wait_for_selector("img.event-image")
    page.wait_for_function(LOADED)
    page.screenshot(path=screenshots / "images-1-manage.png", full_page=True)

    page.goto(f"/?q={title.split()[-1]}")
    card = page.locator(f"li.card:has(a[href='/e/{show.id}']) img.card-image")
    assert card.get_attribute("alt") == title
    assert (card.get_attribute("width"), card.get_attribute("height")) == ("480", "320")
    page.wait_for_function(LOADED)
    page.screenshot(path=screenshots / "images-2-home.png", full_page=True)

    page.goto(f"/e/{show.id}")
    picture = page.locator("img.event-image")
    assert picture.get_attribute("alt") == title
    assert picture.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [1200, 800]
    page.wait_for_function(LOADED)
    page.screenshot(path=screenshots / "images-3-event.png", full_page=True)
    assert errors == []
