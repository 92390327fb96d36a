"""`python -m bench.rebuild MODEL|all`: rebuild read models and print what it took, as JSON.

`all` is what `ticketing projections rebuild` does: every model, its groups side by side in two
processes (workers.projector.GROUPS), each in one pass over its events.

Run as a child of the benchmark so the rebuild's CPU is measured on its own and a rebuild that
outlasts the time budget can be stopped (its transaction then rolls back, leaving the old tables).
The environment carries the stack's settings (DATABASE_URL, ...).
"""

from __future__ import annotations

import json
import os
import sys
import time

from ticketing import Settings
from workers.projector import rebuild


def main() -> None:
    """Rebuild the model named on the command line; print {model, applied, seconds, cpu_s}."""
    model = sys.argv[1]
    settings = Settings.from_env()
    cpu_before = os.times()
    started = time.monotonic()
    counts = rebuild(settings.eventsourcing_env(), None if model == "all" else model)
    seconds = time.monotonic() - started
    cpu_after = os.times()
    # Ours and that of the processes the rebuild ran its other model groups in.
    cpu = sum(
        getattr(cpu_after, f) - getattr(cpu_before, f) for f in ("user", "system", "children_user", "children_system")
    )
    applied = sum(counts.values()) if model == "all" else counts[model]
    result = {
        "model": model,
        "applied": applied,
        "by_model": counts,
        "seconds": round(seconds, 3),
        "cpu_s": round(cpu, 3),
    }
    print(json.dumps(result), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
