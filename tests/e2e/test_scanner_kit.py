"""Scanners that work offline, over HTTP: the scanner kit (public key and the show's tickets) lets
a scanner verify codes without a network; the batch sync records what it admitted, first scan wins."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.e2e.conftest import bearer, register_with_email
from tests.e2e.door_helpers import day_pass_show, free_tickets


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_offline(public_key: str, qr_data: str) -> tuple[bytes, int]:
    """What a scanner does with the kit alone: check the Ed25519 signature of `TK1.<payload>.<sig>`
    and read the ticket id and generation out of the payload (ticket 16 bytes, event 16, generation 2)."""
    signed, _, signature = qr_data.rpartition(".")
    Ed25519PublicKey.from_public_bytes(b64decode(public_key)).verify(b64decode(signature), signed.encode())
    payload = b64decode(signed.split(".")[1])
    return payload[:16], int.from_bytes(payload[32:34], "big")


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def kit_pages(
    client: httpx.Client, token: str, event_id: str, limit: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    first: dict[str, Any] | None = None
    tickets: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"after": after} if after else {})}
        r = client.get(f"/events/{event_id}/scanner-kit", headers=bearer(token), params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        first = first or body
        assert len(body["tickets"]) <= limit
        tickets.extend(body["tickets"])
        after = body["next_after"]
        if after is None:
            return first, tickets


def test_scanner_kit_lets_a_scanner_verify_codes_offline_and_pages_through_the_tickets(
    client: httpx.Client, admin_token: str
) -> None:
    show = day_pass_show(client, admin_token, days=1)
    buyer, _ = register_with_email(client)
    tickets = free_tickets(client, buyer, [{"offer_id": show.offers[show.days[0]], "quantity": 5}])
    scanner, scanner_email = register_with_email(client)
    url = f"/events/{show.id}/scanner-kit"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=bearer(scanner)).status_code == 403
    assert client.get(url, headers=bearer(buyer)).status_code == 403
    granted = client.post(f"/events/{show.id}/scanners", headers=bearer(show.organizer), json={"email": scanner_email})
    assert granted.status_code == 201
    checked = client.post(
        f"/events/{show.id}/check-ins", headers=bearer(scanner), json={"qr_data": tickets[0]["qr_data"]}
    )
    assert checked.status_code == 200

    kit, listed = kit_pages(client, scanner, show.id, limit=2)
    assert kit["algorithm"] == "Ed25519" and kit["code_format"] == "TK1" and kit["key_id"]
    assert kit["timezone"] == show.timezone and kit["days"] == show.days
    assert kit["total_items"] == 5 and len(listed) == 5
    assert [t["ticket_id"] for t in listed] == sorted(t["ticket_id"] for t in tickets)
    by_id = {t["ticket_id"]: t for t in listed}
    assert by_id[tickets[0]["ticket_id"]]["status"] == "checked_in"
    assert by_id[tickets[0]["ticket_id"]]["checked_in_at"] == checked.json()["checked_in_at"]
    assert {by_id[t["ticket_id"]]["status"] for t in tickets[1:]} == {"valid"}
    assert {t["day"] for t in listed} == {show.days[0]}

    # Every code verifies with the kit's key alone and names a ticket of the kit, at its generation.
    for ticket in tickets:
        ticket_bytes, generation = verify_offline(kit["public_key"], ticket["qr_data"])
        assert str(UUID(bytes=ticket_bytes)) == ticket["ticket_id"]
        assert generation == by_id[ticket["ticket_id"]]["generation"]
    forged = tickets[1]["qr_data"][:-4] + ("AAAA" if not tickets[1]["qr_data"].endswith("AAAA") else "BBBB")
    try:
        verify_offline(kit["public_key"], forged)
        raise AssertionError("a forged code verified")
    except InvalidSignature:
        pass

    assert client.get(url, headers=bearer(show.organizer)).status_code == 200
    assert client.get(url, headers=bearer(admin_token)).status_code == 200
    assert client.get(url, headers=bearer(scanner), params={"limit": 0}).status_code == 422
    assert client.get(url, headers=bearer(scanner), params={"limit": 5001}).status_code == 422


def test_offline_scans_sync_back_first_scan_wins_and_a_repeated_batch_changes_nothing(
    client: httpx.Client, admin_token: str
) -> None:
    show = day_pass_show(client, admin_token, days=1)
    other = day_pass_show(client, admin_token, days=1)
    buyer, _ = register_with_email(client)
    _, friend_email = register_with_email(client)
    a, b, c, d, e = free_tickets(client, buyer, [{"offer_id": show.offers[show.days[0]], "quantity": 5}])
    stranger = free_tickets(client, buyer, [{"offer_id": other.offers[other.days[0]], "quantity": 1}])[0]
    scanner, scanner_email = register_with_email(client)
    client.post(f"/events/{show.id}/scanners", headers=bearer(show.organizer), json={"email": scanner_email})
    me = client.get("/auth/me", headers=bearer(scanner)).json()["id"]
    organizer_id = client.get("/auth/me", headers=bearer(show.organizer)).json()["id"]

    # Online meanwhile: B and C are checked in at the door now.
    online = {}
    for ticket in (b, c):
        r = client.post(
            f"/events/{show.id}/check-ins", headers=bearer(show.organizer), json={"qr_data": ticket["qr_data"]}
        )
        assert r.status_code == 200
        online[ticket["ticket_id"]] = datetime.fromisoformat(r.json()["checked_in_at"])
    # D is given away: its old code is superseded.
    moved = client.post(f"/tickets/{d['ticket_id']}/transfer", headers=bearer(buyer), json={"email": friend_email})
    assert moved.status_code == 200

    now = datetime.now(UTC)
    t0 = now - timedelta(minutes=30)
    scans = [
        {"qr_data": a["qr_data"], "scanned_at": iso(t0 + timedelta(minutes=2)), "scanner_ref": "gate-1"},  # 0: later A
        {"qr_data": a["qr_data"], "scanned_at": iso(t0), "scanner_ref": "gate-2"},  # 1: first A
        {"qr_data": b["qr_data"], "scanned_at": iso(online[b["ticket_id"]] + timedelta(seconds=1))},  # 2: after stored
        {"qr_data": c["qr_data"], "scanned_at": iso(t0 + timedelta(minutes=5))},  # 3: before the stored one
        {"qr_data": d["qr_data"], "scanned_at": iso(t0)},  # 4: superseded code
        {"qr_data": e["qr_data"][:-3] + "AAA", "scanned_at": iso(t0)},  # 5: forged
        {"qr_data": stranger["qr_data"], "scanned_at": iso(t0)},  # 6: another show's ticket
        {"qr_data": e["qr_data"], "scanned_at": iso(now + timedelta(hours=1))},  # 7: from the future
        {"qr_data": e["qr_data"], "scanned_at": iso(t0 + timedelta(minutes=7))},  # 8: E, once
    ]
    url = f"/events/{show.id}/check-ins/batch"
    assert client.post(url, headers=bearer(buyer), json={"scans": scans}).status_code == 403
    r = client.post(url, headers=bearer(scanner), json={"scans": scans})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["index"] for x in results] == list(range(len(scans)))
    assert [x["result"] for x in results] == [
        "already_checked_in", "checked_in", "already_checked_in", "checked_in", "voided",
        "invalid", "invalid", "invalid", "checked_in",
    ]  # fmt: skip
    assert results[0]["scanner_ref"] == "gate-1" and results[1]["scanner_ref"] == "gate-2"
    assert datetime.fromisoformat(results[0]["checked_in_at"]) == t0.replace(microsecond=t0.microsecond)
    assert results[0]["checked_in_by"] == me and results[1]["checked_in_by"] == me
    assert datetime.fromisoformat(results[2]["checked_in_at"]) == online[b["ticket_id"]]
    assert results[2]["checked_in_by"] == organizer_id
    assert r.json()["counts"] == {"already_checked_in": 2, "checked_in": 3, "voided": 1, "invalid": 3}

    # What the show now knows: the earliest scan of each ticket.
    kit = client.get(f"/events/{show.id}/scanner-kit", headers=bearer(scanner)).json()
    state = {t["ticket_id"]: t for t in kit["tickets"]}
    assert datetime.fromisoformat(state[a["ticket_id"]]["checked_in_at"]) == t0
    assert datetime.fromisoformat(state[b["ticket_id"]]["checked_in_at"]) == online[b["ticket_id"]]
    assert datetime.fromisoformat(state[c["ticket_id"]]["checked_in_at"]) == t0 + timedelta(minutes=5)
    assert state[d["ticket_id"]]["status"] == "valid" and state[d["ticket_id"]]["generation"] == 1
    assert state[e["ticket_id"]]["status"] == "checked_in"
    online_again = client.post(f"/events/{show.id}/check-ins", headers=bearer(show.organizer),
                               json={"qr_data": c["qr_data"]})  # fmt: skip
    assert online_again.status_code == 409
    assert datetime.fromisoformat(online_again.json()["first_checked_in_at"]) == t0 + timedelta(minutes=5)
    assert online_again.json()["checked_in_by"] == me

    # The same batch again (a retry after a lost answer): the same answer, nothing recorded twice.
    again = client.post(url, headers=bearer(scanner), json={"scans": scans})
    assert again.status_code == 200
    assert again.json() == r.json()
    assert client.get(f"/events/{show.id}/scanner-kit", headers=bearer(scanner)).json()["tickets"] == kit["tickets"]

    # Bounded: more than 500 scans, or none, is refused and writes nothing.
    too_many = {"scans": [{"qr_data": e["qr_data"], "scanned_at": iso(t0)}] * 501}
    big = client.post(url, headers=bearer(scanner), json=too_many)
    assert big.status_code in (413, 422) and big.json()["code"] in ("validation_error", "body_too_large")
    assert client.post(url, headers=bearer(scanner), json={"scans": []}).status_code == 422
    naive_scan = {"qr_data": e["qr_data"], "scanned_at": "2031-01-01T10:00:00"}
    naive = client.post(url, headers=bearer(scanner), json={"scans": [naive_scan]})
    assert naive.status_code == 422
