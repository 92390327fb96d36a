"""Progress bars for the CLI's long commands (reports, rebuilds, the demo data): rich, on
stderr, so what a command writes to stdout (a report) stays clean."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {self.unit}/s" if speed else f"- {self.unit}/s", style="progress.data.speed")


class Bar:
    """One task's bar: `start(total, description)`, then `advance(n)` (the reports' `Progress`)."""

    def __init__(self, unit: str = "events", console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(unit),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self.task: TaskID | None = None

    def __enter__(self) -> Bar:
        self.progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.progress.stop()

    def start(self, total: int, description: str) -> None:
        if self.task is None:
            self.task = self.progress.add_task(description, total=total)
        else:
            self.progress.update(self.task, total=total, description=description)

    def advance(self, count: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, count)

    def reach(self, position: int, total: int) -> None:
        """Counted in store positions (a rebuild reads only some topics, so it skips ahead)."""
        if self.task is not None:
            self.progress.update(self.task, completed=position, total=total)

    def step(self, description: str) -> None:
        """A step of a command counted in steps (the demo data): one done, name the next."""
        if self.task is not None:
            self.progress.update(self.task, description=description)
            self.progress.advance(self.task, 1)
