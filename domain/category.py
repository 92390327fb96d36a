"""Category: the segment -> genre -> sub-genre tree events are filed under.

The id is uuid5 of the parent and the name's slug, so the same name twice under one parent
fails as a version conflict.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.audit import Audited
from domain.errors import Invalid

ROOT = UUID("a3c1d2e4-5f60-4718-9a2b-3c4d5e6f7081")
LEVELS = ("segment", "genre", "sub_genre")
CHILD = {"segment": "genre", "genre": "sub_genre"}


def slugify(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def category_id(parent_id: UUID | None, name: str) -> UUID:
    return uuid5(parent_id or ROOT, f"category:{slugify(name)}")


class Category(Audited):
    class Created(Aggregate.Created):
        level: str
        name: str
        slug: str
        parent_id: UUID | None

    @staticmethod
    def create_id(name: str, parent_id: UUID | None = None, **_: Any) -> UUID:
        return category_id(parent_id, name)

    @event(Created)
    def __init__(self, level: str, name: str, slug: str, parent_id: UUID | None) -> None:
        self.level = level
        self.name = name
        self.slug = slug
        self.parent_id = parent_id
        self.removed = False

    @classmethod
    def segment(cls, name: str) -> Category:
        return cls._new("segment", name, None)

    def child(self, name: str) -> Category:
        """A genre under this segment, or a sub-genre under this genre."""
        if self.level not in CHILD:
            raise Invalid("sub-genres have no children", field="parent_id")
        return self._new(CHILD[self.level], name, self.id)

    def with_id(self, category_id: UUID) -> Category:
        """This new category under another id: the one its name derives is held by a category
        renamed or deleted since (uniqueness among siblings is then the caller's check)."""
        made: Category = type(self)._create(
            Category.Created, id=category_id, level=self.level, name=self.name, slug=self.slug,
            parent_id=self.parent_id,
        )  # fmt: skip
        return made

    class Renamed(Aggregate.Event):
        name: str
        slug: str

    def rename(self, name: str) -> None:
        """A new name; the slug follows it (the id stays: events filed under it stay filed)."""
        name, slug = _named(name)
        if self.removed:
            raise Invalid("this category was deleted", field="name")
        if name != self.name:
            self._rename(name, slug)

    @event(Renamed)
    def _rename(self, name: str, slug: str) -> None:
        self.name = name
        self.slug = slug

    class Removed(Aggregate.Event):
        """Deleted by an admin (only when nothing was filed under it: the caller checks)."""

    def remove(self) -> None:
        if not self.removed:
            self._remove()

    @event(Removed)
    def _remove(self) -> None:
        self.removed = True

    @classmethod
    def _new(cls, level: str, name: str, parent_id: UUID | None) -> Category:
        name, slug = _named(name)
        return cls(level=level, name=name, slug=slug, parent_id=parent_id)


def _named(name: str) -> tuple[str, str]:
    """The name with its spaces folded, and its slug (refused when it has no letter or digit)."""
    name = " ".join(name.split())
    slug = slugify(name)
    if not slug:
        raise Invalid("a category needs a name with letters or digits", field="name")
    return name, slug
