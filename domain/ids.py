"""Deterministic identifiers for natural keys, so duplicates fail as version conflicts."""

from __future__ import annotations

from uuid import UUID, uuid5

ACCOUNTS = UUID("5b0e3a4e-6f4c-4a53-9d0c-2f1b8e6f7a11")


def account_id(email: str) -> UUID:
    return uuid5(ACCOUNTS, email.strip().lower())


def section_id(venue_id: UUID, section_name: str) -> UUID:
    return uuid5(venue_id, f"section:{section_name}")


def seat_key(section_name: str, row_label: str, seat_label: str) -> str:
    return f"{section_name}/{row_label}/{seat_label}"


def seat_id(event_id: UUID, key: str) -> UUID:
    return uuid5(event_id, f"seat:{key}")


def order_id_for_idempotency_key(buyer_id: UUID, key: str) -> UUID:
    return uuid5(buyer_id, f"order:{key}")
