"""Reports over HTTP: computed from the show's events, for its organizer or an admin only."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from tests.e2e.conftest import bearer, order, publish_show, register, register_with_email
from tests.e2e.test_door import paid_tickets
from ticketing import Settings

BOM = b"\xef\xbb\xbf"


def read_csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(BOM)
    assert "attachment" in response.headers["content-disposition"]
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_owner_gets_every_report_computed_from_the_shows_events(
    client: httpx.Client, admin_token: str, settings: Settings
) -> None:
    show = publish_show(client, admin_token, ga_quantity=10, seats=3)
    buyer, buyer_email = register_with_email(client)
    paid = paid_tickets(client, settings, buyer, [{"offer_id": show.ga_offer, "quantity": 2},
                                                  {"offer_id": show.seat_offer, "seat_id": show.seats[0]}])  # fmt: skip
    standing = [t for t in paid["tickets"] if t["offer_id"] == show.ga_offer]
    seat = next(t for t in paid["tickets"] if t["offer_id"] == show.seat_offer)
    tickets = [*standing, seat]
    # A name a spreadsheet would run as a formula, set by the holder.
    formula = '=HYPERLINK("http://evil.example","click")'
    named = client.patch(f"/tickets/{tickets[0]['id']}", headers=bearer(buyer), json={"attendee_name": formula})
    assert named.status_code == 200, named.text
    mine = {t["ticket_id"]: t for t in client.get("/me/tickets", headers=bearer(buyer)).json()["data"]}
    scanned = client.post(f"/events/{show.id}/check-ins", headers=bearer(show.organizer),
                          json={"qr_data": mine[tickets[1]["id"]]["qr_data"]})  # fmt: skip
    assert scanned.status_code == 200, scanned.text
    refunded = client.post(f"/orders/{paid['id']}/refund", headers=bearer(show.organizer),
                           json={"ticket_ids": [tickets[2]["id"]], "reason": "seat broken"})  # fmt: skip
    assert refunded.status_code == 200, refunded.text
    held = order(client, buyer, [{"offer_id": show.ga_offer, "quantity": 3}])
    assert held.status_code == 201, held.text
    # Another show's sale never shows up in this one's reports.
    elsewhere = publish_show(client, admin_token, ga_quantity=5, seats=1)
    assert order(client, buyer, [{"offer_id": elsewhere.ga_offer, "quantity": 1}]).status_code == 201

    owner = bearer(show.organizer)
    base = f"/events/{show.id}/reports"
    listed = client.get(base, headers=owner).json()
    assert {r["name"] for r in listed} >= {"sales", "attendees", "sales-over-time", "summary", "refunds", "door"}

    sales = read_csv(client.get(f"{base}/sales.csv", headers=owner))
    assert sorted((r["order_id"], r["offer"], r["quantity"], r["line_status"]) for r in sales) == sorted([
        (paid["id"], "Standing", "2", "paid"), (paid["id"], "Seat", "1", "refunded"),
        (held.json()["id"], "Standing", "3", "held"),
    ])  # fmt: skip
    seat_line = next(r for r in sales if r["offer"] == "Seat")
    assert seat_line["seat"] and seat_line["unit_price"] == "40.00" and seat_line["currency"] == "EUR"

    attendees = read_csv(client.get(f"{base}/attendees.csv", headers=owner))
    assert len(attendees) == 2  # the refunded ticket is not an attendee
    assert {r["holder_email"] for r in attendees} == {buyer_email}
    by_id = {r["ticket_id"]: r for r in attendees}
    assert by_id[tickets[0]["id"]]["attendee_name"] == "'" + formula  # defused: text, not a formula
    assert by_id[tickets[1]["id"]]["checked_in_at"].startswith(scanned.json()["checked_in_at"][:16])
    assert by_id[tickets[1]["id"]]["ticket_code"] == mine[tickets[1]["id"]]["code"] == tickets[1]["code"]

    summary = client.get(f"{base}/summary", headers=owner)
    assert summary.status_code == 200 and summary.headers["content-type"].startswith("application/json")
    figures: dict[str, Any] = summary.json()
    assert (figures["tickets_sold"], figures["tickets_held"], figures["tickets_refunded"]) == (2, 3, 1)
    assert figures["revenue"] == {"EUR": "50.00"} and figures["refunded"] == {"EUR": "40.00"}
    assert figures["check_in_rate"] == 0.5

    refunds = read_csv(client.get(f"{base}/refunds.csv", headers=owner))
    assert [(r["order_id"], r["amount"], r["reason"]) for r in refunds] == [(paid["id"], "40.00", "seat broken")]

    as_json = client.get(f"{base}/sales.json", headers=owner)
    assert as_json.headers["content-type"].startswith("application/json")
    assert len(as_json.json()["rows"]) == 3 and as_json.json()["event_id"] == show.id

    png = client.get(f"{base}/sales-over-time.png?bucket=minute", headers=owner)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    svg = client.get(f"{base}/sales-over-time.svg", headers=owner)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content
    door = client.get(f"{base}/door.png", headers=owner)
    assert door.status_code == 200 and door.content.startswith(b"\x89PNG")

    # An admin gets them too; the window leaves out what happened before it.
    assert client.get(f"{base}/sales.csv", headers=bearer(admin_token)).status_code == 200
    later = read_csv(client.get(f"{base}/sales.csv", params={"from": "2100-01-01T00:00:00Z"}, headers=owner))
    assert later == []


def test_strangers_and_bad_requests_get_the_contracts_errors(client: httpx.Client, admin_token: str) -> None:
    show = publish_show(client, admin_token, ga_quantity=5, seats=1)
    base = f"/events/{show.id}/reports"
    other_organizer = bearer(register(client, "organizer"))
    attendee = bearer(register(client))
    for path in ("sales.csv", "attendees.csv", "sales-over-time.png", "summary"):
        assert client.get(f"{base}/{path}").status_code == 401
        for who in (other_organizer, attendee):
            r = client.get(f"{base}/{path}", headers=who)
            assert r.status_code == 403 and r.json()["code"], r.text
    owner = bearer(show.organizer)
    unknown = client.get(f"{base}/nope.csv", headers=owner)
    assert unknown.status_code == 404 and unknown.json()["code"] == "report_not_found"
    no_chart = client.get(f"{base}/sales.png", headers=owner)
    assert no_chart.status_code == 404 and no_chart.json()["code"] == "report_not_found"
    backwards = client.get(f"{base}/sales.csv", params={"from": "2031-02-01T00:00:00Z", "to": "2031-01-01T00:00:00Z"},
                           headers=owner)  # fmt: skip
    assert backwards.status_code == 422 and backwards.json()["code"]
    bad_bucket = client.get(f"{base}/sales-over-time.png", params={"bucket": "week"}, headers=owner)
    assert bad_bucket.status_code in (400, 422) and "code" in bad_bucket.json()
    bad_time = client.get(f"{base}/summary", params={"from": "yesterday"}, headers=owner)
    assert bad_time.status_code in (400, 422) and "code" in bad_time.json()
    # A draft is not even there for strangers.
    draft = client.post("/events", headers=owner, json={
        "title": "Draft", "description": "", "venue_id": client.get("/venues").json()["data"][0]["id"],
        "start_time": "2031-05-01T19:00:00Z", "end_time": "2031-05-01T22:00:00Z"}).json()  # fmt: skip
    assert client.get(f"/events/{draft['id']}/reports/summary", headers=attendee).status_code == 404
    assert client.get(f"/events/{draft['id']}/reports/summary", headers=owner).status_code == 200
