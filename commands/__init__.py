"""The write side: `eventsourcing` Applications with intent-revealing command methods."""
