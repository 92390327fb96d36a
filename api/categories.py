"""The category tree: segments -> genres -> sub-genres (read by anyone, grown by admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get, post

from api.common import Page, PageParam, PageSizeParam, page_of
from api.security import Principal, admin_only
from api.services import Services
from domain.errors import NotFound
from projections import queries

LEVEL_NAMES = {"segment": "segment", "genre": "genre", "sub_genre": "sub-genre"}


class CategoryCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class Category(msgspec.Struct):
    id: UUID
    level: str
    name: str
    slug: str
    parent_id: UUID | None
    created_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> Category:
        return cls(
            id=row["id"],
            level=row["level"],
            name=row["name"],
            slug=row["slug"],
            parent_id=row["parent_id"],
            created_at=row["created_at"],
        )


async def _require_parent(services: Services, parent_id: UUID, parent_level: str) -> None:
    async with services.pool.connection() as conn:
        parent = await queries.category(conn, parent_id)
    if parent is None or parent["level"] != parent_level:
        name = LEVEL_NAMES[parent_level]
        raise NotFound(f"{name} not found", code=f"{name.replace('-', '_')}_not_found")


async def _children(
    services: Services, level: str, parent_id: UUID | None, page: int, page_size: int, parent_level: str = ""
) -> Page[Category]:
    if parent_id is not None:
        await _require_parent(services, parent_id, parent_level)
    async with services.pool.connection() as conn:
        rows, total = await queries.categories(conn, level, parent_id, page, page_size)
    return page_of([Category.of(r) for r in rows], total, page, page_size)


async def _created(
    services: Services, actor: UUID, name: str, parent_id: UUID | None = None, parent_level: str = ""
) -> Category:
    if parent_id is not None:
        await _require_parent(services, parent_id, parent_level)
    category = await services.command(lambda: services.boxoffice.create_category(name, parent_id), actor=actor)
    async with services.pool.connection() as conn:
        row = await queries.category(conn, category.id)
    assert row is not None
    return Category.of(row)


class CategoryController(Controller):
    path = "/"
    tags = ["Catalog"]

    @get("/segments", operation_id="listSegments", exclude_from_auth=True)
    async def segments(self, services: Services, page: PageParam = 1, page_size: PageSizeParam = 20) -> Page[Category]:
        """Top-level categories (Music, Sports, Arts & Theatre, ...), a page at a time."""
        return await _children(services, "segment", None, page, page_size)

    @post("/segments", operation_id="createSegment", guards=[admin_only], status_code=201)
    async def create_segment(
        self, data: CategoryCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Category:
        """Add a segment (admin); the same name twice is 409."""
        return await _created(services, request.user.id, data.name)

    @get("/segments/{segment_id:uuid}/genres", operation_id="listGenres", exclude_from_auth=True)
    async def genres(
        self, segment_id: UUID, services: Services, page: PageParam = 1, page_size: PageSizeParam = 20
    ) -> Page[Category]:
        """Genres of a segment, a page at a time."""
        return await _children(services, "genre", segment_id, page, page_size, "segment")

    @post("/segments/{segment_id:uuid}/genres", operation_id="createGenre", guards=[admin_only], status_code=201)
    async def create_genre(
        self, segment_id: UUID, data: CategoryCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Category:
        """Add a genre under a segment (admin)."""
        return await _created(services, request.user.id, data.name, segment_id, "segment")

    @get("/genres/{genre_id:uuid}/sub-genres", operation_id="listSubGenres", exclude_from_auth=True)
    async def sub_genres(
        self, genre_id: UUID, services: Services, page: PageParam = 1, page_size: PageSizeParam = 20
    ) -> Page[Category]:
        """Sub-genres of a genre, a page at a time."""
        return await _children(services, "sub_genre", genre_id, page, page_size, "genre")

    @post("/genres/{genre_id:uuid}/sub-genres", operation_id="createSubGenre", guards=[admin_only], status_code=201)
    async def create_sub_genre(
        self, genre_id: UUID, data: CategoryCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Category:
        """Add a sub-genre under a genre (admin)."""
        return await _created(services, request.user.id, data.name, genre_id, "genre")
