"""The category tree: segments -> genres -> sub-genres (read by anyone, grown by admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, patch, post

from api.common import Page, PageParam, PageSizeParam, page_of
from api.security import Principal, admin_only
from api.services import Services
from domain.category import slugify
from domain.errors import Conflict, NotFound
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


async def add_category(
    services: Services, actor: UUID, name: str, parent_id: UUID | None = None, parent_level: str = ""
) -> Category:
    if parent_id is not None:
        await _require_parent(services, parent_id, parent_level)
    async with services.pool.connection() as conn:
        taken = await queries.sibling_with_slug(conn, None, parent_id, slugify(name))
    if taken:
        raise Conflict(f"{name.strip()!r} already exists here", code="category_exists", field="name")
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
        return await add_category(services, request.user.id, data.name)

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
        return await add_category(services, request.user.id, data.name, segment_id, "segment")

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
        return await add_category(services, request.user.id, data.name, genre_id, "genre")


async def _existing(services: Services, category_id: UUID, level: str) -> dict[str, Any]:
    async with services.pool.connection() as conn:
        row = await queries.category(conn, category_id)
    if row is None or row["level"] != level:
        name = LEVEL_NAMES[level]
        raise NotFound(f"{name} not found", code=f"{name.replace('-', '_')}_not_found")
    return row


async def rename_category(services: Services, actor: UUID, category_id: UUID, level: str, name: str) -> Category:
    """Rename (the slug follows); 409 when a sibling already has that slug."""
    row = await _existing(services, category_id, level)
    async with services.pool.connection() as conn:
        taken = await queries.sibling_with_slug(conn, category_id, row["parent_id"], slugify(name))
    if taken:
        raise Conflict(f"{name.strip()!r} already exists here", code="category_exists", field="name")
    await services.command(lambda: services.boxoffice.rename_category(category_id, name), actor=actor)
    return Category.of(await _existing(services, category_id, level))


async def delete_category(services: Services, actor: UUID, category_id: UUID, level: str) -> None:
    """Delete a category nothing is filed under (no child category, no event); 409 otherwise."""
    await _existing(services, category_id, level)
    async with services.pool.connection() as conn:
        used = await queries.category_in_use(conn, category_id)
    if used:
        raise Conflict("this category is in use (it has sub-categories or events)", code="category_in_use")
    await services.command(lambda: services.boxoffice.remove_category(category_id), actor=actor)


class CategoryEditController(Controller):
    """Rename and delete (admin), and the lookup of a slug (anyone)."""

    path = "/"
    tags = ["Catalog"]

    @get("/categories/{slug:str}", operation_id="categoryBySlug", exclude_from_auth=True)
    async def by_slug(self, slug: str, services: Services) -> Category:
        """The category with this slug (404 `category_not_found` if none)."""
        async with services.pool.connection() as conn:
            row = await queries.category_by_slug(conn, slug[:200])
        if row is None:
            raise NotFound("category not found", code="category_not_found")
        return Category.of(row)

    @patch("/segments/{category_id:uuid}", operation_id="renameSegment", guards=[admin_only])
    async def rename_segment(
        self, category_id: UUID, data: CategoryCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Category:
        """Rename a segment (admin); the slug follows."""
        return await rename_category(services, request.user.id, category_id, "segment", data.name)

    @patch("/genres/{category_id:uuid}", operation_id="renameGenre", guards=[admin_only])
    async def rename_genre(
        self, category_id: UUID, data: CategoryCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Category:
        """Rename a genre (admin); the slug follows."""
        return await rename_category(services, request.user.id, category_id, "genre", data.name)

    @patch("/sub-genres/{category_id:uuid}", operation_id="renameSubGenre", guards=[admin_only])
    async def rename_sub_genre(
        self, category_id: UUID, data: CategoryCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Category:
        """Rename a sub-genre (admin); the slug follows."""
        return await rename_category(services, request.user.id, category_id, "sub_genre", data.name)

    @delete("/segments/{category_id:uuid}", operation_id="deleteSegment", guards=[admin_only])
    async def delete_segment(
        self, category_id: UUID, request: Request[Principal, Any, Any], services: Services
    ) -> None:
        """Delete an unused segment (admin; 409 `category_in_use` otherwise)."""
        await delete_category(services, request.user.id, category_id, "segment")

    @delete("/genres/{category_id:uuid}", operation_id="deleteGenre", guards=[admin_only])
    async def delete_genre(self, category_id: UUID, request: Request[Principal, Any, Any], services: Services) -> None:
        """Delete an unused genre (admin; 409 `category_in_use` otherwise)."""
        await delete_category(services, request.user.id, category_id, "genre")

    @delete("/sub-genres/{category_id:uuid}", operation_id="deleteSubGenre", guards=[admin_only])
    async def delete_sub_genre(
        self, category_id: UUID, request: Request[Principal, Any, Any], services: Services
    ) -> None:
        """Delete an unused sub-genre (admin; 409 `category_in_use` otherwise)."""
        await delete_category(services, request.user.id, category_id, "sub_genre")
