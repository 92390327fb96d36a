"""Who may see and manage a show: drafts are seen only by their organizer and admins (404 for
everyone else), and only they manage it (403). Every controller of a show's resources asks here."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from api.security import Principal
from api.services import Services
from domain.errors import Forbidden, NotFound
from projections import queries


def visible_row(row: dict[str, Any] | None, user: Principal | None) -> dict[str, Any]:
    """Drafts are seen only by their organizer and admins; others get 404."""
    if row is None:
        raise NotFound("event not found", code="event_not_found")
    if row["status"] == "draft" and not (user and (user.is_admin or user.id == row["organizer_id"])):
        raise NotFound("event not found", code="event_not_found")
    return row


async def owned_event(services: Services, user: Principal, event_id: UUID) -> dict[str, Any]:
    """The event row if the caller manages it: 404 if they cannot see it, 403 if not theirs."""
    async with services.pool.connection() as conn:
        row = visible_row(await queries.event(conn, event_id), user)
    if not (user.is_admin or row["organizer_id"] == user.id):
        raise Forbidden("you do not manage this event")
    return row


async def visible_event(services: Services, user: Principal | None, event_id: UUID) -> dict[str, Any]:
    """The event row if the caller may see it (drafts: owner and admins), else 404."""
    async with services.pool.connection() as conn:
        return visible_row(await queries.event(conn, event_id), user)


async def event_row(services: Services, event_id: UUID) -> dict[str, Any]:
    async with services.pool.connection() as conn:
        row = await queries.event(conn, event_id)
    if row is None:
        raise NotFound("event not found", code="event_not_found")
    return row
