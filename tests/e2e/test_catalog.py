"""Catalog routes over HTTP: categories, venues, event lifecycle, lineup, multi-day pricing, search."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest

from tests.e2e.conftest import all_pages, bearer, order, publish_show, register


def make_venue(client: httpx.Client, admin: str, city: str = "Berlin") -> dict[str, Any]:
    r = client.post("/venues", headers=bearer(admin), json={"name": f"Venue {uuid4().hex[:6]}", "city": city})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def draft(client: httpx.Client, organizer: str, venue_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "title": f"Draft {uuid4().hex[:6]}",
        "venue_id": venue_id,
        "start_time": "2031-06-01T18:00:00Z",
        "end_time": "2031-06-01T22:00:00Z",
        **fields,
    }
    r = client.post("/events", headers=bearer(organizer), json=body)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def test_category_tree_is_public_to_read_and_admin_only_to_grow(client: httpx.Client, admin_token: str) -> None:
    name = f"Music {uuid4().hex[:6]}"
    segment = client.post("/segments", headers=bearer(admin_token), json={"name": name})
    assert segment.status_code == 201 and segment.json()["level"] == "segment"
    assert client.post("/segments", headers=bearer(admin_token), json={"name": name}).status_code == 409
    assert (
        client.post("/segments", headers=bearer(register(client, "organizer")), json={"name": "x"}).status_code == 403
    )
    seg_id = segment.json()["id"]
    genre = client.post(f"/segments/{seg_id}/genres", headers=bearer(admin_token), json={"name": "Rock"}).json()
    sub = client.post(f"/genres/{genre['id']}/sub-genres", headers=bearer(admin_token), json={"name": "Indie Rock"})
    assert sub.status_code == 201 and sub.json()["parent_id"] == genre["id"] and sub.json()["slug"] == "indie-rock"
    assert name in [s["name"] for s in all_pages(client, "/segments")]
    genres = client.get(f"/segments/{seg_id}/genres").json()
    assert [g["name"] for g in genres["data"]] == ["Rock"] and genres["pagination"]["total_items"] == 1
    assert [g["name"] for g in client.get(f"/genres/{genre['id']}/sub-genres").json()["data"]] == ["Indie Rock"]
    assert client.get(f"/segments/{uuid4()}/genres").status_code == 404
    assert client.get(f"/genres/{seg_id}/sub-genres").status_code == 404  # a segment is not a genre
    assert (
        client.post(f"/genres/{uuid4()}/sub-genres", headers=bearer(admin_token), json={"name": "x"}).status_code == 404
    )


def test_events_reference_a_consistent_branch_of_the_category_tree(client: httpx.Client, admin_token: str) -> None:
    seg = client.post("/segments", headers=bearer(admin_token), json={"name": f"Sports {uuid4().hex[:5]}"}).json()
    other = client.post("/segments", headers=bearer(admin_token), json={"name": f"Arts {uuid4().hex[:5]}"}).json()
    genre = client.post(f"/segments/{seg['id']}/genres", headers=bearer(admin_token), json={"name": "Football"}).json()
    venue = make_venue(client, admin_token)
    organizer = register(client, "organizer")
    ok = draft(client, organizer, venue["id"], segment_id=seg["id"], genre_id=genre["id"])
    assert ok["segment_id"] == seg["id"] and ok["genre_id"] == genre["id"]
    body = {
        "title": "Mismatch",
        "venue_id": venue["id"],
        "start_time": "2031-06-01T18:00:00Z",
        "end_time": "2031-06-01T20:00:00Z",
        "segment_id": other["id"],
        "genre_id": genre["id"],
    }
    r = client.post("/events", headers=bearer(organizer), json=body)
    assert r.status_code == 422 and "genre_id" in r.json()["field_errors"]
    r = client.post("/events", headers=bearer(organizer), json={**body, "segment_id": str(uuid4()), "genre_id": None})
    assert r.status_code == 422 and "segment_id" in r.json()["field_errors"]


def test_event_lifecycle_rules(client: httpx.Client, admin_token: str) -> None:
    venue, other_venue = make_venue(client, admin_token), make_venue(client, admin_token)
    organizer = register(client, "organizer")
    h = bearer(organizer)
    event = draft(client, organizer, venue["id"])
    # Drafts: anything goes, including the venue; then delete.
    r = client.patch(f"/events/{event['id']}", headers=h, json={"venue_id": other_venue["id"], "title": "Renamed"})
    assert r.status_code == 200 and r.json()["venue_id"] == other_venue["id"] and r.json()["title"] == "Renamed"
    bad = client.patch(f"/events/{event['id']}", headers=h, json={"end_time": "2031-05-01T00:00:00Z"})
    assert bad.status_code == 422
    assert client.delete(f"/events/{event['id']}", headers=h).status_code == 204
    assert client.get(f"/events/{event['id']}", headers=h).status_code == 404

    # Published: keeps its venue; cancelled: frozen, cannot be republished.
    show = publish_show(client, admin_token, ga_quantity=5, seats=2)
    oh = bearer(show.organizer)
    moved = client.patch(f"/events/{show.id}", headers=oh, json={"venue_id": other_venue["id"]})
    assert moved.status_code == 409 and moved.json()["code"] == "wrong_event_state"
    assert client.patch(f"/events/{show.id}", headers=oh, json={"description": "Updated"}).status_code == 200
    assert client.post(f"/events/{show.id}/publish", headers=oh).status_code == 409
    assert client.post(f"/events/{show.id}/cancel", headers=oh).status_code == 200
    assert client.delete(f"/events/{show.id}", headers=oh).status_code == 409
    assert client.post(f"/events/{show.id}/publish", headers=oh).status_code == 409
    assert client.patch(f"/events/{show.id}", headers=oh, json={"title": "Back"}).status_code == 409
    # Someone else's published event: visible, not writable.
    stranger = bearer(register(client, "organizer"))
    assert client.patch(f"/events/{show.id}", headers=stranger, json={"title": "x"}).status_code == 403


def test_lineup_is_searchable(client: httpx.Client, admin_token: str) -> None:
    show = publish_show(client, admin_token)
    band = f"Zorblax{uuid4().hex[:6]}"
    r = client.post(f"/events/{show.id}/attractions", headers=bearer(show.organizer), json={"name": band})
    assert r.status_code == 201
    attraction = r.json()
    again = client.post(f"/events/{show.id}/attractions", headers=bearer(show.organizer), json={"name": band})
    assert again.status_code == 409
    found = client.get("/events", params={"q": band[:9].lower()}).json()["data"]
    assert [e["id"] for e in found] == [show.id]
    detail = client.get(f"/events/{show.id}").json()
    assert [a["name"] for a in detail["attractions"]] == [band]
    gone = client.delete(f"/events/{show.id}/attractions/{attraction['id']}", headers=bearer(show.organizer))
    assert gone.status_code == 204
    assert client.get("/events", params={"q": band}).json()["data"] == []
    # The very search answered (and cached) before the change sees the change.
    assert client.get("/events", params={"q": band[:9].lower()}).json()["data"] == []


def test_listing_answers_carry_an_etag_that_moves_with_the_catalog(client: httpx.Client, admin_token: str) -> None:
    show = publish_show(client, admin_token)
    word = f"Quillet{uuid4().hex[:6]}"
    params = {"q": word.lower(), "page_size": "5"}
    first = client.get("/events", params=params)
    assert first.status_code == 200 and first.json()["data"] == []
    etag = first.headers["etag"]
    assert client.get("/events", params=params, headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/events", params={**params, "page": "2"}).headers["etag"] != etag
    r = client.post(f"/events/{show.id}/attractions", headers=bearer(show.organizer), json={"name": word})
    assert r.status_code == 201
    changed = client.get("/events", params=params, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert [e["id"] for e in changed.json()["data"]] == [show.id]


def test_multi_day_event_has_a_day_by_tier_pricing_matrix(client: httpx.Client, admin_token: str) -> None:
    venue = make_venue(client, admin_token)
    organizer = register(client, "organizer")
    h = bearer(organizer)
    festival = draft(client, organizer, venue["id"], days=["2031-07-01", "2031-07-02"], end_time="2031-07-02T23:00:00Z")
    day_one = client.post(
        f"/events/{festival['id']}/tiers", headers=h, json={"name": "Day pass", "day": "2031-07-01"}
    ).json()
    day_two = client.post(
        f"/events/{festival['id']}/tiers", headers=h, json={"name": "Day pass", "day": "2031-07-02"}
    ).json()
    both = client.post(f"/events/{festival['id']}/tiers", headers=h, json={"name": "Weekend"}).json()
    wrong = client.post(f"/events/{festival['id']}/tiers", headers=h, json={"name": "x", "day": "2031-08-01"})
    assert wrong.status_code == 422
    for tier, price in ((day_one, "59.00"), (day_two, "69.00"), (both, "110.00")):
        r = client.post(
            f"/tiers/{tier['id']}/offers",
            headers=h,
            json={"name": "Regular", "price": price, "currency": "EUR", "quantity_for_sale": 100},
        )
        assert r.status_code == 201
    assert client.post(f"/events/{festival['id']}/publish", headers=h).status_code == 200
    matrix = client.get(f"/events/{festival['id']}/pricing-matrix").json()
    assert matrix["days"] == ["2031-07-01", "2031-07-02"]
    grid = {(row["day"], row["tier_name"]): [o["price"] for o in row["offers"]] for row in matrix["rows"]}
    assert grid == {
        ("2031-07-01", "Day pass"): ["59.00"],
        ("2031-07-01", "Weekend"): ["110.00"],
        ("2031-07-02", "Day pass"): ["69.00"],
        ("2031-07-02", "Weekend"): ["110.00"],
    }


def test_offers_pause_resume_and_sale_windows(client: httpx.Client, admin_token: str) -> None:
    show = publish_show(client, admin_token, ga_quantity=10)
    h = bearer(show.organizer)
    buyer = register(client)
    paused = client.patch(f"/offers/{show.ga_offer}", headers=h, json={"status": "paused"})
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    r = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 1}])
    assert r.status_code == 409 and r.json()["code"] == "offer_paused"
    assert client.patch(f"/offers/{show.ga_offer}", headers=h, json={"status": "on_sale"}).status_code == 200
    assert order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 1}]).status_code == 201
    later = client.patch(f"/offers/{show.ga_offer}", headers=h, json={"sale_start_time": "2030-01-01T00:00:00Z"})
    assert later.status_code == 200 and later.json()["status"] == "scheduled"
    r = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 1}])
    assert r.status_code == 409 and r.json()["code"] == "offer_scheduled"
    bad = client.patch(f"/offers/{show.ga_offer}", headers=h, json={"min_per_order": 5, "max_per_order": 2})
    assert bad.status_code == 422
    below = client.patch(f"/offers/{show.ga_offer}", headers=h, json={"quantity_for_sale": 0})
    assert below.status_code == 409
    assert client.patch(f"/offers/{show.ga_offer}", headers=h, json={"status": "sold"}).status_code == 422


def test_venue_layouts_are_validated(client: httpx.Client, admin_token: str) -> None:
    venue = make_venue(client, admin_token)
    h = bearer(admin_token)
    dup = {
        "sections": [
            {
                "name": "A",
                "rows": [{"label": "1", "seats": [{"label": "1", "x": 0, "y": 0}, {"label": "1", "x": 1, "y": 0}]}],
            }
        ]
    }
    r = client.put(f"/venues/{venue['id']}/layout", headers=h, json=dup)
    assert r.status_code == 422 and r.json()["field_errors"]
    far = {"sections": [{"name": "A", "rows": [{"label": "1", "seats": [{"label": "1", "x": 1e9, "y": 0}]}]}]}
    assert client.put(f"/venues/{venue['id']}/layout", headers=h, json=far).status_code == 422
    assert client.put(f"/venues/{venue['id']}/layout", headers=h, json={"sections": []}).status_code == 422
    assert client.patch(f"/venues/{venue['id']}", headers=h, json={"latitude": 123}).status_code == 422
    renamed = client.patch(f"/venues/{venue['id']}", headers=h, json={"name": "New name", "capacity": 99})
    assert renamed.status_code == 200 and renamed.json()["name"] == "New name"
    assert client.get(f"/venues/{venue['id']}").json()["capacity"] == 99
    listed = client.get("/venues", params={"city": venue["city"], "page_size": 100}).json()["data"]
    assert venue["id"] in [v["id"] for v in listed]


@pytest.fixture(scope="module")
def catalogue(client: httpx.Client, admin_token: str) -> dict[str, Any]:
    """A small catalogue in a city of its own, so filters can be checked exactly."""
    city = f"Testville{uuid4().hex[:6]}"
    venue = make_venue(client, admin_token, city=city)
    organizer = register(client, "organizer")
    h = bearer(organizer)
    made: dict[str, Any] = {"city": city, "venue": venue, "organizer": organizer, "events": {}}
    for title, start, price, quantity in (
        ("Alpha Jazz Evening", "2031-03-01T19:00:00Z", "10.00", 5),
        ("Beta Rock Night", "2031-03-05T19:00:00Z", "30.00", 0),
        ("Gamma Jazz Brunch", "2031-04-01T11:00:00Z", "50.00", 5),
    ):
        event = draft(
            client,
            organizer,
            venue["id"],
            title=title,
            start_time=start,
            end_time=start.replace("T19", "T23").replace("T11", "T14"),
        )
        tier = client.post(f"/events/{event['id']}/tiers", headers=h, json={"name": "GA"}).json()
        client.post(
            f"/tiers/{tier['id']}/offers",
            headers=h,
            json={"name": "GA", "price": price, "currency": "EUR", "quantity_for_sale": quantity},
        )
        assert client.post(f"/events/{event['id']}/publish", headers=h).status_code == 200
        made["events"][title] = event["id"]
    return made


def titles(client: httpx.Client, **params: Any) -> list[str]:
    r = client.get("/events", params=params)
    assert r.status_code == 200, r.text
    return [e["title"] for e in r.json()["data"]]


def test_search_filters_sorting_and_pagination(client: httpx.Client, catalogue: dict[str, Any]) -> None:
    city = catalogue["city"]
    assert titles(client, city=city) == ["Alpha Jazz Evening", "Beta Rock Night", "Gamma Jazz Brunch"]
    assert titles(client, city=city, sort="-start_time")[0] == "Gamma Jazz Brunch"
    assert titles(client, city=city, q="jazz") == ["Alpha Jazz Evening", "Gamma Jazz Brunch"]
    assert titles(client, city=city, q="bru") == ["Gamma Jazz Brunch"]  # prefix match
    assert titles(client, city=city, available="true") == ["Alpha Jazz Evening", "Gamma Jazz Brunch"]
    assert titles(client, city=city, price_min="20", price_max="40") == ["Beta Rock Night"]
    assert titles(client, city=city, sort="-price")[0] == "Gamma Jazz Brunch"
    assert titles(client, city=city, date_from="2031-03-04T00:00:00Z", date_to="2031-03-31T00:00:00Z") == [
        "Beta Rock Night"
    ]
    assert titles(client, venue_id=catalogue["venue"]["id"], q="evening jazz", sort="relevance") == [
        "Alpha Jazz Evening"
    ]
    page = client.get("/events", params={"city": city, "page_size": 2, "page": 2}).json()
    assert [e["title"] for e in page["data"]] == ["Gamma Jazz Brunch"]
    assert page["pagination"] == {"total_items": 3, "total_pages": 2, "current_page": 2, "page_size": 2}
    assert client.get("/events", params={"page_size": 500}).status_code == 422
    assert client.get("/events", params={"sort": "name"}).status_code == 422
    assert client.get("/events", params={"venue_id": "nope"}).status_code in (400, 422)


def test_organizers_list_their_own_events_in_any_status(client: httpx.Client, catalogue: dict[str, Any]) -> None:
    organizer = catalogue["organizer"]
    draft(client, organizer, catalogue["venue"]["id"], title="Unpublished idea")
    mine = client.get("/organizer/events", headers=bearer(organizer), params={"page_size": 100}).json()["data"]
    assert {e["title"] for e in mine} == {
        "Alpha Jazz Evening",
        "Beta Rock Night",
        "Gamma Jazz Brunch",
        "Unpublished idea",
    }
    assert client.get("/organizer/events", headers=bearer(register(client))).status_code == 403
