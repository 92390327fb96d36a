"""The Category aggregate: names and slugs, renaming (the slug follows) and removal."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.category import Category, category_id
from domain.errors import Invalid


def test_renaming_moves_the_slug_and_keeps_the_id() -> None:
    music = Category.segment("Music")
    music.rename("  Live   Music ")
    assert (music.name, music.slug) == ("Live Music", "live-music")
    assert music.id == category_id(None, "Music")
    music.rename("Live Music")  # the same name: no event
    assert [type(e).__name__ for e in music.collect_events()] == ["Created", "Renamed"]


def test_a_name_without_letters_or_digits_is_refused() -> None:
    with pytest.raises(Invalid):
        Category.segment("Music").rename(" -- ")


def test_a_removed_category_cannot_be_renamed() -> None:
    rock = Category.segment("Music").child("Rock")
    rock.remove()
    rock.remove()  # twice: one event
    assert rock.removed
    with pytest.raises(Invalid):
        rock.rename("Metal")
    assert [type(e).__name__ for e in rock.collect_events()] == ["Created", "Removed"]


def test_a_category_can_be_made_under_another_id() -> None:
    rock = Category.segment("Music").child("Rock")
    other = rock.with_id(new := uuid4())
    assert other.id == new and (other.name, other.slug, other.parent_id, other.level) == (
        rock.name, rock.slug, rock.parent_id, rock.level
    )  # fmt: skip
