"""The event page of a big house: the map is the seat-map document (gzipped, with its ETag), not
markup per seat, and the list of free seats for browsers without JavaScript is paged by section."""

from __future__ import annotations

import gzip
import re

import httpx

from tests.e2e.conftest import publish_show, register_with_email


def test_a_big_house_lists_its_free_seats_a_section_page_at_a_time(
    client: httpx.Client, admin_token: str, service: str
) -> None:
    organizer, _ = register_with_email(client, "organizer")
    show = publish_show(client, admin_token, organizer=organizer, seats=450)
    with httpx.Client(base_url=service, timeout=30) as web:
        page = web.get(f"/e/{show.id}")
        assert page.status_code == 200
        assert "450 of 450 seats free." in page.text
        # Over the inline limit: no seat listed until a section is chosen.
        assert "<option" not in page.text
        assert f'href="/e/{show.id}?section=0#seats"' in page.text

        def options(query: str) -> list[str]:
            r = web.get(f"/e/{show.id}?{query}")
            assert r.status_code == 200, r.text
            return re.findall(r'<option value="[^"]+:([^"]+)">', r.text)

        first, second, last = options("section=0"), options("section=0&offset=200"), options("section=0&offset=400")
        assert first + second + last == show.seats
        assert "section=0&amp;offset=200#seats" in web.get(f"/e/{show.id}?section=0").text
        assert options("section=7") == [] and options("section=-1") == [] and options("section=0&offset=-5") == first
        assert web.get(f"/e/{show.id}?section=abc").status_code == 422


def test_the_seat_map_document_is_gzipped_and_answers_304_while_unchanged(
    client: httpx.Client, admin_token: str
) -> None:
    organizer, _ = register_with_email(client, "organizer")
    show = publish_show(client, admin_token, organizer=organizer, seats=300)
    path = f"/events/{show.id}/seat-map"
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    packed = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["vary"] == "Accept-Encoding"
    assert packed.json() == plain.json()
    raw = client.build_request("GET", path, headers={"Accept-Encoding": "gzip"})
    streamed = client.send(raw, stream=True)
    wire = b"".join(streamed.iter_raw())
    streamed.close()
    assert gzip.decompress(wire) == plain.content and len(wire) * 3 < len(plain.content)
    again = client.get(path, headers={"If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
