"""Personal data at rest: a key per person outside the log, and an e-mail index that does not
reveal the address.

- `Vault`: each person's data is sealed (AES-GCM) with a key of their own, kept in
  `personal_keys`, beside the events table, never in it. Keys are stored wrapped with a key
  derived from `PERSONAL_DATA_SECRET`, so a copy of the database alone opens nothing. Erasure
  (`shred`) replaces the key with NULL: everything sealed with it, in every stored event, in
  every backup of the log, can no longer be read. A sealed value is a string,
  `sealed:v1:<person hex>:<base64 nonce+ciphertext>`, so the event keeps its shape and the fast
  decoder keeps decoding it; the person's id is the associated data, so a value cannot be moved
  to another person.
- The e-mail index: `account_emails` maps HMAC-SHA256(secret, address) to the account id; the
  address itself appears nowhere outside the sealed events. Erasure deletes the row, so the
  address can register again (a new account, a new id, a new key).

Keys are looked up once per process and cached; a process that meets many people (a replay)
loads them all, still wrapped, in one query. Every process notices an erasure made elsewhere within a second
(`ERASURE_CHECK_SECONDS`: one small query for the keys destroyed since, when keys are in use).
Sealing an event costs a microsecond or two: only account events and attendee names carry
personal data, never an order placement.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.utils import resolve_topic
from psycopg import Connection
from psycopg.sql import SQL, Identifier

from domain.privacy import erased_values

PREFIX = "sealed:v1:"
KEYS_TABLE = "personal_keys"
EMAILS_TABLE = "account_emails"
ERASURE_CHECK_SECONDS = 1.0
# Keys fetched one at a time before a process loads them all (wrapped) in one query.
BULK_AFTER_MISSES = 64
# The value `open` gives for data whose key is gone (the mapper turns it into "" or None).
ERASED: None = None


def _derive(secret: str, purpose: str) -> bytes:
    if not secret:
        raise RuntimeError("PERSONAL_DATA_SECRET is not set")
    return hashlib.sha256(f"{purpose}:{secret}".encode()).digest()


def email_digest(secret: str, email: str) -> bytes:
    """The keyed hash under which an address is indexed (normalised as the account stores it)."""
    return hmac.new(_derive(secret, "account-emails"), email.strip().lower().encode(), hashlib.sha256).digest()


def create_tables(conn: Connection[Any], schema: str) -> None:
    conn.execute(
        SQL(
            "CREATE TABLE IF NOT EXISTS {schema}.{keys} (person_id uuid PRIMARY KEY, wrapped bytea, "
            "created_at timestamptz NOT NULL DEFAULT now(), erased_at timestamptz)"
        ).format(schema=Identifier(schema), keys=Identifier(KEYS_TABLE))
    )
    conn.execute(
        SQL(
            "CREATE INDEX IF NOT EXISTS personal_keys_erased ON {schema}.{keys} (erased_at) WHERE erased_at IS NOT NULL"
        ).format(schema=Identifier(schema), keys=Identifier(KEYS_TABLE))
    )
    conn.execute(
        SQL(
            "CREATE TABLE IF NOT EXISTS {schema}.{emails} (digest bytea PRIMARY KEY, account_id uuid NOT NULL UNIQUE)"
        ).format(schema=Identifier(schema), emails=Identifier(EMAILS_TABLE))
    )


class EmailIndex:
    """`account_emails`: the keyed hash of each address with an account, to its account id."""

    def __init__(self, datastore: Any, secret: str) -> None:
        self._datastore = datastore
        self._secret = secret
        self._table = SQL("{schema}.{emails}").format(
            schema=Identifier(datastore.schema), emails=Identifier(EMAILS_TABLE)
        )

    def add(self, conn: Connection[Any], email: str, account_id: UUID) -> None:
        """Index the address in `conn`'s transaction (psycopg's UniqueViolation when it is taken)."""
        conn.execute(SQL("INSERT INTO {} (digest, account_id) VALUES (%s, %s)").format(self._table),
                     (email_digest(self._secret, email), account_id))  # fmt: skip

    def find(self, email: str) -> UUID | None:
        with self._datastore.get_connection() as conn:
            row = conn.execute(SQL("SELECT account_id FROM {} WHERE digest = %s").format(self._table),
                               (email_digest(self._secret, email),)).fetchone()  # fmt: skip
        return None if row is None else UUID(str(row["account_id"]))

    def remove(self, account_id: UUID) -> None:
        with self._datastore.get_connection() as conn:
            conn.execute(SQL("DELETE FROM {} WHERE account_id = %s").format(self._table), (account_id,))


def blank_plain_text(recorder: Any, originator_id: UUID, versions: Callable[[int], bool] = lambda _: True) -> int:
    """Blank, in place, the personal data an aggregate's events (those at the `versions` given)
    hold in plain text because they were stored before sealing existed; returns how many events
    were rewritten.

    The one rewrite of the log: shredding a key cannot make unreadable what was never sealed.
    Only the personal fields change (to what they read as once erased), so the events load as
    before."""
    table = SQL("{schema}.{table}").format(
        schema=Identifier(recorder.datastore.schema), table=Identifier(recorder.events_table_name)
    )
    rewritten = 0
    with recorder.datastore.get_connection() as conn, conn.transaction():
        rows = conn.execute(
            SQL("SELECT originator_version, topic, state FROM {} WHERE originator_id = %s FOR UPDATE").format(table),
            (originator_id,),
        ).fetchall()
        for row in rows:
            try:
                erased = erased_values(resolve_topic(row["topic"]))
            except (ImportError, AttributeError, ValueError, TypeError, NameError):
                continue
            if not erased or not versions(row["originator_version"]):
                continue
            state = json.loads(bytes(row["state"]))
            plain = [f for f in erased if isinstance(v := state.get(f), str) and v and not v.startswith(PREFIX)]
            if not plain:
                continue
            state.update({f: erased[f] for f in plain})
            conn.execute(
                SQL("UPDATE {} SET state = %s WHERE originator_id = %s AND originator_version = %s").format(table),
                (json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode(), originator_id,
                 row["originator_version"]),
            )  # fmt: skip
            rewritten += 1
    return rewritten


class Vault:
    """Per-person keys (see the module docstring). `datastore` is the store's `PostgresDatastore`,
    asked for lazily (the mapper exists before the recorder)."""

    def __init__(self, datastore: Any, secret: str) -> None:
        self._datastore = datastore
        self._secret = secret
        self._keys: dict[UUID, AESGCM | None] = {}  # None: shredded
        # Wrapped keys loaded in bulk, unwrapped on first use (None: shredded).
        self._wrapped: dict[UUID, bytes | None] = {}
        self._loaded_all = False
        self._misses = 0
        self._lock = threading.Lock()
        # When this process last asked for keys destroyed by others (monotonic; database time).
        self._checked = 0.0
        self._checked_at: datetime | None = None

    @functools.cached_property
    def _kek(self) -> AESGCM:
        return AESGCM(_derive(self._secret, "personal-keys"))

    def _sql(self, text: str) -> Any:
        store = self._datastore()
        return SQL(text).format(schema=Identifier(store.schema), keys=Identifier(KEYS_TABLE))

    # Sealing ------------------------------------------------------------------------------

    def seal(self, person: UUID, text: str) -> str:
        """`text` sealed with the person's key (made on first use); "" stays "" and a person
        already erased gets nothing sealed: their data is not stored at all."""
        if not text:
            return text
        key = self._key(person, create=True)
        if key is None:
            return f"{PREFIX}{person.hex}:"
        nonce = os.urandom(12)
        sealed = base64.b64encode(nonce + key.encrypt(nonce, text.encode(), person.bytes)).decode()
        return f"{PREFIX}{person.hex}:{sealed}"

    def open(self, value: str) -> str | None:
        """The plain text of a sealed value, `ERASED` when its key is gone (or it was tampered
        with); anything not sealed (events stored before sealing existed) as it is."""
        if not value.startswith(PREFIX):
            return value
        try:
            owner, _, body = value[len(PREFIX) :].partition(":")
            person = UUID(hex=owner)
            raw = base64.b64decode(body, validate=True)
        except ValueError:
            return ERASED
        key = self._key(person, create=False)
        if key is None or len(raw) < 28:
            return ERASED
        try:
            return key.decrypt(raw[:12], raw[12:], person.bytes).decode()
        except (InvalidTag, UnicodeDecodeError):
            return ERASED

    # Keys ---------------------------------------------------------------------------------

    def _key(self, person: UUID, *, create: bool) -> AESGCM | None:
        if time.monotonic() - self._checked > ERASURE_CHECK_SECONDS:
            self._drop_erased()
        if person in self._keys:
            return self._keys[person]
        if person in self._wrapped:
            key = self._unwrap(person, self._wrapped[person])
        else:
            with self._lock:
                self._misses += 1
                if self._misses > BULK_AFTER_MISSES and not self._loaded_all and not create:
                    self._load_all()  # many people met: a replay, most likely
                if person in self._wrapped:
                    wrapped = self._wrapped[person]
                else:
                    row = self._fetch(person, create=create)
                    if row is None:
                        return None  # never had a key: nothing to open (not cached: it may be made later)
                    wrapped = row[0]
            key = self._unwrap(person, wrapped)
        self._keys[person] = key
        return key

    def _fetch(self, person: UUID, *, create: bool) -> tuple[bytes | None] | None:
        store = self._datastore()
        with store.get_connection() as conn:
            if create:
                wrapped = self._wrap(person, AESGCM.generate_key(bit_length=256))
                conn.execute(
                    self._sql(
                        "INSERT INTO {schema}.{keys} (person_id, wrapped) VALUES (%s, %s) ON CONFLICT DO NOTHING"
                    ),
                    (person, wrapped),
                )
            row = conn.execute(
                self._sql("SELECT wrapped FROM {schema}.{keys} WHERE person_id = %s"), (person,)
            ).fetchone()
        return None if row is None else (None if row["wrapped"] is None else bytes(row["wrapped"]),)

    def _load_all(self) -> None:
        """Every wrapped key in one query (a replay of the whole store meets most people); each
        is unwrapped when first needed."""
        store = self._datastore()
        with store.get_connection() as conn:
            rows = conn.execute(self._sql("SELECT person_id, wrapped FROM {schema}.{keys}")).fetchall()
        for row in rows:
            self._wrapped[row["person_id"]] = None if row["wrapped"] is None else bytes(row["wrapped"])
        self._loaded_all = True

    def _drop_erased(self) -> None:
        """Forget the cached keys destroyed (by any process) since the last look, with a margin
        for erasures whose transaction started before that look and committed after it."""
        with self._lock:
            if time.monotonic() - self._checked <= ERASURE_CHECK_SECONDS:
                return
            since = self._checked_at - timedelta(seconds=10) if self._checked_at else datetime(1970, 1, 1, tzinfo=UTC)
            with self._datastore().get_connection() as conn:
                row = conn.execute(
                    self._sql(
                        "SELECT now() AS at, array(SELECT person_id FROM {schema}.{keys} "
                        "WHERE erased_at IS NOT NULL AND erased_at >= %s) AS erased"
                    ),
                    (since,),
                ).fetchone()
            for person in row["erased"]:
                self._keys[person] = self._wrapped[person] = None
            self._checked, self._checked_at = time.monotonic(), row["at"]

    def _wrap(self, person: UUID, key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._kek.encrypt(nonce, key, person.bytes)

    def _unwrap(self, person: UUID, wrapped: bytes | None) -> AESGCM | None:
        if wrapped is None:
            return None
        try:
            return AESGCM(self._kek.decrypt(wrapped[:12], wrapped[12:], person.bytes))
        except InvalidTag:
            raise RuntimeError("a personal-data key does not open: PERSONAL_DATA_SECRET changed?") from None

    def shred(self, person: UUID) -> None:
        """Destroy the person's key (idempotent); a key never made is recorded as destroyed."""
        store = self._datastore()
        with store.get_connection() as conn:
            conn.execute(
                self._sql(
                    "INSERT INTO {schema}.{keys} (person_id, wrapped, erased_at) VALUES (%s, NULL, now()) "
                    "ON CONFLICT (person_id) DO UPDATE SET wrapped = NULL, "
                    "erased_at = coalesce({keys}.erased_at, now())"
                ),
                (person,),
            )
        self._keys[person] = self._wrapped[person] = None

    def forget(self, person: UUID) -> None:
        """Drop a cached key (another process erased the person)."""
        self._keys[person] = self._wrapped[person] = None
