"""Event images over HTTP on the running service: upload (JSON route and the organizer's page),
what is served back and how, hostile uploads refused with a 4xx, whose show it is, removal, and
the pages showing the picture."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from uuid import uuid4

import httpx
import pytest
from PIL import Image

from commands.media import MAX_IMAGE_BYTES
from tests.e2e.conftest import bearer, publish_show, register, register_with_email
from tests.e2e.test_web import sign_in
from tests.images import MARKER, jpeg_with_exif, png, png_declaring

MEDIA = re.compile(r"^/media/[0-9a-f]{64}\.webp$")


@pytest.fixture
def web(service: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service, timeout=30, follow_redirects=False) as c:
        yield c


def upload(client: httpx.Client, token: str, event_id: str, data: bytes, kind: str = "image/png") -> httpx.Response:
    return client.put(f"/events/{event_id}/image", headers={**bearer(token), "Content-Type": kind}, content=data)


def test_an_uploaded_picture_is_served_re_encoded_and_cached_for_good(
    client: httpx.Client, web: httpx.Client, admin_token: str
) -> None:
    show = publish_show(client, admin_token)
    assert client.get(f"/events/{show.id}").json()["image_url"] is None

    r = upload(client, show.organizer, show.id, jpeg_with_exif(900, 600), "image/jpeg")
    assert r.status_code == 200, r.text
    body = r.json()
    assert MEDIA.match(body["image_url"]) and body["image"]["url"] == body["image_url"]
    assert (body["image"]["width"], body["image"]["height"]) == (600, 900)  # turned upright by its EXIF
    assert (body["image"]["card_width"], body["image"]["card_height"]) == (320, 480)
    # The listing and the detail say the same (read models, not just the command's answer).
    assert client.get(f"/events/{show.id}").json()["image"] == body["image"]
    listed = client.get("/events", params={"page_size": 100, "q": client.get(f"/events/{show.id}").json()["title"]})
    assert [e["image_url"] for e in listed.json()["data"] if e["id"] == show.id] == [body["image_url"]]

    served = web.get(body["image_url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/webp"
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in served.headers["content-security-policy"]
    assert MARKER not in served.content
    image = Image.open(io.BytesIO(served.content))
    image.load()
    assert image.format == "WEBP" and image.size == (600, 900)
    assert not image.getexif() and not {"exif", "icc_profile", "xmp"} & set(image.info)
    card = web.get(body["image"]["card_url"])
    assert card.status_code == 200 and Image.open(io.BytesIO(card.content)).size == (320, 480)
    # Its name is its content: a client holding it is told so at once.
    again = web.get(body["image_url"], headers={"If-None-Match": served.headers["etag"]})
    assert again.status_code == 304 and again.content == b""

    for unknown in (f"/media/{'0' * 64}.webp", "/media/nothing.webp", f"/media/{'a' * 64}.png", "/media/..%2f.env"):
        missing = web.get(unknown)
        assert missing.status_code in (400, 404), unknown
        assert missing.headers["content-type"].startswith("application/json")

    # A PNG replaces it; the old bytes stay served (a page or a cache may still name them).
    r = upload(client, show.organizer, show.id, png(2400, 1000))
    assert r.status_code == 200, r.text
    assert r.json()["image_url"] != body["image_url"] and r.json()["image"]["width"] == 1600
    assert web.get(body["image_url"]).status_code == 200

    # The public pages show it, with its text and size; the strict CSP stays (img-src 'self').
    page = web.get(f"/e/{show.id}")
    card_page = web.get("/", params={"q": r.json()["title"]})
    for html, variant in ((page.text, r.json()["image"]["url"]), (card_page.text, r.json()["image"]["card_url"])):
        tag = re.search(rf'<img [^>]*src="{re.escape(variant)}"[^>]*>', html)
        assert tag is not None, html
        assert f'alt="{r.json()["title"]}"' in tag.group(0) and 'width="' in tag.group(0) and 'height="' in tag.group(0)
    assert "img-src 'self'" in page.headers["content-security-policy"]

    # Removed: null everywhere, the pages show no picture.
    removed = client.delete(f"/events/{show.id}/image", headers=bearer(show.organizer))
    assert removed.status_code == 204
    detail = client.get(f"/events/{show.id}").json()
    assert detail["image_url"] is None and detail["image"] is None
    assert "<img" not in web.get(f"/e/{show.id}").text
    assert client.delete(f"/events/{show.id}/image", headers=bearer(show.organizer)).status_code == 204

    # Who did it is on the show's audit trail.
    history = client.get(f"/events/{show.id}/history", headers=bearer(show.organizer), params={"page_size": 100})
    kinds = [e["type"] for e in history.json()["data"]]
    assert kinds.count("Event.ImageChanged") == 2 and kinds.count("Event.ImageRemoved") == 1, kinds
    me = client.get("/auth/me", headers=bearer(show.organizer)).json()["id"]
    assert {e["actor_id"] for e in history.json()["data"] if e["type"].startswith("Event.Image")} == {me}


@pytest.mark.parametrize(
    ("data", "kind", "status", "code"),
    [
        (b"not an image at all", "image/png", 422, "not_an_image"),
        (png(64, 64)[:70], "image/png", 422, "not_an_image"),
        (jpeg_with_exif()[:500], "image/jpeg", 422, "not_an_image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "image/png", 422, "not_an_image"),
        (png_declaring(50_000, 50_000), "image/png", 422, "image_too_large"),
        (png_declaring(7_000, 7_000), "image/png", 422, "image_too_large"),
        (b"", "image/png", 422, "not_an_image"),
        (png(10, 10), "image/svg+xml", 415, "unsupported_media_type"),
        (png(10, 10), "application/json", 415, "unsupported_media_type"),
        (png(10, 10) + b"\0" * MAX_IMAGE_BYTES, "image/png", 413, "body_too_large"),
    ],
    ids=["text", "truncated-png", "truncated-jpeg", "svg", "bomb", "mid-bomb", "empty", "svg-type", "json", "big"],
)
def test_hostile_uploads_are_refused_with_a_4xx_and_change_nothing(
    client: httpx.Client, admin_token: str, data: bytes, kind: str, status: int, code: str
) -> None:
    show = publish_show(client, admin_token, seats=1)
    r = upload(client, show.organizer, show.id, data, kind)
    assert r.status_code == status, r.text
    assert r.json()["code"] == code and r.json()["error"]
    assert client.get(f"/events/{show.id}").json()["image_url"] is None


def test_only_the_owner_or_an_admin_changes_a_picture(client: httpx.Client, admin_token: str) -> None:
    show = publish_show(client, admin_token, seats=1)
    stranger = register(client, "organizer")
    buyer = register(client)
    assert upload(client, stranger, show.id, png()).status_code == 403
    assert upload(client, buyer, show.id, png()).status_code == 403
    anonymous = client.put(f"/events/{show.id}/image", headers={"Content-Type": "image/png"}, content=png())
    assert anonymous.status_code == 401
    assert upload(client, show.organizer, str(uuid4()), png()).status_code == 404
    assert client.get(f"/events/{show.id}").json()["image_url"] is None
    assert upload(client, admin_token, show.id, png()).status_code == 200
    assert client.delete(f"/events/{show.id}/image", headers=bearer(stranger)).status_code == 403
    assert client.get(f"/events/{show.id}").json()["image_url"] is not None
    # A cancelled show keeps its picture (409 for another), but it can be taken off.
    client.post(f"/events/{show.id}/cancel", headers=bearer(show.organizer), json={"reason": "rain"})
    refused = upload(client, show.organizer, show.id, png(30, 30))
    assert refused.status_code == 409 and refused.json()["code"] == "wrong_event_state"
    assert client.delete(f"/events/{show.id}/image", headers=bearer(show.organizer)).status_code == 204


def test_an_organizer_uploads_and_removes_a_picture_from_the_show_page(
    client: httpx.Client, web: httpx.Client, admin_token: str
) -> None:
    token, email = register_with_email(client, "organizer")
    show = publish_show(client, admin_token, seats=1, organizer=token)
    sign_in(web, email)
    manage = f"/organizer/events/{show.id}"
    page = web.get(manage).text
    assert 'enctype="multipart/form-data"' in page and f'action="{manage}/image"' in page
    csrf = web.cookies["csrf-token"]
    files = {"image": ("poster.jpg", jpeg_with_exif(), "image/jpeg")}
    assert web.post(f"{manage}/image", files=files).status_code == 403  # no CSRF field
    bad = web.post(f"{manage}/image", data={"_csrf": csrf}, files={"image": ("x.png", b"nope", "image/png")})
    assert bad.status_code == 422 and "text/html" in bad.headers["content-type"]
    assert web.post(f"{manage}/image", data={"_csrf": csrf}).status_code in (415, 422)  # no file
    done = web.post(f"{manage}/image", data={"_csrf": csrf}, files=files)
    assert done.status_code == 303, done.text
    image = client.get(f"/events/{show.id}").json()["image"]
    assert image is not None and image["card_url"] in web.get(manage).text
    assert web.post(f"{manage}/image/remove", data={"_csrf": csrf}).status_code == 303
    assert client.get(f"/events/{show.id}").json()["image_url"] is None
    # Someone else's show, through its page: refused, nothing changed.
    other = publish_show(client, admin_token, seats=1)
    refused = web.post(f"/organizer/events/{other.id}/image", data={"_csrf": csrf}, files=files)
    assert refused.status_code == 403
    assert client.get(f"/events/{other.id}").json()["image_url"] is None


def test_the_routes_are_in_the_openapi_document(web: httpx.Client) -> None:
    paths = web.get("/schema/openapi.json").json()["paths"]
    put = paths["/api/v1/events/{event_id}/image"]["put"]
    assert set(put["requestBody"]["content"]) == {"image/png", "image/jpeg", "image/webp"}
    assert "delete" in paths["/api/v1/events/{event_id}/image"]
    assert "/media/{name}" in paths
