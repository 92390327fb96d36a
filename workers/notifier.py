"""The mail notifier's process (`ticketing notifier`): follows the BoxOffice notification log with
the projection runner (`workers/projector.py`) and one model, the notifier
(`projections/notifier.py`), and hands the outbox rows each batch commits to the worker.

It is a process of its own, not one of the read models: rebuilding them never moves its position,
so a rebuild (or a replay of the whole log) decides no mail a second time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from projections.models import open_view
from projections.notifier import NotifierProjection, NotifierView
from workers.projector import OpenOnce, Runner, run_until_stopped

log = logging.getLogger("notifier")


def open_notifier(env: dict[str, str], *, create_tables: bool = False) -> NotifierProjection:
    view = open_view(env, NotifierProjection, create_tables=create_tables)
    assert isinstance(view, NotifierView)
    return NotifierProjection(view=view)


def run_notifier(env: dict[str, str], queue_mails: Callable[[list[str]], None]) -> None:
    """Decide mails until SIGTERM/SIGINT; restarts after a lost connection, like the projector."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = OpenOnce(env)
    notifier = open_notifier(env)

    def hand_over(keys: list[str]) -> None:
        try:
            queue_mails(keys)
        except Exception:  # the rows are stored: the mail sweep queues them later
            log.warning("could not queue %d mails; the mail sweep will", len(keys), exc_info=True)

    notifier.view.on_commit = hand_over
    # It reads every event (those causing no mail are skipped undecoded). Reading only the mail
    # topics (`only_handled`) was tried and measured worse: its position then stays at the last
    # mail event, so each NOTIFY re-scanned every event since (no topic index), doubling
    # Postgres' CPU per order in hot-seats.
    run_until_stopped(lambda: Runner(app(), [notifier]), "notifier")
    app.close()
