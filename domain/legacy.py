"""The shape of edits stored before aggregates recorded them as intent events.

`Event`, `Offer` and `Venue` used to record every edit as one `Updated(changes)` event, a dict
of the attributes that changed. Those events stay in the store and their topics name each
aggregate's `Updated` class, so each aggregate keeps one, based on `LegacyChanges`; new code
triggers the intent events instead (`Event.Retitled`, `Offer.Repriced`, `Venue.Renamed` ...).
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate


class LegacyChanges(Aggregate.Event):
    changes: dict[str, Any]

    def apply(self, aggregate: Aggregate) -> None:
        # Rebinds, never mutates: safe for aggregates with `immutable_state`.
        for key, value in self.changes.items():
            setattr(aggregate, key, value)
