"""The domain model: aggregates and their events, pure Python on `eventsourcing.domain`.

Nothing here performs I/O or reads settings; the clock is passed in by the commands layer.
"""
